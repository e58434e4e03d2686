"""The search index at 10k to 10M songs, each kind measured the same way, and a query on a
million-song home timed as a command.

Index kinds (synthetic embeddings: drawn around one centre per "album" of about 15
songs, L2-normalised, 200 held-out queries, top-10 by cosine): for each size and kind,
the build time, the memory per song (what a loaded index holds in memory; the vectors
file it re-scores from is memory-mapped and counted apart), the load time of the stored
file (read and check, as every command does), p50/p99 latency of one query, and recall@10
against the exact answer.

    python bench/query.py                                   # 10k, 100k, 1M; every kind
    python bench/query.py --sizes 10000000 --kinds exact ivf-pq

A home (``--home DIR --songs N``): N synthetic songs written through the catalogue (rows
and embeddings, no audio), the stored index built as a scan would, then ``reform similar
PATH`` and ``reform similar WORDS`` timed as commands, start included, and the CLI's
import time.

    python bench/query.py --home /tmp/home1m --songs 1000000

Ranking (``--expansion N``): ``Recommender.similar`` over N synthetic songs in an exact index,
ranked by the walk (the default), by the expanded query and by the plain cosine, interleaved.

    python bench/query.py --expansion 200000 --dim 256
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import run_main, table  # noqa: E402

from reform.index import KINDS, build_index  # noqa: E402
from reform.songindex import SongIndex, read, write  # noqa: E402


def synthetic(n: int, dim: int = 128, seed: int = 0, chunk: int = 1_000_000) -> np.ndarray:
    """(n, dim) float32 unit vectors around n/15 centres, made in chunks (10M fit in 24 GiB)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 15), dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centres[rng.integers(0, len(centres), m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def truth(base: np.ndarray, queries: np.ndarray, k: int = 10, chunk: int = 500_000) -> np.ndarray:
    """The exact top-k rows of ``base`` for each query, in chunks."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(base), chunk):
        s = queries @ base[start:start + chunk].T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], 1)
        best_i = np.concatenate([best_i, top + start], 1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def latencies(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    times, ids = [], []
    index.search(queries[:1], k)  # warm-up
    for q in queries:
        start = time.perf_counter()
        _, found = index.search(q[None], k)
        times.append(time.perf_counter() - start)
        ids.append(found[0])
    return np.array(times) * 1000, np.array(ids)


def measure_kinds(sizes: list[int], kinds: list[str], n_queries: int, dim: int, folder: Path) -> str:
    rows = []
    for n in sizes:
        data = synthetic(n + n_queries, dim, seed=n)
        base, queries = data[:n], data[n:]
        want = truth(base, queries)
        hashes = [f"{i:016x}" for i in range(n)]
        for kind in kinds:
            start = time.perf_counter()
            index = build_index(base, "cosine", kind)
            build = time.perf_counter() - start
            songs = SongIndex(np.array([h.encode() for h in hashes]), np.arange(n), index, "bench", 0, "", n)
            path = folder / f"{kind}.index"
            write(path, songs)
            del songs, index
            start = time.perf_counter()
            loaded = read(path)
            load = time.perf_counter() - start
            t, found = latencies(loaded.index, queries)
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, want)])
            structure = loaded.index.structure
            in_memory = (len(_bytes(structure)) if structure is not None else base.nbytes) / n
            disk = path.stat().st_size / n
            rows.append([f"{n:,}", kind, f"{build:.1f}", f"{in_memory:.0f}", f"{disk:.0f}", f"{load:.2f}",
                         f"{np.percentile(t, 50):.2f}", f"{np.percentile(t, 99):.2f}", f"{recall:.3f}"])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
            del loaded
            path.unlink()
    return table(["songs", "kind", "build s", "memory B/song", "file B/song", "load s", "p50 ms", "p99 ms",
                  "recall@10"], rows)


def _bytes(structure) -> np.ndarray:
    from reform.index import structure_bytes

    return structure_bytes(structure)


def make_home(home: Path, n: int, dim: int) -> None:
    """A home of ``n`` songs with synthetic rows and embeddings (no audio), its index stored."""
    from reform import Library
    from reform.store import SpectrogramInfo, Tags

    with Library(home) as lib:
        catalogue = lib.home.catalogue
        if catalogue.has_songs():
            return
        vectors = synthetic(n, dim, seed=1)
        for start in range(0, n, 100_000):
            with catalogue.transaction():
                for i in range(start, min(n, start + 100_000)):
                    digest = f"{i:064x}"
                    info = SpectrogramInfo(digest, 2, 10_000, 232.0, 44100, "flac")
                    tags = Tags(f"Artist {i // 150}", f"Album {i // 15}", f"Title {i}", i % 15 + 1, 2000, "rock")
                    catalogue.put_ok(f"/music/{i // 150}/{i // 15}/{i:07d}.flac", 1, 1, info, tags, "fv")
                catalogue.put_embeddings("synthetic", ((f"{i:064x}", vectors[i])
                                                       for i in range(start, min(n, start + 100_000))))
            print(f"wrote {min(n, start + 100_000):,} songs", file=sys.stderr, flush=True)
        with catalogue.transaction():
            lib.home.set_embedding_model("synthetic")
        start = time.perf_counter()
        lib.update_index()
        print(f"index built in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def time_command(argv: list[str], runs: int = 5) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def measure_home(home: Path, n: int, dim: int) -> str:
    make_home(home, n, dim)
    reform = str(Path(sys.executable).with_name("reform"))
    song = f"/music/{(n // 2) // 150}/{(n // 2) // 15}/{n // 2:07d}.flac"
    rows = []
    for name, argv in [("reform --version (start and argument parsing)", [reform, "--version"]),
                       ("python -c 'import reform.cli'", [sys.executable, "-c", "import reform.cli"]),
                       ("reform similar PATH", [reform, "--home", str(home), "similar", song]),
                       ("reform similar PATH --json -n 50", [reform, "--home", str(home), "similar", song,
                                                             "--json", "-n", "50"]),
                       ("reform similar WORDS", [reform, "--home", str(home), "similar", f"Title {n // 2}"])]:
        t = time_command(argv)
        rows.append([name, f"{np.median(t):.2f}", f"{max(t):.2f}"])
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return table([f"command, {n:,} songs", "median s (5 runs)", "max s"], rows)


def measure_expansion(n: int, dim: int, runs: int = 15) -> str:
    """Median time of one ``similar`` query ranked by the walk, by the expanded query and by the
    plain cosine, side by side."""
    from reform.recommend import EXPAND, WALK, Recommender
    from reform.store import FileRow

    songs = SongIndex.build([f"h{i}" for i in range(n)], synthetic(n, dim), "cosine", "exact")

    def row(digest: str) -> FileRow:
        # titles and lengths of their own: songs of one title, as long within a second, are files of
        # one recording, and a library of such copies would send every query through all of it
        i = int(digest[1:])
        return FileRow(i, f"/m/{digest}.ogg", 1, 1, digest, "ok", None, 100.0 + i % 600, 44100, 2, 100,
                       "ogg", "fv", f"artist {i % 5000}", "b", f"title {i}", None, None, None, 0.0)

    def rows(hashes: list[str]) -> dict[str, FileRow]:
        return {h: row(h) for h in hashes}

    recs = {f"walk {WALK} (the default)": Recommender(songs, rows, walk=WALK),
            f"expand {EXPAND}": Recommender(songs, rows, expand=EXPAND),
            "plain cosine": Recommender(songs, rows, expand=0)}
    seconds: dict[str, list[float]] = {name: [] for name in recs}
    for i in range(runs):
        for name, rec in recs.items():
            seed = rec.seed_of(row(f"h{i}"))
            start = time.perf_counter()
            rec.similar(seed, 10)
            seconds[name].append(time.perf_counter() - start)
    plain = np.median(seconds["plain cosine"])
    return table(["ranking", "median ms", "against the plain cosine"],
                 [[name, f"{np.median(t) * 1000:.1f}", f"{np.median(t) / plain:.2f}x"] for name, t in seconds.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=128, help="vector size (the shipped model's songs: 256)")
    parser.add_argument("--home", type=Path, help="time commands on a synthetic home here (made if empty)")
    parser.add_argument("--songs", type=int, default=1_000_000, help="songs of the --home")
    parser.add_argument("--expansion", type=int, metavar="N", help="time the walk and query expansion over N songs")
    args = parser.parse_args()
    if args.expansion is not None and args.expansion < 15:
        parser.error(f"--expansion needs at least 15 songs (each is a query once), not {args.expansion}")
    if args.expansion:
        print(measure_expansion(args.expansion, args.dim))
        return
    if args.home:
        print(measure_home(args.home, args.songs, args.dim))
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
        print(measure_kinds(args.sizes, args.kinds, args.queries, args.dim, Path(folder)))


if __name__ == "__main__":
    run_main(main)
