"""The 2-D map of the library: a PCA of the song embeddings, fitted once per embedding model.

The fit (mean, two principal axes) is cached in ``<home>/cache/map-<model>.json``
with every song's coordinates, written to a temporary file and renamed.  Songs
embedded later with the same model are placed with the cached axes, so the map
does not move under the user's eyes when a few songs arrive; once the library
has grown by more than a quarter since the fit, or for a new model, the axes
are fitted again.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..errors import WriteError
from ..files import json_text, write_text

CACHE_FORMAT = 1
REFIT_GROWTH = 1.25   # refit once the embedded songs outnumber those of the fit by this factor
VIEW_QUANTILE, VIEW_REACH = 0.8, 2.0   # the view spans twice the 80th percentile deviation


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length: the map shows cosine similarity, like the recommendations."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def fit_pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The mean and the first two principal axes of the rows of ``x``.

    Parameters
    ----------
    x : ndarray, shape (N, D), float32

    Returns
    -------
    mean : (D,); axes : (2, D), each unit length with its largest loading positive (so a
    refit gives the same picture); explained : the share of variance of each axis
    """
    mean = x.mean(axis=0)
    centred = (x - mean).astype(np.float64)
    cov = centred.T @ centred / max(len(x) - 1, 1)         # (D, D): cheaper than an SVD of (N, D)
    values, vectors = np.linalg.eigh(cov)                   # ascending
    order = np.argsort(values)[::-1][:2]
    axes = vectors[:, order].T                              # (k, D), k <= 2
    if len(axes) < 2:                                       # one-dimensional embeddings
        axes = np.vstack([axes, np.zeros_like(axes[0])])
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    total = float(values.sum())
    explained = [float(values[i] / total) if total > 0 else 0.0 for i in order]
    explained += [0.0] * (2 - len(explained))
    return mean.astype(np.float32), axes.astype(np.float32), explained


def cache_path(cache: Path, model: str) -> Path:
    """The cached map of ``model`` in the home's cache folder (see :mod:`reform.home`)."""
    safe = model if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", model) else \
        hashlib.sha256(model.encode()).hexdigest()[:16]
    return Path(cache) / f"map-{safe}.json"


def library_map(cache: Path, model: str, vectors: dict[str, np.ndarray]) -> dict:
    """Coordinates of every embedded song hash, from the fit of ``model`` cached in the folder
    ``cache``, or a new one.

    Returns
    -------
    dict with ``model``, ``method`` ("pca"), ``explained`` (two shares of variance) and
    ``points`` mapping each hash to [x, y]
    """
    path = cache_path(cache, model)
    cached = _read(path, model)
    hashes = sorted(vectors)
    if not hashes:
        return {"model": model, "method": "pca", "explained": [0.0, 0.0], "points": {}}
    dim = len(vectors[hashes[0]])
    if (cached is not None and len(cached["mean"]) == dim
            and len(hashes) <= REFIT_GROWTH * cached.get("fitted_on", 0)):
        mean = np.asarray(cached["mean"], np.float32)
        axes = np.asarray(cached["axes"], np.float32)
        points = {h: xy for h, xy in cached["points"].items() if h in vectors}
        new = [h for h in hashes if h not in points]
        if new:
            xy = (_unit(np.stack([vectors[h] for h in new])) - mean) @ axes.T
            points.update({h: [round(float(a), 5), round(float(b), 5)] for h, (a, b) in zip(new, xy)})
        return {"model": model, "method": "pca", "explained": cached["explained"], "points": points}
    x = _unit(np.stack([vectors[h] for h in hashes]).astype(np.float32))  # (N, D)
    mean, axes, explained = fit_pca(x)
    xy = (x - mean) @ axes.T                                               # (N, 2)
    points = {h: [round(float(a), 5), round(float(b), 5)] for h, (a, b) in zip(hashes, xy)}
    _write(path, {"format": CACHE_FORMAT, "model": model, "method": "pca", "fitted_on": len(hashes),
                  "mean": mean.tolist(), "axes": axes.tolist(), "explained": explained,
                  "points": points})
    return {"model": model, "method": "pca", "explained": explained, "points": points}


def _read(path: Path, model: str) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or data.get("model") != model:
        return None
    return data


def _write(path: Path, data: dict) -> None:
    """Write through a temporary file and a rename; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json_text(data, separators=(",", ":")))
    except (OSError, WriteError):
        pass  # a read-only or full home still gets its map, computed again next time


def view_box(x: list[float], y: list[float]) -> dict[str, list[float]]:
    """The part of the map to show: per axis, the median plus or minus twice the 80th
    percentile of the songs' distances to it, each side cut back to the farthest song on it
    (a box as wide on both sides left a side empty where the songs lie to one side).

    The page stretches this box over the canvas and pins the few songs outside it to the
    edge, so that one outlier (a 2-second file among ordinary songs) cannot squeeze every
    other song against one side.
    """
    box = {}
    for name, values in (("x", np.asarray(x, np.float64)), ("y", np.asarray(y, np.float64))):
        if not len(values):
            box[name] = [-1.0, 1.0]
            continue
        centre = float(np.median(values))
        deviation = np.abs(values - centre)
        reach = VIEW_REACH * float(np.quantile(deviation, VIEW_QUANTILE))
        low, high = max(centre - reach, float(values.min())), min(centre + reach, float(values.max()))
        if high - low <= 0:   # every song at one place
            low, high = centre - 1.0, centre + 1.0
        box[name] = [round(low, 5), round(high, 5)]
    return box
