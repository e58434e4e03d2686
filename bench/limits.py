"""What hostile and long files cost: time and peak memory of `reform scan`.

Each file is scanned alone into a new home by ``reform scan --jobs 1`` (one worker: the
scan runs in the command's own process), the long ones with and without embedding (the
shipped model), and the peak resident memory of the whole process tree is sampled every
50 ms (bench/common.py):

* the issue's 39 KB WAV that declares a 1 Hz sample rate (5.6 hours of audio);
* a float WAV holding one infinite sample;
* stereo noise (16-bit, 22.05 kHz) of two lengths, by default 30 minutes and 1 hour:
  memory grows with the length, and these two give its slope, from which the peak at the
  longest file accepted (4 h of stereo) is extrapolated;
* 3 hours of stereo silence (rejected after its first 30 minutes).

Usage: ``nice -n 15 python bench/limits.py [--hours 0.5 1] [--parallel 1] [--keep DIR]``;
prints a Markdown table.  ``--parallel N`` scans N files at once (each is still one
process tree, measured alone).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from reform.audio import MAX_CHANNEL_HOURS

sys.path.insert(0, str(Path(__file__).parent))
from common import run_measured  # noqa: E402  (after the path is set)

LONGEST_ACCEPTED_HOURS = MAX_CHANNEL_HOURS / 2  # of stereo


def one_hertz(path: Path) -> Path:
    """20,000 samples at 22050 Hz, then the header's rate changed to 1 Hz."""
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 20000).astype(np.float32), 22050,
             subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = (1).to_bytes(4, "little")
    data[28:32] = (2).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def infinite(path: Path) -> Path:
    audio = (0.3 * np.sin(np.arange(22050 * 30) * 0.05)).astype(np.float32)
    audio[len(audio) // 2] = np.inf
    sf.write(path, audio, 22050, subtype="FLOAT")
    return path


def long_file(path: Path, hours: float, channels: int, rate: int, silent: bool = False) -> Path:
    """``hours`` of noise (or silence) written in blocks, 16-bit."""
    rng = np.random.default_rng(1)
    block = rate * 60
    with sf.SoundFile(path, "w", rate, channels, subtype="PCM_16") as out:
        for _ in range(int(hours * 60)):
            data = np.zeros((block, channels), np.float32) if silent else \
                rng.uniform(-0.3, 0.3, (block, channels)).astype(np.float32)
            out.write(data)
    return path


def measure(name: str, path: Path, embed: bool, home: Path) -> tuple[str, int]:
    """Scan ``path`` alone into ``home``: its table row and the peak memory in bytes."""
    cmd = [sys.executable, "-m", "reform", "--home", str(home), "-q", "scan", str(path),
           "--jobs", "1"] + ([] if embed else ["--no-embed"])
    wall, peak, _ = run_measured(cmd)
    errors = [sys.executable, "-m", "reform", "--home", str(home), "errors"]
    reason = subprocess.run(errors, capture_output=True, text=True, check=False).stdout.strip()
    outcome = "analysed" if reason == "no failures" else reason.split(": ", 1)[-1]
    row = (f"| {name} | {path.stat().st_size / 2**20:.1f} MiB | {'yes' if embed else 'no'} | {wall:.1f} | "
           f"{peak / 2**20:.0f} | {outcome} |")
    print(row, file=sys.stderr)
    return row, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", help="make the files here (and keep them) instead of a temporary folder")
    parser.add_argument("--hours", type=float, nargs=2, default=(0.5, 1.0), metavar=("SHORT", "LONG"),
                        help="the two lengths of noise (default 0.5 1)")
    parser.add_argument("--parallel", type=int, default=1, help="files scanned at once (default 1)")
    args = parser.parse_args()
    short, long = args.hours
    with tempfile.TemporaryDirectory(prefix="reform-limits-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        cases = [
            ("39 KB WAV declaring 1 Hz (5.6 h)", one_hertz, {}, (False,)),
            ("30 s float WAV with one infinite sample", infinite, {}, (False,)),
            (f"{short * 60:g} min of stereo noise", long_file, {"hours": short, "channels": 2, "rate": 22050},
             (False, True)),
            (f"{long * 60:g} min of stereo noise", long_file, {"hours": long, "channels": 2, "rate": 22050},
             (False, True)),
            ("3 h of stereo silence", long_file, {"hours": 3, "channels": 2, "rate": 4000, "silent": True},
             (False,)),
        ]
        runs = []
        for i, (name, make, options, embeds) in enumerate(cases):
            path = folder / f"case{i}.wav"
            if not path.exists():
                make(path, **options)
            runs += [(name, path, options.get("hours"), embed, Path(tmp) / f"home-{i}-{embed}") for embed in embeds]
        with ThreadPoolExecutor(args.parallel) as pool:
            results = list(pool.map(lambda run: measure(run[0], run[1], run[3], run[4]), runs))
        rows = [row for row, _ in results]
        peaks = {(hours, embed): peak for (_, _, hours, embed, _), (_, peak) in zip(runs, results)}
    print("| file | size | embedded | wall s | peak RSS MiB (all processes) | outcome |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    for embed in (False, True):
        slope = (peaks[long, embed] - peaks[short, embed]) / (long - short)  # bytes per hour of stereo
        bound = peaks[long, embed] + slope * (LONGEST_ACCEPTED_HOURS - long)
        print(f"\n{'with' if embed else 'without'} embedding: {slope / 2**20:.0f} MiB more per hour "
              f"of stereo; at the longest file accepted ({LONGEST_ACCEPTED_HOURS:g} h of stereo), "
              f"extrapolated: {bound / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
