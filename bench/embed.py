"""Embedding throughput, and the whole analysis of a new library against bliss, side by side.

On the same files and with the same number of worker processes it measures:

  reform scan + embed   a new library home: `reform scan` then `reform embed` (what a user
                        waits for when pointing ReFORM at a new folder), process start included
  reform embed          embedding alone, from the stored spectrograms
  bliss                 bliss-audio's `Song(path).analysis` (the analyser behind blissify)
                        in its own virtual environment (bench/peers/setup.sh), with the
                        command's whole wall time and the analysis time bliss reports

    bash bench/peers/setup.sh                               # once: the peers' venvs
    python bench/embed.py --realmusic DATA/realmusic.tsv [--model shipped] [--jobs 2]
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
    parser.add_argument("--model", default="shipped", help="model for `reform embed` (default: shipped)")
    parser.add_argument("--venvs", default=str(ROOT / ".bench-venvs"))
    args = parser.parse_args()

    paths = [r["path"] for r in read_manifest(args.realmusic)]
    paths = paths[: args.limit] if args.limit else paths
    audio_s = sum(float(r["duration_s"]) for r in read_manifest(args.realmusic)[: len(paths)])
    work = Path(tempfile.mkdtemp(prefix="reform-bench-embed-"))
    folder = link_folder(paths, work / "links")
    warm_page_cache(paths)
    reform = [sys.executable, "-m", "reform", "--home", str(work / "home"), "-q"]

    scan_wall, _ = _run(reform + ["scan", str(folder), "--jobs", str(args.jobs)])
    embed_wall, _ = _run(reform + ["embed", "--model", args.model])
    # embedding alone again, from stored spectrograms: forget the embeddings first
    import sqlite3

    with sqlite3.connect(work / "home" / "catalogue.db") as conn:
        conn.execute("DELETE FROM embeddings")
    embed_again, _ = _run(reform + ["embed", "--model", args.model])

    bliss_py = Path(args.venvs) / "bliss" / "bin" / "python"
    rows = [["reform scan + embed", f"{scan_wall + embed_wall:.1f}", f"{len(paths) / (scan_wall + embed_wall):.2f}",
             f"{audio_s / (scan_wall + embed_wall):.0f}"],
            ["  of which scan", f"{scan_wall:.1f}", f"{len(paths) / scan_wall:.2f}", f"{audio_s / scan_wall:.0f}"],
            ["reform embed (stored spectrograms)", f"{embed_again:.1f}", f"{len(paths) / embed_again:.2f}",
             f"{audio_s / embed_again:.0f}"]]
    ratio = ""
    if bliss_py.exists():
        lst = work / "paths.txt"
        lst.write_text("\n".join(paths))
        bliss_wall, out = _run([str(bliss_py), str(ROOT / "bench/peers/bliss_features.py"), "--paths", str(lst),
                                "--out", str(work / "bliss.npz"), "--jobs", str(args.jobs)])
        report = json.loads(out.strip().splitlines()[-1])
        rows.append(["bliss (whole command)", f"{bliss_wall:.1f}", f"{len(paths) / bliss_wall:.2f}",
                     f"{audio_s / bliss_wall:.0f}"])
        rows.append(["bliss (analysis only, as it reports)", f"{report['wall_s']:.1f}",
                     f"{len(paths) / report['wall_s']:.2f}", f"{audio_s / report['wall_s']:.0f}"])
        ratio = (f"\nreform scan + embed is {bliss_wall / (scan_wall + embed_wall):.2f}x faster than the bliss "
                 f"command and {report['wall_s'] / (scan_wall + embed_wall):.2f}x faster than bliss's own "
                 f"analysis time ({report['failed']} files bliss could not decode)")
    else:
        ratio = f"\n(bliss not measured: run `bash bench/peers/setup.sh` to create {bliss_py.parent.parent})"
    print(f"{len(paths)} files, {audio_s / 3600:.2f} h of audio, {args.jobs} processes, model {args.model}\n")
    print(table(["pipeline", "wall s", "songs/s", "x realtime"], rows))
    print(ratio)


if __name__ == "__main__":
    main()
