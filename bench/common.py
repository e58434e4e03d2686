"""Helpers shared by the benchmarks: the realmusic manifest, linked folders, memory sampling."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REALMUSIC_DEFAULT = os.environ.get("REALMUSIC", "")


def read_manifest(tsv: str | os.PathLike) -> list[dict]:
    """Rows of realmusic.tsv (path, group, duration_s, channels, sample_rate, source_package)."""
    if not os.path.isfile(tsv):
        raise SystemExit(f"error: no manifest at {tsv} (../shared/realmusic/fetch.sh DIR writes DIR/realmusic.tsv)")
    with open(tsv, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def run_main(main) -> None:
    """Run a benchmark's ``main``: ReFORM's own errors (no library at the path given, a bad
    setting) end it with their one-line message, and Ctrl-C with "interrupted" (exit code 130),
    instead of a traceback."""
    from reform.errors import ReformError

    try:
        main()
    except ReformError as exc:
        raise SystemExit(f"error: {exc}") from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def link_folder(paths: list[str], folder: Path) -> Path:
    """A folder of symbolic links named by index, so a scan sees exactly these files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(paths):
        link = folder / f"{i:04d}{Path(p).suffix}"
        if not link.exists():
            os.symlink(p, link)
    return folder


def warm_page_cache(paths: list[str]) -> None:
    """Read every file once so that no pipeline pays for the first disk read."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 22):
                pass


def _tree(pid: int) -> tuple[int, dict[int, float]]:
    """Resident memory in bytes of a process and all its descendants, and the CPU seconds
    (user and system) each of them has used so far."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    total, used, stack = 0, {}, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        used[p] = cpu.get(p, 0.0)
        stack.extend(children.get(p, []))
    return total, used


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak RSS of its whole process tree, stdout)."""
    wall, peak, _, out = run_watched(cmd, env)
    return wall, peak, out


def run_watched(cmd: list[str], env: dict | None = None) -> tuple[float, int, float, str]:
    """Run a command; return (wall seconds, peak RSS of its whole process tree, CPU seconds
    of that tree, stdout).  Both are sampled every 50 ms: the CPU a process uses in the
    moment before it exits is missed, and a shared machine's load barely changes it."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    cpu: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            rss, used = _tree(proc.pid)
            peak = max(peak, rss)
            cpu.update(used)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, peak, sum(cpu.values()), out


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
