"""Where a scanned song's time goes: CPU seconds of each stage, one thread, on real songs.

For every ``--every``-th song of the manifest (``--songs`` of them) it times, in this
process with one torch thread: decoding at the file's own rate, resampling that to the
analysis rate with soxr (the scan's resampler and quality, on the whole signal instead of
blocks), the log-mel of every channel with the per-song clip, and embedding with the
shipped model (its first song includes loading the model, as in a scan worker).  Reading
the files once beforehand keeps the disk out of it.

    python bench/stages.py --realmusic DATA/realmusic.tsv [--songs 10] [--every 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import read_manifest, run_main, table, warm_page_cache  # noqa: E402

from reform import Library  # noqa: E402
from reform.audio import stream  # noqa: E402
from reform.config import AudioConfig, MelConfig  # noqa: E402
from reform.features import LogMel, clip_top_db  # noqa: E402


def cpu_seconds(fn):
    """(CPU seconds ``fn()`` took in this process, its result)."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def decoded(path: str, cfg: AudioConfig) -> np.ndarray:
    info, blocks = stream(path, cfg)
    return np.concatenate(list(blocks), axis=1)


def resampled(signal: np.ndarray, rate: int, cfg: AudioConfig) -> np.ndarray:
    """The whole signal through soxr at the scan's quality, channel by channel as the scan does
    (which streams it in blocks)."""
    if rate == cfg.sample_rate:
        return signal
    return np.stack([soxr.resample(row, rate, cfg.sample_rate, quality=cfg.resample_quality) for row in signal])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realmusic", required=True, help="realmusic.tsv (the files it lists)")
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--every", type=int, default=16, help="take every N-th song of the manifest")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = [row["path"] for row in read_manifest(args.realmusic)][::args.every][:args.songs]
    warm_page_cache(paths)
    audio_cfg, mel_cfg = AudioConfig(), MelConfig()
    logmel = LogMel(audio_cfg, mel_cfg)
    with tempfile.TemporaryDirectory() as home:
        embedding = Library(home).scan_embedding()       # the shipped model, as a scan's workers get it
    totals = dict.fromkeys(("decode", "resample", "log-mel", "embed"), 0.0)
    seconds = 0.0
    for path in paths:
        rate = stream(path, audio_cfg)[0].sample_rate
        decode, native = cpu_seconds(lambda: decoded(path, dataclasses.replace(audio_cfg, sample_rate=rate)))
        resample, signal = cpu_seconds(lambda: resampled(native, rate, audio_cfg))
        mel, spec = cpu_seconds(lambda: clip_top_db(logmel.spectrogram(signal), mel_cfg.top_db))
        embed, _ = cpu_seconds(lambda: embedding(spec.astype(np.float16)))
        for name, value in zip(totals, (decode, resample, mel, embed), strict=True):
            totals[name] += value
        seconds += signal.shape[1] / audio_cfg.sample_rate
    total = sum(totals.values())
    print(f"{len(paths)} songs, {seconds / 60:.1f} min of audio, one thread\n")
    print(table(["stage", "CPU s", "share", "against decoding"],
                [[name, f"{value:.2f}", f"{value / total:.0%}", f"{value / totals['decode']:.2f}x"]
                 for name, value in totals.items()]))
    rest = total - totals["decode"]
    print(f"\nresampling, log-mel and embedding together: {rest / totals['decode']:.2f}x decoding "
          f"(70 % of decode-only's speed allows at most 0.43x)")


if __name__ == "__main__":
    run_main(main)
