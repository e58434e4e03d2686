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
import json
import multiprocessing as mp
import os
import sys
import threading
import time

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


def read_paths(list_file):
    with open(list_file, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def duration_s(path):
    try:
        import soundfile
        return float(soundfile.info(path).duration)
    except Exception:
        return float("nan")


# ---------------------------------------------------------------- worker side
def _init_worker(barrier):
    import bliss_audio  # noqa: F401  (import before the clock starts)
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:
        pass


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
    n = len(paths)
    jobs = max(1, min(args.jobs, n)) if n else 1
    feats = np.full((n, N_FEATURES), np.nan, dtype=np.float32)
    errors = {}
    cpu_s = 0.0

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(jobs + 1)
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(barrier,)) as pool:
        try:
            barrier.wait(timeout=300)  # all workers up and imported
        except threading.BrokenBarrierError:
            pass
        t0 = time.perf_counter()
        pending = [pool.apply_async(_analyse, (p,)) for p in paths]
        for i, r in enumerate(pending):
            try:
                vec, err, cpu = r.get(timeout=args.timeout)
            except mp.TimeoutError:
                vec, err, cpu = None, "timeout or worker crash after %.0f s" % args.timeout, 0.0
            cpu_s += cpu
            if vec is None:
                errors[i] = err
                print("bliss failed: %s: %s" % (paths[i], err), file=sys.stderr)
            else:
                feats[i] = vec
        wall_s = time.perf_counter() - t0

    durations = np.array([duration_s(p) for p in paths], dtype=np.float64)
    ok = [i for i in range(n) if i not in errors]
    audio_s = float(np.nansum(durations[ok])) if ok else 0.0
    failed_idx = sorted(errors)

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    np.savez(
        args.out,
        paths=np.array(paths, dtype=str),
        features=feats,
        failed=np.array([paths[i] for i in failed_idx], dtype=str),
        failed_errors=np.array([errors[i] for i in failed_idx], dtype=str),
        durations=durations,
        feature_names=np.array(FEATURE_NAMES, dtype=str),
    )
    summary = {
        "n": n,
        "failed": len(failed_idx),
        "wall_s": round(wall_s, 3),
        "audio_s": round(audio_s, 3),
        "cpu_s": round(cpu_s, 3),
        "jobs": jobs,
        "songs_per_s": round(len(ok) / wall_s, 3) if wall_s > 0 else None,
        "x_realtime": round(audio_s / wall_s, 1) if wall_s > 0 else None,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
