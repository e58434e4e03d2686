"""Retrieval protocols that measure recommendation quality, and the baselines to compare with.

Protocols
---------
Same-song retrieval
    Every song is cut in two halves (at its middle frame) and each half is
    embedded on its own.  For each half, all other halves are ranked by
    similarity; the score is whether the other half of the same song comes
    first (top-1 accuracy) and the mean reciprocal rank (MRR) of that half.

Label retrieval
    Given one label per song (artist, album, genre, or a column of a TSV
    manifest), every song with a label shared by at least one other song
    queries all other songs (leave-one-out).  Scores are precision@5,
    precision@10 and mean average precision (mAP) of same-label songs.  With
    ``exclude_same_album`` the neighbours from the query's own album are removed
    from its ranking first: the "album filter" of music-similarity research,
    without which scores are inflated by near-identical tracks.

Songs are compared with cosine similarity.  Baselines: random vectors, MFCC
mean+std (20 coefficients), log-mel mean+std, and song length alone (compared
by distance, as a single number has no direction); hand-made features are
standardised per dimension over the evaluated songs first.  Songs are
evaluated in a shuffled order so that ties cannot follow the folder layout.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import EvaluateError
from .text import album_key

Metric = str | Callable[[np.ndarray], np.ndarray]   # "cosine", "euclidean", or vectors -> similarities


# -- metrics on rankings (pure, tested on hand-made rankings) -----------------------------------


def precision_at_k(relevant: np.ndarray, k: int) -> float:
    """Fraction of relevant items among the first k of a ranking (booleans, best first)."""
    return float(np.mean(relevant[:k])) if k > 0 else 0.0


def average_precision(relevant: np.ndarray) -> float:
    """Mean of precision@i over the ranks i of the relevant items (0 if none is relevant)."""
    hits = np.flatnonzero(relevant)
    if len(hits) == 0:
        return 0.0
    return float(np.mean(np.arange(1, len(hits) + 1) / (hits + 1)))


def reciprocal_rank(relevant: np.ndarray) -> float:
    hits = np.flatnonzero(relevant)
    return 1.0 / (hits[0] + 1) if len(hits) else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _rankings(vectors: np.ndarray, metric: Metric = "cosine") -> np.ndarray:
    """For every item, all other items ordered by similarity (best first): (N, N-1).

    ``metric`` is "cosine", "euclidean", or a function from the vectors to their square
    similarity matrix.

    Ties keep the input order, so callers shuffle their songs first: an order that
    follows the labels (say, sorted by folder) would otherwise leak into the scores.
    """
    if callable(metric):   # a similarity of its own (reform.space: transforms, hubness reduction)
        sim = np.array(metric(vectors), np.float64)
    elif metric == "cosine":
        x = _unit(vectors)
        sim = x @ x.T
    else:  # euclidean: for features whose direction means nothing, like a single number
        x = np.asarray(vectors, np.float64)
        sim = -((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")
    return order[:, :-1]  # the item itself (at -inf) comes last


def same_song_hits(first: np.ndarray, second: np.ndarray, metric: Metric = "cosine") -> dict[str, np.ndarray]:
    """Per query half: whether the song's other half ranks first, and its reciprocal rank.

    first, second : (n, D) the two parts of n songs.  Returns arrays of length 2n
    (the first parts' queries, then the second parts').
    """
    n = len(first)
    if n < 2:
        raise EvaluateError("same-song retrieval needs at least 2 songs")
    halves = np.concatenate([first, second])
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    relevant = _rankings(halves, metric) == partner[:, None]
    return {"top1": relevant[:, 0].astype(float),
            "rr": np.array([reciprocal_rank(r) for r in relevant])}


def same_song(first: np.ndarray, second: np.ndarray, metric: Metric = "cosine") -> dict[str, float]:
    """Top-1 accuracy and MRR of finding a song's other half among all other halves."""
    hits = same_song_hits(first, second, metric)
    return {"top1": float(hits["top1"].mean()), "mrr": float(hits["rr"].mean())}


@dataclass
class LabelResult:
    scores: dict[str, float]
    per_label: dict[str, dict[str, float]]
    queries: int
    skipped_single: list[str] = field(default_factory=list)   # labels with one song: not queried


def label_queries(vectors: np.ndarray, labels: list[str], albums: list[str] | None = None,
                  exclude_same_album: bool = False, metric: Metric = "cosine") -> tuple[list[int], np.ndarray]:
    """Leave-one-out scores of every query song: its index and (p@5, p@10, AP), shape (q, 3).

    Songs whose label no other song shares are not queried (they still compete), nor are
    songs whose every same-label neighbour the album filter removed.
    """
    if exclude_same_album and albums is None:
        raise EvaluateError("the album filter needs the album of every song")
    counts = Counter(labels)
    queries = [i for i, lab in enumerate(labels) if counts[lab] >= 2]
    if not queries:
        raise EvaluateError("no label is shared by two songs: label retrieval has nothing to find",
                            hint="use a coarser label (artist instead of album), or more songs")
    ranks = _rankings(vectors, metric)
    lab = np.array(labels, dtype=object)
    # an untagged song shares its album with none: its own key
    alb = (np.array([album_key(a) or f"untagged {i}" for i, a in enumerate(albums)], dtype=object)
           if albums is not None else None)
    asked, scores = [], []
    for i in queries:
        order = ranks[i]
        if exclude_same_album:
            order = order[alb[order] != alb[i]]
        relevant = lab[order] == lab[i]
        if not relevant.any():
            continue  # every same-label song is on the query's album: nothing left to find
        asked.append(i)
        scores.append((precision_at_k(relevant, 5), precision_at_k(relevant, 10), average_precision(relevant)))
    if not asked:
        raise EvaluateError("with the album filter no query has a same-label song left to find")
    return asked, np.array(scores)


def label_retrieval(vectors: np.ndarray, labels: list[str], albums: list[str] | None = None,
                    exclude_same_album: bool = False, metric: Metric = "cosine") -> LabelResult:
    """Leave-one-out precision@5, precision@10 and mAP of same-label neighbours."""
    asked, scores = label_queries(vectors, labels, albums, exclude_same_album, metric)
    per: dict[str, list[np.ndarray]] = defaultdict(list)
    for i, row in zip(asked, scores):
        per[labels[i]].append(row)
    counts = Counter(labels)
    mean = scores.mean(axis=0)
    return LabelResult(
        scores={"p5": float(mean[0]), "p10": float(mean[1]), "map": float(mean[2])},
        per_label={k: dict(zip(("p5", "p10", "map"), map(float, np.mean(v, axis=0)))) | {"songs": counts[k]}
                   for k, v in sorted(per.items())},
        queries=len(asked), skipped_single=sorted(k for k, c in counts.items() if c < 2))


def bootstrap_interval(values: np.ndarray, reps: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-query values and its bootstrap percentile interval: (mean, low, high).

    For a difference between two methods, pass the per-query differences on the same
    queries (a paired bootstrap): an interval that excludes 0 is a gain beyond noise.  Each
    query is a group of its own (the same draws, the same interval, to the last bit).
    """
    return group_bootstrap_interval(values, np.arange(len(values)), reps, seed, level)


def group_bootstrap_interval(values: np.ndarray, groups: np.ndarray, reps: int = 2000, seed: int = 0,
                             level: float = 0.95) -> tuple[float, float, float]:
    """As :func:`bootstrap_interval`, resampling whole groups of queries (the songs of a soundtrack,
    of an artist) instead of single queries: (mean, low, high).

    Queries of one group are not independent (one soundtrack's songs tend to be found, or
    missed, together), so resampling them one by one gives too narrow an interval; this is the
    cluster bootstrap.  Each draw's mean is over the queries of the groups drawn.
    """
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        raise EvaluateError("no values to bootstrap")
    _, group = np.unique(np.asarray(groups), return_inverse=True)
    sums, counts = np.bincount(group, weights=values), np.bincount(group)
    draws = np.random.default_rng(seed).integers(0, len(sums), size=(reps, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


# -- labels ----------------------------------------------------------------------------------------


LABELS_FILE_HINT = "give --labels-file the path of a TSV or CSV file with a 'path' column"


def read_label_file(path: str | os.PathLike, column: str) -> tuple[dict[str, str], int]:
    """Labels from a TSV (or CSV) manifest with a ``path`` column: ({real path: label}, how many
    paths it labels twice with different labels, the last label kept).

    Paths may be relative to the file's folder or start with ``~``; rows without a path are
    passed over.  UTF-8 (with or without Excel's byte-order mark) and UTF-16 (with its mark, or
    without it, told by the zero bytes of ASCII text) are read.
    """
    path = os.fspath(path)
    delimiter = "," if path.endswith(".csv") else "\t"
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise EvaluateError(f"cannot read the labels file ({exc.strerror})", path=path,
                            hint=LABELS_FILE_HINT) from exc
    # UTF-16 without its mark (some Windows tools): its ASCII letters come with a zero byte each
    encoding = ("utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else
                "utf-16-le" if data[1:2] == b"\0" and data[:1] != b"\0" else
                "utf-16-be" if data[:1] == b"\0" and data[1:2] not in (b"", b"\0") else "utf-8-sig")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise EvaluateError(f"the labels file is not UTF-8 text (byte {exc.start} cannot be read)", path=path,
                            hint="save it as UTF-8 (in a spreadsheet: CSV UTF-8, or Unicode text)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if reader.fieldnames is None or "path" not in reader.fieldnames:
        found = f" (it has: {', '.join(reader.fieldnames)})" if reader.fieldnames else ""
        raise EvaluateError(f"the labels file has no 'path' column{found}", path=path,
                            hint=f"{LABELS_FILE_HINT} (.csv is read with commas, others with tabs)")
    if column not in reader.fieldnames:
        raise EvaluateError(f"the labels file has no column {column!r} "
                            f"(it has: {', '.join(reader.fieldnames)})", path=path,
                            hint="name the column of labels with --label-column")
    folder = os.path.dirname(os.path.abspath(path))
    labels: dict[str, str] = {}
    twice = 0
    for row in reader:
        song = (row.get("path") or "").strip()
        if not song:
            continue   # a blank line, or a row cut short
        real = os.path.realpath(os.path.join(folder, os.path.expanduser(song)))
        label = (row.get(column) or "").strip()
        twice += real in labels and labels[real] != label
        labels[real] = label
    return labels, twice


# -- hand-made baselines ---------------------------------------------------------------------------


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II, the transform that turns a log-mel frame into MFCCs: (n_out, n_in)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m


def logmel_stats(spec: np.ndarray) -> np.ndarray:
    """Mean and standard deviation per mel bin over all frames of all channels: (2 * n_mels,)."""
    frames = spec.reshape(-1, spec.shape[-1]).astype(np.float64)
    return np.concatenate([frames.mean(0), frames.std(0)])


def mfcc_stats(spec: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """Mean and std of 20 MFCCs (DCT-II of the dB mel frames, as librosa computes them): (40,)."""
    frames = spec.reshape(-1, spec.shape[-1]).astype(np.float64)
    mfcc = frames @ dct_matrix(spec.shape[-1], n_mfcc).T
    return np.concatenate([mfcc.mean(0), mfcc.std(0)])


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance per dimension over the songs (constant dimensions stay 0)."""
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 0, std, 1.0)


# -- running a method over songs --------------------------------------------------------------------

Featurizer = Callable[[np.ndarray], np.ndarray]   # spectrogram (C, T, M) -> vector


@dataclass
class MethodVectors:
    """One method's vectors for the evaluated songs: whole songs, first halves, second halves
    (None for a method that would find the other half by construction: :func:`song_length_vectors`)."""

    full: np.ndarray
    first: np.ndarray | None
    second: np.ndarray | None
    metric: Metric = "cosine"


def halves(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid = spec.shape[1] // 2
    return spec[:, :mid], spec[:, mid:]


def featurize(specs: list[np.ndarray], fn: Featurizer, standardised: bool,
              metric: Metric = "cosine", step: Callable[[int], object] | None = None) -> MethodVectors:
    """Each song's vectors, whole and of each half; ``step(1)`` after each song (a progress bar)."""
    full, first, second = [], [], []
    for spec in specs:
        a, b = halves(spec)
        full.append(fn(spec))
        first.append(fn(a))
        second.append(fn(b))
        if step:
            step(1)
    full, first, second = map(np.stack, (full, first, second))
    if standardised:
        full = standardise(full)
        both = standardise(np.concatenate([first, second]))
        first, second = both[: len(first)], both[len(first):]
    return MethodVectors(full, first, second, metric)


def song_length(spec: np.ndarray) -> np.ndarray:
    """The log of the number of frames: a one-number baseline for the 'easy signal' of length."""
    return np.array([np.log(max(spec.shape[1], 1))])


def song_length_vectors(specs: list[np.ndarray], step: Callable[[int], object] | None = None) -> MethodVectors:
    """The length baseline, for label retrieval alone: a song's two halves are equally long, so its
    length finds the other half every time (a same-song top-1 of 1.000 above every model, which
    measured nothing; `bench/quality.py` measures it on unequal parts instead)."""
    vectors = featurize(specs, song_length, standardised=False, metric="euclidean", step=step)
    return MethodVectors(vectors.full, None, None, vectors.metric)


def random_vectors(n: int, dim: int = 128, seed: int = 0) -> MethodVectors:
    rng = np.random.default_rng(seed)
    return MethodVectors(*(rng.standard_normal((n, dim)) for _ in range(3)))


@dataclass
class MethodScores:
    name: str
    same_song: dict[str, float] | None   # None: not measured (see MethodVectors)
    labels: LabelResult | None

    def row(self) -> dict[str, float]:
        out = {} if self.same_song is None else {"same_song_top1": self.same_song["top1"],
                                                  "same_song_mrr": self.same_song["mrr"]}
        if self.labels is not None:
            out |= {"p5": self.labels.scores["p5"], "p10": self.labels.scores["p10"],
                    "map": self.labels.scores["map"]}
        return out


def score(name: str, vectors: MethodVectors, labels: list[str] | None, albums: list[str] | None,
          exclude_same_album: bool) -> MethodScores:
    label_result = (label_retrieval(vectors.full, labels, albums, exclude_same_album, vectors.metric)
                    if labels is not None else None)
    halves = None if vectors.first is None else same_song(vectors.first, vectors.second, vectors.metric)
    return MethodScores(name, halves, label_result)


def markdown(results: list[MethodScores]) -> str:
    """The comparison table, the best of each column in bold (ties all bold)."""
    has_labels = all(r.labels is not None for r in results)
    head = ["method", "same-song top-1", "same-song MRR"] + (["p@5", "p@10", "mAP"] if has_labels else [])
    rows = [([f"{r.same_song['top1']:.3f}", f"{r.same_song['mrr']:.3f}"] if r.same_song else ["–", "–"])
            + ([f"{r.labels.scores[k]:.3f}" for k in ("p5", "p10", "map")] if has_labels else []) for r in results]
    best = [max((c for c in column if c != "–"), key=float, default=None) for column in zip(*rows)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r, cells in zip(results, rows):
        cells = [f"**{c}**" if c == b else c for c, b in zip(cells, best)]
        lines.append("| " + " | ".join([r.name, *cells]) + " |")
    return "\n".join(lines)


@dataclass
class EvaluationReport:
    results: list[MethodScores]
    songs: int
    label_source: str | None
    notes: list[str]

    def to_dict(self) -> dict:
        return {"songs": self.songs, "labels": self.label_source, "notes": self.notes,
                "methods": {r.name: r.row() for r in self.results},
                "per_label": {r.name: r.labels.per_label for r in self.results if r.labels is not None}}

    def markdown(self) -> str:
        return markdown(self.results)

    def per_label_markdown(self, metric: str = "p10") -> str:
        """One row per label, one column per method."""
        with_labels = [r for r in self.results if r.labels is not None]
        if not with_labels:
            return ""
        names = list(with_labels[0].labels.per_label)
        head = ["label", "songs"] + [r.name for r in with_labels]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label in names:
            cells = [label, str(with_labels[0].labels.per_label[label]["songs"])]
            cells += [f"{r.labels.per_label.get(label, {}).get(metric, float('nan')):.2f}" for r in with_labels]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
