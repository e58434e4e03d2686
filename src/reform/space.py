"""Query-time changes to the embedding space: centring and whitening, neighbour averaging,
and hubness reduction.

Three families, each drawn from the library's own song vectors, none of them touching
the model (reform.recommend ranks by :func:`walk`, or by the query's neighbour averaging; the
rest are measured):

* **Transforms of the vectors** before the cosine: ``centre`` (subtract the library
  mean, so that what every song shares stops counting as similarity), ``zscore``
  (also scale each dimension to unit variance), ``whiten`` (PCA whitening: every
  principal direction counts equally).
* **Hubness reduction** on the similarities: in high dimensions a few songs (hubs)
  are near everything and crowd every list.  ``csls`` (cross-domain similarity local
  scaling) lowers the score of a song by how close it is to its own neighbours;
  ``mp`` (Mutual Proximity, Gaussian form, as in Musly) turns a similarity into the
  probability that both songs count each other as closer than a typical song.

* **Neighbour averaging** of the vectors (alpha-QE and alpha-DBA of Radenović et al.
  2018, query expansion and database-side augmentation in image retrieval): a song is
  replaced by the mean of itself and its ``neighbours`` nearest songs, each weighted by
  its cosine to the power ``alpha``; ``average="queries"`` does it for the query only
  (a second search with the averaged query), ``"all"`` for every song of the library.
  Where most of a song's nearest songs are of its kind, the average moves it towards
  what they share and away from what is its own.
* **Graph diffusion** (Iscen et al. 2017, after Zhou et al.'s manifold ranking): the
  songs that are among each other's ``neighbours`` nearest are joined, each link weighted
  by its cosine to the power ``alpha``, and a query's score spreads along the links (a
  random walk that goes on with probability ``spread`` and restarts at the query), so that
  a song reached through a chain of close songs can outrank a nearer song off the chain.
  ``average="diffusion"`` starts the walk at the song itself, ``"diffusion-near"`` at the
  song and its nearest songs, as a query from outside the library would start.  Dense
  (the inverse of an N x N matrix): a measurement on a fold's songs; a library walks from
  one query over its nearest songs (:func:`walk`, one linear solve).
  ``keep_nearest`` puts the song nearest by the plain cosine first whatever the averaging or
  diffusion made of it, so that a song's other recording or other part, which a walk spreads
  away from, stays the first answer.

docs/method.md measures each on the cross-validated protocols.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

TRANSFORMS = ("none", "centre", "zscore", "whiten")
HUBNESS = ("none", "csls", "mp")
AVERAGES = ("none", "queries", "all", "diffusion", "diffusion-near")
ALPHA = 3.0   # neighbour averaging weighs each neighbour by its cosine to this power
# the walk weighs its links more sharply: on music the model never heard, a song's nearest
# links are the ones to trust (docs/method.md 7, "Sharper links for the walk")
WALK_ALPHA = 6.0


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class Transform:
    """A fitted affine map of song vectors: ``(x - mean) @ matrix``."""

    how: str
    mean: np.ndarray       # (D,)
    matrix: np.ndarray     # (D, D') ; the identity for "none" and "centre"

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) @ self.matrix


def fit_transform(vectors: np.ndarray, how: str = "none", eps: float = 1e-6) -> Transform:
    """Fit a transform on the library's vectors (N, D); see the module docstring."""
    if how not in TRANSFORMS:
        raise ConfigError(f"unknown transform {how!r}; use one of {', '.join(TRANSFORMS)}")
    x = np.asarray(vectors, np.float64)
    d = x.shape[1]
    if how == "none":
        return Transform(how, np.zeros(d), np.eye(d))
    mean = x.mean(0)
    if how == "centre":
        return Transform(how, mean, np.eye(d))
    if how == "zscore":
        std = x.std(0)
        return Transform(how, mean, np.diag(1.0 / np.where(std > eps, std, 1.0)))
    # whitening: rotate onto the principal axes and scale each by its standard deviation;
    # directions with (almost) no variance in the library are dropped
    u, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    sd = s / math.sqrt(max(len(x) - 1, 1))
    keep = sd > eps * max(sd.max(initial=0.0), eps)
    return Transform(how, mean, vt[keep].T / sd[keep])


def cosine_matrix(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of x to every row of y (x itself if None)."""
    a = unit(x)
    return a @ (a if y is None else unit(y)).T


def _without_diagonal(sim: np.ndarray) -> np.ndarray:
    """(N, N) -> (N, N-1): each row's similarities to the other items."""
    n = len(sim)
    return sim[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def neighbourhood(sim: np.ndarray, k: int) -> np.ndarray:
    """Mean similarity of every item to its ``k`` nearest other items: (N,)."""
    others = _without_diagonal(sim)
    k = min(k, others.shape[1])
    return -np.mean(np.partition(-others, k - 1, axis=1)[:, :k], axis=1)


def csls(sim: np.ndarray, k: int = 10) -> np.ndarray:
    """CSLS of a square similarity matrix: 2 s(i, j) - r(i) - r(j), r = :func:`neighbourhood`."""
    r = neighbourhood(sim, k)
    return 2 * sim - r[:, None] - r[None, :]


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF, vectorised (Abramowitz and Stegun 7.1.26: error below 1.5e-7)."""
    x = np.abs(np.asarray(z, np.float64)) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def mutual_proximity(sim: np.ndarray) -> np.ndarray:
    """Mutual Proximity (Gaussian) of a square similarity matrix, in [0, 1].

    For items i and j: the probability that a similarity drawn from i's distribution
    (a normal with the mean and std of i's similarities to all others) is below
    s(i, j), times the same for j.  High only when each is unusually close to the other.
    """
    others = _without_diagonal(sim)
    mu, sd = others.mean(1), np.maximum(others.std(1), 1e-9)
    p_i = normal_cdf((sim - mu[:, None]) / sd[:, None])
    p_j = normal_cdf((sim - mu[None, :]) / sd[None, :])
    return p_i * p_j


def blend(x: np.ndarray, near: np.ndarray, cosines: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Unit vectors x (N, D) each plus its neighbours ``near`` (N, k, D) weighted by
    max(cosine, 0) ** alpha (``cosines`` (N, k)), at unit length: (N, D)."""
    return unit(x + np.einsum("nk,nkd->nd", np.maximum(cosines, 0.0) ** alpha, near))


def average_neighbours(vectors: np.ndarray, neighbours: int, alpha: float = ALPHA) -> np.ndarray:
    """Every vector replaced by the weighted mean of itself (weight 1) and its ``neighbours``
    nearest other vectors by cosine (weight max(cosine, 0) ** alpha), at unit length: (N, D)."""
    x = unit(vectors)
    k = min(neighbours, len(x) - 1)
    if k <= 0:
        return x
    sim = x @ x.T
    nearest = _nearest_others(sim, k)                                            # (N, k)
    return blend(x, x[nearest], np.take_along_axis(sim, nearest, axis=1), alpha)


def diffuse(sim: np.ndarray, neighbours: int, alpha: float = ALPHA, spread: float = 0.9,
            start: str = "self") -> np.ndarray:
    """Graph diffusion over a square similarity matrix (see the module docstring): row i holds
    the scores of a walk started at song i (``start="self"``) or at song i and its nearest
    songs weighted as the links are (``"near"``).

    Links join mutual nearest neighbours (each among the other's ``neighbours`` nearest),
    weight max(cosine, 0) ** alpha, symmetrically normalised (W = D^-1/2 A D^-1/2); the
    scores are the start rows times (I - spread W)^-1, the walk's visits summed over all
    lengths."""
    if start not in ("self", "near"):
        raise ConfigError(f"unknown start of the walk {start!r}; use self or near")
    if min(neighbours, len(sim) - 1) <= 0:
        return np.array(sim, np.float64)
    graph, starts = _graph(sim, neighbours, alpha)
    starts = np.eye(len(sim)) + (starts if start == "near" else 0.0)
    return starts @ np.linalg.inv(np.eye(len(sim)) - spread * graph)


def walk_links(neighbours: int, songs: int) -> int:
    """The links each song gets in a walk over ``songs`` songs besides the query: ``neighbours``,
    but at most a sixth of the songs, and never fewer than 10 for that.  Twenty links joined a
    fold's 115 songs best, yet over a few dozen songs they link nearly every song to every other
    and the walk then ranks little better than the cosine, or worse (docs/method.md 7: "A walk
    over fewer songs")."""
    return min(neighbours, max(10, songs // 6))


def walk(query: np.ndarray, pool: np.ndarray, neighbours: int = 20, alpha: float = WALK_ALPHA,
         spread: float = 0.9) -> np.ndarray:
    """The scores (P,) of the songs ``pool`` (P, D) for one ``query`` (D,): :func:`diffuse` with
    ``start="near"`` over the graph of the query and the pool, the query one of its songs, and the
    pool's nearest song by the cosine put first (as :func:`nearest_first` does).  A library's
    recommendations take the pool from the query's nearest songs, so the walk stays local:
    one linear solve of P + 1 unknowns, not the inverse over the whole library.  Each song gets
    :func:`walk_links` links, weighted by the cosine to the power :data:`WALK_ALPHA`."""
    x = unit(np.vstack([np.asarray(query, np.float64)[None], pool]))
    return _walk(x @ x.T, walk_links(neighbours, len(pool)), alpha, spread)


def _walk(sim: np.ndarray, neighbours: int, alpha: float, spread: float) -> np.ndarray:
    """:func:`walk`'s scores from the cosines (P + 1, P + 1) of the query (first) and its pool."""
    if min(neighbours, len(sim) - 1) <= 0:
        return sim[0, 1:]
    graph, starts = _graph(sim, neighbours, alpha)
    start = starts[0].copy()
    start[0] += 1.0
    system = np.eye(len(sim)) - spread * graph
    scores = np.linalg.solve(system, start)[1:]   # the system is symmetric
    scores[int(np.argmax(sim[0, 1:]))] = scores.max() + 1.0
    return scores


def walks(vectors: np.ndarray, neighbours: int = 20, pool: int = 256, alpha: float = WALK_ALPHA,
          spread: float = 0.9) -> np.ndarray:
    """Every song as a query against every song, scored as recommendations rank them: row i holds
    :func:`walk` from song i over its ``pool`` nearest other songs, and the songs beyond its pool
    below them, by the cosine.  Where the library has at most ``pool`` + 1 songs every row is the
    library-wide diffusion (``similarity(average="diffusion-near", keep_nearest=True)``) with
    :func:`walk_links` links."""
    if len(vectors) <= pool + 1:   # every song's pool is the rest of the library: one inverse for all
        return similarity(vectors, average="diffusion-near", neighbours=walk_links(neighbours, len(vectors) - 1),
                          alpha=alpha, spread=spread, keep_nearest=True)
    x = unit(vectors)
    sim = x @ x.T
    out = sim - 10.0                     # cosines lie in [-11, -9] here: below every walk score (>= 0)
    links = walk_links(neighbours, pool)
    for i in range(len(x)):
        others = np.delete(np.arange(len(x)), i)
        others = others[np.argpartition(-sim[i, others], pool - 1)[:pool]]
        nodes = np.concatenate([[i], others])   # the cosines of the query and its pool, computed once
        out[i, others] = _walk(sim[np.ix_(nodes, nodes)], links, alpha, spread)
    return out


def _graph(sim: np.ndarray, neighbours: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The walk's normalised links (N, N) over a square similarity matrix, and each song's links
    to its own nearest songs, mutual or not (N, N), weighted alike: where a "near" walk starts."""
    n = len(sim)
    rows = np.arange(n)[:, None]
    nearest = _nearest_others(sim, min(neighbours, n - 1))                     # (N, k)
    # the weights of each song's links to its own nearest alone: the power of all N x N cosines
    # took as long as the solve that follows
    starts = np.zeros((n, n))
    starts[rows, nearest] = np.maximum(np.take_along_axis(sim, nearest, axis=1), 0.0) ** alpha
    chosen = np.zeros((n, n), bool)
    chosen[rows, nearest] = True
    links = np.where(chosen & chosen.T, starts, 0.0)   # mutual choices only
    degree = links.sum(1)
    scale = 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0))
    return links * scale[:, None] * scale[None, :], starts


def _nearest_others(sim: np.ndarray, k: int) -> np.ndarray:
    """Indices of every item's ``k`` most similar other items (in no order) in a square
    similarity matrix: (N, k); an item is never its own neighbour."""
    others = np.array(sim, np.float64)
    np.fill_diagonal(others, -np.inf)
    return np.argpartition(-others, k - 1, axis=1)[:, :k]


def similarity(vectors: np.ndarray, transform: str = "none", hubness: str = "none", k: int = 10,
               average: str = "none", neighbours: int = 5, alpha: float = ALPHA,
               spread: float = 0.9, keep_nearest: bool = False) -> np.ndarray:
    """The similarity matrix of a set of song vectors, every song as a query (rows) against
    every song: after a transform, neighbour averaging or diffusion, and a hubness step, in
    that order; ``keep_nearest`` then puts each song's nearest by the cosine of the transformed
    vectors first (:func:`nearest_first`).  With ``average="queries"``, ``"diffusion-near"`` or
    ``keep_nearest`` the matrix is not symmetric."""
    if hubness not in HUBNESS:
        raise ConfigError(f"unknown hubness reduction {hubness!r}; use one of {', '.join(HUBNESS)}")
    if average not in AVERAGES:
        raise ConfigError(f"unknown neighbour averaging {average!r}; use one of {', '.join(AVERAGES)}")
    if neighbours < 1:
        raise ConfigError(f"neighbours must be 1 or more, not {neighbours}")
    x = fit_transform(vectors, transform).apply(vectors)
    if average == "none":
        sim = cosine_matrix(x)
    elif average.startswith("diffusion"):
        sim = diffuse(cosine_matrix(x), neighbours, alpha, spread, "near" if average == "diffusion-near" else "self")
    else:
        averaged = average_neighbours(x, neighbours, alpha)
        sim = cosine_matrix(averaged, averaged if average == "all" else x)
    if hubness == "csls":
        sim = csls(sim, k)
    elif hubness == "mp":
        sim = mutual_proximity(sim)
    return nearest_first(sim, cosine_matrix(x)) if keep_nearest else sim


def nearest_first(sim: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    """``sim`` with every row's nearest other song by ``cosine`` scored above all the others."""
    sim = np.array(sim, np.float64)
    n = len(sim)
    if n < 2:
        return sim
    nearest = _nearest_others(cosine, 1)[:, 0]
    others = sim.copy()
    np.fill_diagonal(others, -np.inf)
    sim[np.arange(n), nearest] = others.max(axis=1) + 1.0
    return sim
