"""Nearest-neighbour search over song vectors: exact, or a FAISS structure re-scored exactly.

Every index answers ``search(queries, k)`` with (scores, slots), best first, where a
higher score is always more similar and a slot of -1 fills a row with fewer answers:

* ``cosine`` (default): the dot product of unit vectors;
* ``dot``: the raw inner product;
* ``euclidean``: minus the squared distance.

An :class:`Index` holds the prepared vectors (unit length for cosine) itself, possibly
memory-mapped from the home's stored index, and for the approximate kinds a FAISS
structure that proposes candidates; the candidates are then scored exactly on the
vectors, so an approximate kind can only miss songs, never misorder them.  The kinds
(bench/query.py measures each):

* ``exact``: one matrix product over every vector; no build;
* ``ivf-pq``: an inverted file of product-quantised codes (about ``D/4 + 8`` bytes per
  song in memory), the kind stored for large libraries: it builds in minutes at a
  million songs, loads in milliseconds, and takes songs in and out without a rebuild;
* ``ivf-flat`` and ``hnsw``: measured beside it, not stored by default (``hnsw`` cannot
  remove a song, and both hold every vector a second time in memory).

Slots of removed songs (see :meth:`Index.remove`) stay in ``vectors`` but are never
answered.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .errors import ConfigError

METRICS = ("cosine", "dot", "euclidean")
KINDS = ("exact", "ivf-pq", "ivf-flat", "hnsw")
APPROXIMATE = "ivf-pq"      # the kind built above EXACT_LIMIT songs
EXACT_LIMIT = 200_000       # measured: an exact query stays under 5 ms to here (bench/query.py)
MIN_APPROXIMATE = 1024      # below this a FAISS structure cannot be trained and gains nothing
REFINE = 10                 # ivf-pq: candidates scored exactly per answer wanted (at least 100)
LISTS_PER_ROOT = 4          # ivf: 4 sqrt(N) inverted lists (sqrt(N) gave recall@10 0.87 at 1M)
PROBE_SHARE = 20            # ivf: one list in 20 is searched (at least 16)
TRAIN_PER_LIST = 40         # ivf: training vectors per list (FAISS warns below 39) ...
MAX_TRAIN = 131_072         # ... up to this many, in 10 rounds of k-means: minutes at 1M songs
PQ_TRAIN = 39 * 256         # ivf-pq: training vectors for its 256 codes per part (FAISS warns below)


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as the index compares them: float32 rows, unit length for cosine: (N, D)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    return x


def choose_kind(n: int, kind: str = "auto") -> str:
    """The kind to build for ``n`` songs: "auto" is exact up to EXACT_LIMIT, then ivf-pq;
    "faiss" is the approximate kind whatever the size.  Too few songs to train a FAISS
    structure always get the exact index."""
    if kind not in ("auto", "faiss", *KINDS):
        raise ConfigError(f"unknown index {kind!r}; use auto, exact, faiss or one of {', '.join(KINDS[1:])}")
    if kind == "auto":
        kind = "exact" if n <= EXACT_LIMIT else APPROXIMATE
    elif kind == "faiss":
        kind = APPROXIMATE
    return "exact" if n < MIN_APPROXIMATE else kind


class Index:
    """Prepared vectors and, for the approximate kinds, the FAISS structure over them.

    Parameters
    ----------
    vectors : (N, D) float32, already :func:`prepare`-d (may be a read-only memory map)
    metric : one of METRICS
    kind : one of KINDS
    structure : the FAISS index over ``vectors`` (its ids are the slots); None for exact
    live : (N,) bool, False for removed slots; None when every slot is live
    """

    def __init__(self, vectors: np.ndarray, metric: str = "cosine", kind: str = "exact",
                 structure=None, live: np.ndarray | None = None,
                 check: Callable[[np.ndarray | None], None] | None = None):
        self.vectors = vectors
        self.metric = metric
        self.kind = kind
        self.structure = structure
        self.live = live
        self.check = check   # verifies stored vectors before they are used (None: all, or slots)

    def rows(self, slots: np.ndarray | None = None) -> np.ndarray:
        """The vectors of some slots (all for None), checked first when they were stored: (n, D)."""
        if self.check is not None:
            self.check(slots)
        return np.asarray(self.vectors if slots is None else self.vectors[slots])

    def __len__(self) -> int:
        return len(self.vectors) if self.live is None else int(self.live.sum())

    def _compare(self, q: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Scores of prepared queries (q, D) against prepared vectors (n, D): (q, n)."""
        s = q @ x.T
        if self.metric == "euclidean":
            s = 2 * s - (x ** 2).sum(1)[None] - (q ** 2).sum(1, keepdims=True)
        return s

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Exact similarity of every query to every slot (removed ones: -inf): (q, N)."""
        s = self._compare(prepare(queries, self.metric), self.rows())
        if self.live is not None:
            s[:, ~self.live] = -np.inf
        return s

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best slots per query, best first: scores (q, k) and slots (q, k)."""
        k = max(1, min(k, len(self)))
        if self.structure is None or 10 * k >= len(self):  # a large share of the songs: all of them
            return _top(self.scores(queries), k)
        q = prepare(queries, self.metric)
        ask = max(REFINE * k, 100) if self.kind == "ivf-pq" else k
        _, found = self.structure.search(q, ask)
        scores, slots = np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        for r, cands in enumerate(found):
            cands = np.sort(cands[cands >= 0])  # memory-map reads in file order
            if len(cands):
                s, top = _top(self._compare(q[r:r + 1], self.rows(cands)), k)
                scores[r, :top.shape[1]], slots[r, :top.shape[1]] = s[0], cands[top[0]]
        return scores, slots

    # -- changes (the approximate kinds that allow them) --------------------------------------
    def remove(self, slots: np.ndarray) -> None:
        """Never answer these slots again (their vectors stay until the index is compacted)."""
        self.vectors, self.check = self.rows(), None   # in memory from here on
        if self.live is None:
            self.live = np.ones(len(self.vectors), bool)
        self.live[slots] = False
        if self.structure is not None:
            import faiss

            self.structure.remove_ids(faiss.IDSelectorBatch(np.asarray(slots, np.int64)))

    def append(self, vectors: np.ndarray) -> None:
        """Add prepared vectors (n, D) as new slots after the last one."""
        start = len(self.vectors)
        self.vectors, self.check = np.concatenate([self.rows(), vectors]), None
        if self.live is not None:
            self.live = np.concatenate([self.live, np.ones(len(vectors), bool)])
        if self.structure is not None:
            self.structure.add_with_ids(vectors, np.arange(start, start + len(vectors), dtype=np.int64))


def _top(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of each row of s, largest first: (scores, columns)."""
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(s, top, 1).argsort(axis=1, kind="stable")[:, ::-1]
    ids = np.take_along_axis(top, order, 1)
    return np.take_along_axis(s, ids, 1), ids


def build_index(vectors: np.ndarray, metric: str = "cosine", kind: str = "auto") -> Index:
    """An index over raw song vectors (N, D); see :func:`choose_kind` for ``kind``."""
    x = prepare(vectors, metric)
    kind = choose_kind(len(x), kind)
    return Index(x, metric, kind, None if kind == "exact" else build_structure(x, metric, kind))


def updatable(kind: str) -> bool:
    """Whether songs can be added and removed without building the index again."""
    return kind.startswith("ivf")


def build_structure(x: np.ndarray, metric: str, kind: str, seed: int = 0):
    """The FAISS structure of ``kind`` over prepared vectors (N, D); its ids are the rows."""
    import faiss

    n, d = x.shape
    measure = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, measure)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
        index.add(x)
        return index
    nlist = max(1, int(LISTS_PER_ROOT * math.sqrt(n)))
    quantizer = faiss.IndexFlat(d, measure)
    if kind == "ivf-flat":
        index = faiss.IndexIVFFlat(quantizer, d, nlist, measure)
    else:
        index = faiss.IndexIVFPQ(quantizer, d, nlist, d // 4 if d % 4 == 0 else d, 8, measure)
        index.do_polysemous_training = False   # minutes of training for Hamming filters never used
    index.cp.niter = 10
    index.cp.max_points_per_centroid = 1 << 30   # the sample below is all FAISS gets
    sample = np.random.default_rng(seed).permutation(n)[:max(min(TRAIN_PER_LIST * nlist, MAX_TRAIN), PQ_TRAIN)]
    index.train(x[np.sort(sample)])
    index.nprobe = min(nlist, max(16, nlist // PROBE_SHARE))
    index.add_with_ids(x, np.arange(n, dtype=np.int64))
    return index


def structure_bytes(structure) -> np.ndarray:
    """A FAISS structure as bytes (uint8), to store."""
    import faiss

    return faiss.serialize_index(structure)


def structure_from_bytes(data: np.ndarray):
    """A stored FAISS structure back (RuntimeError from FAISS when the bytes are not one)."""
    import faiss

    # without the IVF-PQ table FAISS would precompute (nlist x D/4 x 256 floats, 260 MB at a
    # million 256-d songs): an inner-product index never uses it
    return faiss.deserialize_index(np.ascontiguousarray(data, dtype=np.uint8), faiss.IO_FLAG_SKIP_PRECOMPUTE_TABLE)
