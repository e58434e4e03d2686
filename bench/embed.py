"""Embedding throughput, and the whole analysis of a new library against bliss, side by side.

On the same files and with the same number of worker processes it measures:

  reform scan           a new library home: `reform scan`, whose workers also embed every
                        song with the shipped model (what a user waits for when pointing
                        ReFORM at a new folder), process start included
  reform scan --no-embed, then reform embed
                        the same in two steps: analysis alone, then embedding alone from
                        the stored spectrograms
  bliss                 bliss-audio's `Song(path).analysis` (the analyser behind blissify)
                        in its own virtual environment (bench/peers/setup.sh), with the
                        command's whole wall time and the analysis time bliss reports

    bash bench/peers/setup.sh                               # once: the peers' venvs
    python bench/embed.py --realmusic DATA/realmusic.tsv [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import link_folder, read_manifest, table, warm_page_cache  # noqa: E402

from reform import Library  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realmusic", required=True)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--venvs", default=str(ROOT / ".bench-venvs"))
    args = parser.parse_args()

    paths = [r["path"] for r in read_manifest(args.realmusic)]
    paths = paths[: args.limit] if args.limit else paths
    audio_s = sum(float(r["duration_s"]) for r in read_manifest(args.realmusic)[: len(paths)])
    work = Path(tempfile.mkdtemp(prefix="reform-bench-embed-"))
    folder = link_folder(paths, work / "links")
    warm_page_cache(paths)

    def reform(home: str, *options: str) -> float:
        wall, _ = _run([sys.executable, "-m", "reform", "--home", str(work / home), "-q", *options])
        return wall

    full = reform("one-pass", "scan", str(folder), "--jobs", str(args.jobs))
    with Library(work / "one-pass", create=False) as lib:
        if lib.stale_embeddings():
            raise SystemExit(f"`reform scan` left {lib.stale_embeddings()} songs without an embedding")
    scan_only = reform("two-steps", "scan", str(folder), "--jobs", str(args.jobs), "--no-embed")
    embed_only = reform("two-steps", "embed")

    bliss_py = Path(args.venvs) / "bliss" / "bin" / "python"

    def row(name: str, wall: float) -> list[str]:
        return [name, f"{wall:.1f}", f"{len(paths) / wall:.2f}", f"{audio_s / wall:.0f}"]

    rows = [row("reform scan (analysis and embedding)", full),
            row("reform scan --no-embed (analysis only)", scan_only),
            row("reform embed (from stored spectrograms)", embed_only)]
    if bliss_py.exists():
        lst = work / "paths.txt"
        lst.write_text("\n".join(paths))
        bliss_wall, out = _run([str(bliss_py), str(ROOT / "bench/peers/bliss_features.py"), "--paths", str(lst),
                                "--out", str(work / "bliss.npz"), "--jobs", str(args.jobs)])
        report = json.loads(out.strip().splitlines()[-1])
        rows.append(row("bliss (whole command)", bliss_wall))
        rows.append(row("bliss (analysis only, as it reports)", report["wall_s"]))
        ratio = (f"\nreform scan is {bliss_wall / full:.2f}x as fast as the bliss command and "
                 f"{report['wall_s'] / full:.2f}x as fast as bliss's own analysis time "
                 f"({report['failed']} files bliss could not decode); in two steps "
                 f"{bliss_wall / (scan_only + embed_only):.2f}x")
    else:
        ratio = f"\n(bliss not measured: run `bash bench/peers/setup.sh` to create {bliss_py.parent.parent})"
    print(f"{len(paths)} files, {audio_s / 3600:.2f} h of audio, {args.jobs} processes, the shipped model\n")
    print(table(["pipeline", "wall s", "songs/s", "x realtime"], rows))
    print(ratio)


if __name__ == "__main__":
    main()
