"""The whole analysis of a new library against bliss and against decoding alone, side by side.

On the same files and with the same number of worker processes it measures:

  reform scan           a new library home: `reform scan`, whose workers also embed every
                        song with the shipped model (what a user waits for when pointing
                        ReFORM at a new folder), process start included
  reform scan, embedding across songs
                        the same, but the workers only analyse and the scan's own process
                        embeds, windows of many songs per batch (what a GPU gets; on the
                        CPU it competes with the workers for the same cores)
  reform scan --no-embed, then reform embed
                        the same in two steps: analysis alone, then embedding alone from
                        the stored spectrograms
  decode only           ReFORM's decoders alone in a pool of as many processes, no
                        resampling (bench/ingest.py's (b)): the floor no analysis can beat
  bliss                 bliss-audio's `Song(path).analysis` (the analyser behind blissify)
                        in its own virtual environment (bench/peers/setup.sh), the
                        command's whole wall time

Every pipeline runs ``--repeat`` times, in rounds, so that a change in the machine's load
falls on all of them; the table gives the median wall time of each, and the median CPU
time of its whole process tree, which a shared machine's load barely changes.

    bash bench/peers/setup.sh                               # once: the peers' venvs
    python bench/embed.py --realmusic DATA/realmusic.tsv [--jobs 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import link_folder, read_manifest, run_watched, table, warm_page_cache  # noqa: E402

from reform import Library  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the whole process tree, stdout) of a command."""
    wall, _, cpu, out = run_watched(cmd)
    return wall, cpu, out


def _decode_only(paths: list[str], jobs: int, work: Path) -> tuple[float, float]:
    """Wall seconds of decoding alone (bench/ingest.py's worker, timed after its pool starts
    and has decoded one file per process to warm up: the CPU seconds count those too)."""
    lst = work / "decode.txt"
    lst.write_text("\n".join(paths))
    _, cpu, out = _run([sys.executable, str(ROOT / "bench/ingest.py"), "--worker", "decode", "--list",
                        str(lst), "--jobs", str(jobs)])
    return float(out.split()[1]), cpu


ACROSS_SONGS = ("from reform import Library; import sys\n"
                "with Library(sys.argv[1]) as lib:\n"
                "    lib.scan(sys.argv[2], jobs=int(sys.argv[3]), embed=True, across_songs=True)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realmusic", required=True)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pipeline; the median is shown")
    parser.add_argument("--venvs", default=str(ROOT / ".bench-venvs"))
    args = parser.parse_args()

    paths = [r["path"] for r in read_manifest(args.realmusic)]
    paths = paths[: args.limit] if args.limit else paths
    audio_s = sum(float(r["duration_s"]) for r in read_manifest(args.realmusic)[: len(paths)])
    work = Path(tempfile.mkdtemp(prefix="reform-bench-embed-"))
    folder = link_folder(paths, work / "links")
    warm_page_cache(paths)
    bliss_py = Path(args.venvs) / "bliss" / "bin" / "python"
    jobs = str(args.jobs)
    load = os.getloadavg()[0]

    def reform(home: Path, *options: str) -> tuple[float, float]:
        wall, cpu, _ = _run([sys.executable, "-m", "reform", "--home", str(home), "-q", *options])
        return wall, cpu

    def embedded(home: Path, measured: tuple[float, float]) -> tuple[float, float]:
        with Library(home, create=False) as lib:
            if lib.stale_embeddings():
                raise SystemExit(f"the scan into {home} left {lib.stale_embeddings()} songs without "
                                 "an embedding")
        return measured

    def one_pass(home: Path) -> tuple[float, float]:
        return embedded(home, reform(home, "scan", str(folder), "--jobs", jobs))

    def across(home: Path) -> tuple[float, float]:
        return embedded(home, _run([sys.executable, "-c", ACROSS_SONGS, str(home), str(folder), jobs])[:2])

    def bliss() -> tuple[float, float, dict]:
        lst = work / "paths.txt"
        lst.write_text("\n".join(paths))
        wall, cpu, out = _run([str(bliss_py), str(ROOT / "bench/peers/bliss_features.py"), "--paths",
                               str(lst), "--out", str(work / "bliss.npz"), "--jobs", jobs])
        return wall, cpu, json.loads(out.strip().splitlines()[-1])

    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for r in range(args.repeat):
        home = work / f"round-{r}"
        runs = {"scan": lambda: one_pass(home / "one-pass"),
                "across": lambda: across(home / "across"),
                "no-embed": lambda: reform(home / "two-steps", "scan", str(folder), "--jobs", jobs, "--no-embed"),
                "embed": lambda: reform(home / "two-steps", "embed"),
                "decode": lambda: _decode_only(paths, args.jobs, work)}
        if bliss_py.exists():
            runs["bliss"] = lambda: bliss()[:2]
        for name, run in runs.items():
            wall, cpu = run()
            walls.setdefault(name, []).append(wall)
            cpus.setdefault(name, []).append(cpu)
            print(f"round {r + 1}: {name} {wall:.1f} s wall, {cpu:.1f} s CPU, load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)
        shutil.rmtree(home)
    med = {name: statistics.median(w) for name, w in walls.items()}
    cpu = {name: statistics.median(c) for name, c in cpus.items()}

    def row(name: str, key: str) -> list[str]:
        return [name, f"{med[key]:.1f}", f"{min(walls[key]):.1f}-{max(walls[key]):.1f}",
                f"{cpu[key]:.1f}", f"{len(paths) / med[key]:.2f}", f"{audio_s / med[key]:.0f}"]

    rows = [row("reform scan (analysis and embedding in the workers)", "scan"),
            row("reform scan, embedding across songs in one process", "across"),
            row("reform scan --no-embed (analysis only)", "no-embed"),
            row("reform embed (from stored spectrograms)", "embed"),
            row("decode only (ReFORM's decoders, no resampling)", "decode")]
    lines = [f"reform scan runs at {med['decode'] / med['scan']:.0%} of decode-only's speed by wall time "
             f"and uses {cpu['scan'] / cpu['decode']:.2f}x its CPU time (target: 70%, i.e. at most 1.43x)"]
    if "bliss" in med:
        rows.append(row("bliss (whole command)", "bliss"))
        lines.append(f"reform scan is {med['bliss'] / med['scan']:.2f}x as fast as bliss by wall time and "
                     f"uses {cpu['scan'] / cpu['bliss']:.2f}x its CPU time (target: 1.5x as fast); "
                     f"embedding across songs in one process, {med['bliss'] / med['across']:.2f}x")
    else:
        lines.append(f"(bliss not measured: run `bash bench/peers/setup.sh` to create {bliss_py.parent.parent})")
    print(f"{len(paths)} files, {audio_s / 3600:.2f} h of audio, {args.jobs} processes, the shipped model, "
          f"median of {args.repeat} runs (load average before: {load:.1f})\n")
    print(table(["pipeline", "wall s", "range s", "CPU s", "songs/s", "x realtime"], rows))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
