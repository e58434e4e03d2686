#!/usr/bin/env python3
"""Peer analyser: bliss (bliss-rs, via its Python binding ``bliss-audio``).

Run with the bliss venv made by ``bench/peers/setup.sh``::

    .bench-venvs/bliss/bin/python bench/peers/bliss_features.py \
        --paths LIST.txt --out OUT.npz --jobs N

LIST.txt holds one absolute audio path per line (spaces allowed).  Every file
is analysed with ``bliss_audio.Song(path).analysis`` (the 23-d bliss feature
vector).  bliss-audio 0.2.0 exposes only the ``Song`` class (no batch or
parallel API), so parallelism is a ``multiprocessing`` Pool of N worker
processes (spawn context), one song per task.

OUT.npz holds:
  paths          str  (n,)     input paths, in input order
  features       f32  (n, 23)  bliss analysis; NaN rows for failed files
  failed         str  (k,)     paths that failed
  failed_errors  str  (k,)     one error message per failed path
  durations      f64  (n,)     duration in seconds (soundfile; NaN if unknown)
  feature_names  str  (23,)    names of the 23 columns, in bliss order

One JSON line goes to stdout:
  {"n", "failed" (count), "wall_s" (analysis only, workers already started and
   imported), "audio_s" (total duration of the successfully analysed files),
   "cpu_s" (CPU seconds spent inside the analyses, all workers), "jobs",
   "songs_per_s", "x_realtime"}
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_pool import analyse_all, read_paths, ready, save  # noqa: E402

N_FEATURES = 23
# Order of Song.analysis (checked against Song.analysis_dict for 0.2.0, which
# embeds bliss-rs 0.11.2).
FEATURE_NAMES = [
    "tempo", "zcr",
    "mean_spectral_centroid", "std_spectral_centroid",
    "mean_spectral_rolloff", "std_spectral_rolloff",
    "mean_spectral_flatness", "std_spectral_flatness",
    "mean_loudness", "std_loudness",
] + ["chroma%d" % i for i in range(1, 14)]


# ---------------------------------------------------------------- worker side
def _init_worker(barrier):
    import bliss_audio  # noqa: F401  (import before the clock starts)
    ready(barrier, 300)


def _analyse(path):
    import bliss_audio
    c0 = time.process_time()
    try:
        song = bliss_audio.Song(path)
        vec = [float(v) for v in song.analysis]
        if len(vec) != N_FEATURES:
            raise ValueError("expected %d features, got %d" % (N_FEATURES, len(vec)))
        return vec, None, time.process_time() - c0
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        # Undecodable files make bliss-rs panic; pyo3 turns the panic into
        # pyo3_runtime.PanicException, which derives from BaseException.
        return None, "%s: %s" % (type(e).__name__, e), time.process_time() - c0


# ---------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paths", required=True, help="text file, one audio path per line")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--timeout", type=float, default=900.0,
                    help="seconds to wait for any one song before marking it failed")
    args = ap.parse_args(argv)

    import numpy as np

    paths = read_paths(args.paths)
    jobs = max(1, min(args.jobs, len(paths))) if paths else 1
    values, errors, cpu_s, wall_s, _ = analyse_all("bliss", paths, jobs, _init_worker, (), _analyse,
                                                   args.timeout, 300)
    feats = np.full((len(paths), N_FEATURES), np.nan, dtype=np.float32)
    for i, vec in enumerate(values):
        if vec is not None:
            feats[i] = vec
    save(args.out, paths, feats, errors, {"feature_names": np.array(FEATURE_NAMES, dtype=str)},
         {"wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 3), "jobs": jobs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
