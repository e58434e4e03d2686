"""Query latency of the nearest-neighbour indexes at 10k, 100k and 1M songs (synthetic embeddings).

The embeddings imitate a music library: 128-d, drawn around one centre per
"album" (10 to 20 songs each) plus noise, L2-normalised.  For each size it
builds the exact index and the FAISS HNSW index, runs single queries (top-10,
cosine) for held-out songs, and prints p50/p95 latency and recall@10 of FAISS
against the exact answer.

    python bench/query.py                     # 10k, 100k, 1M
    python bench/query.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import table  # noqa: E402

from reform.index import ExactIndex, FaissIndex  # noqa: E402


def synthetic(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 15), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def latencies(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    times, ids = [], []
    index.search(queries[:1], k)  # warm-up
    for q in queries:
        start = time.perf_counter()
        _, found = index.search(q[None], k)
        times.append(time.perf_counter() - start)
        ids.append(found[0])
    return np.array(times) * 1000, np.array(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        data = synthetic(n + args.queries, seed=n)
        base, queries = data[:n], data[n:]
        exact = ExactIndex(base)
        t_exact, truth = latencies(exact, queries)
        start = time.perf_counter()
        hnsw = FaissIndex(base)
        build = time.perf_counter() - start
        t_faiss, found = latencies(hnsw, queries)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
        rows.append([f"{n:,}", f"{np.percentile(t_exact, 50):.2f}", f"{np.percentile(t_exact, 95):.2f}",
                     f"{np.percentile(t_faiss, 50):.3f}", f"{np.percentile(t_faiss, 95):.3f}",
                     f"{recall:.3f}", f"{build:.0f}", f"{np.median(t_exact) / np.median(t_faiss):.0f}x"])
        print(f"done {n:,}", file=sys.stderr, flush=True)
    print(table(["songs", "exact p50 ms", "exact p95 ms", "FAISS HNSW p50 ms", "FAISS p95 ms",
                 "FAISS recall@10", "HNSW build s", "exact/FAISS p50"], rows))


if __name__ == "__main__":
    main()
