"""Kill loops and concurrent writers: does a library home lose anything?

Three experiments on a synthetic library (the demo's 5 artists x 4 songs, 20 s each),
run as a user would, through the ``reform`` command:

* **scan kill loops**: a new home; ``reform scan`` (analysis, and embedding with the
  shipped model) is killed with SIGKILL, its whole process group, at a random moment
  between its start and the end of an uninterrupted scan; the home is checked; the
  scan is run again to its end; the home is checked again.
* **train kill loops**: a copy of a scanned home; ``reform train`` of a tiny model is
  killed the same way; then ``reform train --resume`` (or, when the kill came before
  the first epoch ended, the start again its error message asks for) runs to the end.
* **concurrent writers**: two ``reform scan`` of one new home, started together.

Checked after each kill or run: the catalogue (SQLite's integrity check and every row
read back, as ``reform check`` does), every song the catalogue records (its spectrogram
exists, has the recorded shape and is finite), every checkpoint (it loads); after the
next complete scan: songs without an embedding and temporary files left behind.

Usage: ``nice -n 15 python bench/chaos.py [--loops 20] [--runs 10] [--parallel 1] [--seed 0]``;
prints a Markdown table (README, "Nothing lost").  ``--parallel N`` runs N loops at once,
each in its own home; the kill moments are drawn over the median time of N uninterrupted
runs made at once, so that they fall inside the runs under the same load.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

TINY = ["--widths", "4,8", "--embedding-dim", "8", "--max-epochs", "3", "--batch-size", "8",
        "--cluster-batch-size", "4", "--threads", "1", "--seed", "0"]


def reform(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "reform", "--home", str(home), "-q", *args]


@dataclass
class Counts:
    runs: int = 0
    killed: int = 0                 # the process was still running when the signal came
    corrupt_catalogues: int = 0
    unreadable_songs: int = 0       # recorded as analysed, without a readable spectrogram
    corrupt_checkpoints: int = 0
    missing_embeddings: int = 0     # after the next complete scan
    leftover_temporaries: int = 0   # after the next complete scan
    failed_reruns: int = 0          # the scan (or resume) after the kill did not finish
    notes: dict[str, int] = field(default_factory=dict)

    def note(self, key: str, n: int = 1) -> None:
        self.notes[key] = self.notes.get(key, 0) + n

    def add(self, other: Counts) -> Counts:
        for name in fields(self):
            if name.name != "notes":
                setattr(self, name.name, getattr(self, name.name) + getattr(other, name.name))
        for key, n in other.notes.items():
            self.note(key, n)
        return self


def inspect(home: Path, counts: Counts) -> int:
    """Check the catalogue and every recorded song; returns the songs recorded."""
    from reform import Library
    from reform.check import catalogue_problem, spectrogram_problem

    catalogue = home / "catalogue.db"
    if not catalogue.exists():
        return 0  # killed before the home had a catalogue: nothing recorded, nothing to lose
    if catalogue_problem(catalogue):
        counts.corrupt_catalogues += 1
        return 0
    with Library(home, create=False) as lib:
        rows = lib.songs()
        counts.unreadable_songs += sum(spectrogram_problem(lib.home, r, lib.audio, lib.mel) is not None
                                       for r in rows)
        return len(rows)


def finish(home: Path, music: Path, counts: Counts) -> None:
    """The next complete scan, then what it must leave: every song embedded, no temporaries."""
    from reform import Library

    done = subprocess.run(reform(home, "scan", str(music)), capture_output=True, text=True)
    if done.returncode != 0:
        counts.failed_reruns += 1
        print(f"  rerun failed: {done.stderr.strip()}", file=sys.stderr)
        return
    inspect(home, counts)
    with Library(home, create=False) as lib:
        counts.missing_embeddings += lib.stale_embeddings()
    counts.leftover_temporaries += sum(1 for _ in home.rglob("*.tmp-*"))


def kill_at(cmd: list[str], delay: float) -> bool:
    """Start ``cmd`` in its own process group and SIGKILL the group after ``delay`` s;
    True when it was still running then."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def scan_loop(work: Path, music: Path, full: float, rng: random.Random, i: int) -> Counts:
    counts = Counts(runs=1)
    home = work / f"scan-{i}"
    killed = kill_at(reform(home, "scan", str(music)), rng.uniform(0.0, full))
    counts.killed += killed
    recorded = inspect(home, counts)
    counts.note(f"killed with {'0' if recorded == 0 else '1-19' if recorded < 20 else '20'} songs recorded"
                if killed else "finished before the signal")
    finish(home, music, counts)
    shutil.rmtree(home)
    return counts


def checkpoint_loads(folder: Path, counts: Counts) -> None:
    from reform.checkpoint import load
    from reform.errors import ModelError

    for name in ("checkpoint.pt", "pretrain.pt", "model.pt"):
        if (folder / name).exists():
            try:
                load(folder / name)
            except ModelError:
                counts.corrupt_checkpoints += 1


def train_loop(work: Path, scanned: Path, full: float, rng: random.Random, i: int) -> Counts:
    counts = Counts(runs=1)
    home = work / f"train-{i}"
    shutil.copytree(scanned, home)
    killed = kill_at(reform(home, "train", "--name", "run", *TINY), rng.uniform(0.0, full))
    counts.killed += killed
    folder = home / "models" / "run"
    checkpoint_loads(folder, counts)
    inspect(home, counts)
    again = subprocess.run(reform(home, "train", "--name", "run", "--resume"), capture_output=True, text=True)
    if again.returncode == 0:
        counts.note("resumed")
    elif "nothing to do" in again.stderr and (folder / "model.pt").exists():
        counts.note("had finished; resume refused, nothing to do")
    elif "stopped before its first epoch ended" in again.stderr:
        counts.note("killed before the first checkpoint: started again, as the error says")
        again = subprocess.run(reform(home, "train", "--name", "run", *TINY), capture_output=True, text=True)
    if again.returncode != 0 or not (folder / "model.pt").exists():
        counts.failed_reruns += 1
        print(f"  training after the kill failed: {again.stderr.strip()}", file=sys.stderr)
    checkpoint_loads(folder, counts)
    counts.leftover_temporaries += sum(1 for _ in folder.glob("*.tmp*"))
    shutil.rmtree(home)
    return counts


def concurrent_run(work: Path, music: Path, rng: random.Random, i: int) -> Counts:
    counts = Counts(runs=1)
    home = work / f"both-{i}"
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen(reform(home, "scan", str(music)), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
        time.sleep(rng.uniform(0.0, 0.5))
    for p in procs:
        err = p.communicate()[1]
        counts.note("exit 0" if p.returncode == 0 else "refused: busy" if "busy" in err else f"exit {p.returncode}")
    inspect(home, counts)
    finish(home, music, counts)
    shutil.rmtree(home)
    return counts


def table(rows: list[tuple[str, Counts]]) -> str:
    head = ("| experiment | runs | killed mid-work | corrupt catalogues | songs recorded without a "
            "readable spectrogram | corrupt checkpoints | songs without an embedding after the next "
            "scan | temporary files left | reruns that failed | outcomes |")
    lines = [head, "|" + "---|" * 10]
    for name, c in rows:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(c.notes.items()))
        lines.append(f"| {name} | {c.runs} | {c.killed} | {c.corrupt_catalogues} | {c.unreadable_songs} | "
                     f"{c.corrupt_checkpoints} | {c.missing_embeddings} | {c.leftover_temporaries} | "
                     f"{c.failed_reruns} | {outcomes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=20, help="kill loops of each kind (default 20)")
    parser.add_argument("--runs", type=int, default=10, help="concurrent-writer runs (default 10)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="loops run at once, each in its own home (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    args = parser.parse_args()
    from reform import demo

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reform-chaos-") as tmp:
        work = Path(tmp)
        music = work / "music"
        demo.build(music, songs_per_artist=4, seconds=20.0)
        scanned = work / "scanned"
        subprocess.run(reform(scanned, "scan", str(music), "--no-embed"), check=True, capture_output=True)
        with ThreadPoolExecutor(args.parallel) as pool:  # timed under the load the loops will make
            scan_s = statistics.median(pool.map(
                lambda i: timed(reform(work / f"scan-timing-{i}", "scan", str(music))), range(args.parallel)))
            for i in range(args.parallel):
                shutil.copytree(scanned, work / f"train-timing-{i}")
            train_s = statistics.median(pool.map(
                lambda i: timed(reform(work / f"train-timing-{i}", "train", "--name", "run", *TINY)),
                range(args.parallel)))
        print(f"uninterrupted: a scan takes {scan_s:.1f} s, a training run {train_s:.1f} s", file=sys.stderr)

        def rng(kind: str, i: int) -> random.Random:  # the same moments whatever --parallel
            return random.Random(f"{args.seed}-{kind}-{i}")

        jobs = [("scan", lambda i: scan_loop(work, music, scan_s, rng("scan", i), i), args.loops),
                ("train", lambda i: train_loop(work, scanned, train_s, rng("train", i), i), args.loops),
                ("both", lambda i: concurrent_run(work, music, rng("both", i), i), args.runs)]
        totals = {kind: Counts() for kind, _, _ in jobs}
        with ThreadPoolExecutor(args.parallel) as pool:
            futures = [(kind, pool.submit(job, i)) for kind, job, n in jobs for i in range(n)]
            for kind, future in futures:
                totals[kind].add(future.result())
                print(f"  {kind}: {totals[kind].runs} done", file=sys.stderr)
    print(table([("scan, killed at a random moment", totals["scan"]),
                 ("train (tiny model), killed at a random moment", totals["train"]),
                 ("two scans of one new home at once", totals["both"])]))
    print(f"\n{time.perf_counter() - started:.0f} s in all; {args.parallel} at once; seed {args.seed}")


if __name__ == "__main__":
    main()
