"""Helpers shared by the benchmarks: the realmusic manifest, linked folders, memory sampling."""

from __future__ import annotations

import csv
import os
import subprocess
import threading
import time
from pathlib import Path

REALMUSIC_DEFAULT = os.environ.get("REALMUSIC", "")


def read_manifest(tsv: str | os.PathLike) -> list[dict]:
    """Rows of realmusic.tsv (path, group, duration_s, channels, sample_rate, source_package)."""
    with open(tsv, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


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


def _tree_rss(pid: int) -> int:
    """Resident memory in bytes of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return total


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak RSS of its whole process tree, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, peak, out


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
