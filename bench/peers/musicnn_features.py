#!/usr/bin/env python3
"""Peer analyser: musicnn (MSD_musicnn), 200-d penultimate layer averaged per song.

Run with the musicnn venv made by ``bench/peers/setup.sh``::

    .bench-venvs/musicnn/bin/python bench/peers/musicnn_features.py \
        --paths LIST.txt --out OUT.npz --jobs N [--batch-size B] [--verify]

Why this does not call ``musicnn.extractor.extractor``: in musicnn 0.1.0 the
loop over the 2nd..last batches unpacks the penultimate layer into a variable
called ``backend_`` but concatenates the stale ``penultimate_`` of the first
batch (same for cnn1/cnn2/cnn3), so every row of ``features['penultimate']``
after the first is a copy of the first one.  Its ``saver.restore`` is also
wrapped in a bare ``try/except`` that silently leaves random weights when the
checkpoint cannot be read.  So this script

  1. computes the log-mel input exactly as ``musicnn.extractor.batch_data``
     does (librosa.load at 16 kHz, melspectrogram n_fft=512 hop=256 96 mels,
     cast to float16, log10(10000 * x + 1)),
  2. cuts it into non-overlapping 3 s patches of 187 frames (musicnn's
     ``input_length=3``, ``input_overlap=False``; a trailing partial patch is
     dropped, as musicnn does),
  3. builds the MSD_musicnn graph with ``musicnn.models.define_model`` and
     restores the checkpoint shipped in the musicnn wheel (errors are NOT
     swallowed),
  4. feeds the patches in batches of ``--batch-size`` and fetches the
     penultimate tensor (``bn_dense``, 200 units) for every batch,
  5. averages the per-patch vectors over the whole song.

``--verify`` (on the first path of the list, in the main process) checks the
workaround against musicnn's own extractor and prints a JSON report to stderr:
same input patches as ``batch_data``; our first-batch penultimate rows equal
the extractor's first row; the extractor's later rows are copies of its first
(the bug); our rows of different batches differ; and our per-patch taggram
equals the extractor's taggram (which is not affected by the bug) for every
patch, so every batch went through the same network.

Parallelism: a ``multiprocessing`` Pool of N spawned worker processes, one
song per task, each with its own TF session limited to 1 intra-op and 1
inter-op thread (and OMP/BLAS threads set to 1), so the run uses N cores.

OUT.npz holds:
  paths          str  (n,)      input paths, in input order
  features       f32  (n, 200)  mean penultimate vector; NaN rows for failures
  failed         str  (k,)      paths that failed
  failed_errors  str  (k,)      one error message per failed path
  durations      f64  (n,)      duration in seconds (soundfile; NaN if unknown)
  n_patches      i64  (n,)      number of 3 s patches averaged (0 if failed)

One JSON line goes to stdout, as for bliss_features.py:
  {"n", "failed" (count), "wall_s" (analysis only: workers already started,
   TF imported and the model restored), "audio_s" (total duration of the
   successfully analysed files), "setup_s" (pool start + imports + restore),
   "cpu_s", "jobs", "batch_size", "songs_per_s", "x_realtime"}
"""
import os

# Thread limits must be in place before numpy / TensorFlow are imported (the
# spawned workers import this module first, so they inherit them too).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "NUMBA_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

# musicnn builds its graph with tf.compat.v1.layers: one deprecation warning per layer
warnings.filterwarnings("ignore", message=r".*is deprecated and will be removed.*")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_pool import analyse_all, read_paths, ready, save  # noqa: E402

MODEL = "MSD_musicnn"
N_DIM = 200
INPUT_LENGTH_S = 3


# ------------------------------------------------------------- musicnn pieces
def n_frames_per_patch():
    import librosa
    from musicnn import configuration as config
    # exactly musicnn.extractor.extractor's conversion: 3 s -> 187 frames
    return int(librosa.time_to_frames(INPUT_LENGTH_S, sr=config.SR, n_fft=config.FFT_SIZE,
                                      hop_length=config.FFT_HOP)) + 1


def log_mel(path):
    """Log-mel spectrogram (time, 96) computed as musicnn.extractor.batch_data does."""
    import librosa
    import numpy as np
    from musicnn import configuration as config
    audio, sr = librosa.load(path, sr=config.SR)
    rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP,
                                         n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T
    rep = rep.astype(np.float16)
    rep = np.log10(10000 * rep + 1)
    return rep


def patches(rep, n_frames):
    """Non-overlapping patches (hop = n_frames), like batch_data(.., overlap=n_frames)."""
    n = (rep.shape[0] - n_frames) // n_frames + 1 if rep.shape[0] >= n_frames else 0
    if n <= 0:
        raise ValueError("song shorter than one %d s patch (%d frames)" % (INPUT_LENGTH_S, rep.shape[0]))
    return rep[: n * n_frames].reshape(n, n_frames, rep.shape[1])


class MusicnnNet:
    """MSD_musicnn graph + restored weights in a private graph/session."""

    def __init__(self, threads=1):
        import tensorflow as tf
        tf.compat.v1.disable_eager_execution()
        tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
        from musicnn import configuration as config
        from musicnn import models
        import musicnn

        self.n_frames = n_frames_per_patch()
        self.graph = tf.Graph()
        with self.graph.as_default():
            with tf.name_scope("model"):  # same scoping as musicnn.extractor
                self.x = tf.compat.v1.placeholder(tf.float32, [None, self.n_frames, config.N_MELS])
                self.is_training = tf.compat.v1.placeholder(tf.bool)
                (y, _timbral, _temporal, _cnn1, _cnn2, _cnn3, _mean_pool, _max_pool,
                 self.penultimate) = models.define_model(self.x, self.is_training, MODEL,
                                                         len(config.MSD_LABELS))
                self.tags = tf.nn.sigmoid(y)
            cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                           inter_op_parallelism_threads=threads)
            self.sess = tf.compat.v1.Session(graph=self.graph, config=cfg)
            saver = tf.compat.v1.train.Saver()
            ckpt = os.path.join(os.path.dirname(musicnn.__file__), MODEL) + "/"
            saver.restore(self.sess, ckpt)  # raises if the checkpoint is missing

    def run(self, batch_patches, batch_size, with_tags=False):
        """Per-patch penultimate (n, 200) [and taggram (n, 50)], batch by batch."""
        import numpy as np
        pens, tags = [], []
        fetch = [self.penultimate, self.tags] if with_tags else [self.penultimate]
        for s in range(0, batch_patches.shape[0], batch_size):
            out = self.sess.run(fetch, feed_dict={
                self.x: batch_patches[s:s + batch_size].astype(np.float32),
                self.is_training: False})
            pens.append(out[0])
            if with_tags:
                tags.append(out[1])
        pen = np.concatenate(pens, axis=0)
        return (pen, np.concatenate(tags, axis=0)) if with_tags else pen


# ---------------------------------------------------------------- worker side
_NET = None
_BATCH = 16


def _init_worker(barrier, batch_size):
    global _NET, _BATCH
    _BATCH = batch_size
    _NET = MusicnnNet(threads=1)
    ready(barrier, 600)  # TF imported and the model restored


def _analyse(path):
    import numpy as np
    c0 = time.process_time()
    try:
        p = patches(log_mel(path), _NET.n_frames)
        pen = _NET.run(p, _BATCH)
        vec = pen.mean(axis=0).astype(np.float32)
        if not np.all(np.isfinite(vec)):
            raise FloatingPointError("non-finite penultimate features")
        return (vec, p.shape[0]), None, time.process_time() - c0
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        return None, "%s: %s" % (type(e).__name__, e), time.process_time() - c0


# ---------------------------------------------------------------- verify
def verify(path, batch_size):
    """Compare our batched forward pass with musicnn.extractor on one song."""
    import contextlib
    import io
    import numpy as np
    from musicnn import configuration as config
    from musicnn import extractor as mx

    def run_extractor(bs):
        old = config.BATCH_SIZE
        config.BATCH_SIZE = bs  # musicnn reads it at call time
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints progress
                taggram, _labels, feats = mx.extractor(path, model=MODEL, input_length=INPUT_LENGTH_S,
                                                       extract_features=True)
        finally:
            config.BATCH_SIZE = old
        return taggram, feats["penultimate"]

    B = batch_size
    tag1, pen1 = run_extractor(1)   # musicnn's default: one patch per batch
    tagB, penB = run_extractor(B)   # same batch size as ours
    net = MusicnnNet(threads=1)
    batch_ref, _rep = mx.batch_data(path, net.n_frames, net.n_frames)
    ours_in = patches(log_mel(path), net.n_frames)
    pen, tags = net.run(ours_in, B, with_tags=True)
    n = pen.shape[0]

    def mad(a, b):
        return float(np.max(np.abs(a - b))) if a.shape == b.shape and a.size else None

    return {
        "path": path,
        "n_patches": int(n),
        "batch_size": B,
        "n_batches": int(-(-n // B)),
        "input_patches_equal_musicnn_batch_data": bool(np.array_equal(batch_ref, ours_in)),
        # --- musicnn default (BATCH_SIZE=1): first batch = patch 0
        "bs1_extractor_penultimate_rows_all_equal_row0 (bug)": bool(np.all(pen1 == pen1[0])),
        "bs1_ours_patch0_vs_extractor_first_batch_max_abs_diff": mad(pen[0], pen1[0]),
        # --- extractor with BATCH_SIZE=B: first batch = patches 0..B-1
        "bsB_extractor_penultimate_rows": int(penB.shape[0]),
        "bsB_extractor_taggram_rows": int(tagB.shape[0]),
        "bsB_ours_first_batch_vs_extractor_first_batch_max_abs_diff": mad(pen[:B], penB[:B]),
        "bsB_extractor_second_batch_is_copy_of_first (bug)":
            bool(penB.shape[0] >= 2 * B and np.array_equal(penB[B:2 * B], penB[:B])),
        # --- ours: every batch really computed
        "ours_second_batch_vs_first_batch_max_abs_diff": mad(pen[B:2 * B], pen[:min(B, n - B)]) if n > B else None,
        "ours_mean_batch0_vs_mean_batch1_l2": float(np.linalg.norm(pen[:B].mean(0) - pen[B:2 * B].mean(0))) if n > B else None,
        "ours_n_distinct_patch_vectors": int(len(np.unique(np.round(pen, 5), axis=0))),
        "ours_taggram_vs_extractor_taggram_all_patches_max_abs_diff (bs1 / bsB)": [mad(tags, tag1), mad(tags, tagB)],
        "song_vector_ours_vs_buggy_extractor_bs1_l2": float(np.linalg.norm(pen.mean(0) - pen1.mean(0))),
        "song_vector_l2_norm": float(np.linalg.norm(pen.mean(0))),
    }


# ---------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paths", required=True, help="text file, one audio path per line")
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes, 1 TF thread each (default 1)")
    ap.add_argument("--batch-size", type=int, default=16, help="3 s patches per TF run (default 16)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds to wait for any one song before marking it failed")
    ap.add_argument("--verify", action="store_true",
                    help="first check the workaround against musicnn's extractor on the first path")
    args = ap.parse_args(argv)

    import numpy as np

    paths = read_paths(args.paths)
    n = len(paths)
    jobs = max(1, min(args.jobs, n)) if n else 1

    if args.verify and n:
        report = verify(paths[0], args.batch_size)
        print("verify: " + json.dumps(report, indent=1), file=sys.stderr, flush=True)

    values, errors, cpu_s, wall_s, setup_s = analyse_all(
        "musicnn", paths, jobs, _init_worker, (args.batch_size,), _analyse, args.timeout, 600)
    feats = np.full((n, N_DIM), np.nan, dtype=np.float32)
    n_patches = np.zeros(n, dtype=np.int64)
    for i, value in enumerate(values):
        if value is not None:
            feats[i], n_patches[i] = value
    save(args.out, paths, feats, errors, {"n_patches": n_patches},
         {"wall_s": round(wall_s, 3), "setup_s": round(setup_s, 3), "cpu_s": round(cpu_s, 3),
          "jobs": jobs, "batch_size": args.batch_size})
    return 0


if __name__ == "__main__":
    sys.exit(main())
