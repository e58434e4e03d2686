"""Nearest-neighbour search: exact and the FAISS kinds, every metric."""

import numpy as np
import pytest

from reform.errors import ConfigError
from reform.index import build_index, choose_kind


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 16))
    x = (centres[rng.integers(0, 20, 2000)] + 0.3 * rng.standard_normal((2000, 16))).astype(np.float32)
    return x, x[:25] + 0.01


def _brute(x, q, metric, k):
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        s = q @ x.T
    elif metric == "dot":
        s = q @ x.T
    else:
        s = -((q[:, None] - x[None]) ** 2).sum(-1)
    return np.argsort(-s, axis=1)[:, :k], np.sort(s, axis=1)[:, ::-1][:, :k]


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_exact_index_is_exact(data, metric):
    x, q = data
    scores, ids = build_index(x, metric, "exact").search(q, 10)
    want_ids, want_scores = _brute(x, q, metric, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-3)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("kind,metric", [("ivf-pq", "cosine"), ("ivf-pq", "euclidean"), ("ivf-flat", "dot"),
                                         ("hnsw", "cosine")])
def test_faiss_kinds_recall_and_exact_scores(data, kind, metric):
    x, q = data
    index = build_index(x, metric, kind)
    assert index.kind == kind
    scores, ids = index.search(q, 10)
    want, _ = _brute(x, q, metric, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, want)])
    assert recall >= 0.95
    exact = build_index(x, metric, "exact").scores(q)
    np.testing.assert_allclose(scores, np.take_along_axis(exact, ids, 1), rtol=1e-4, atol=1e-4)  # re-scored


def test_removed_and_added_slots(data):
    x, q = data
    index = build_index(x, "cosine", "ivf-pq")
    best = index.search(q[:1], 1)[1][0, 0]
    index.remove(np.array([best]))
    assert best not in index.search(q[:1], 10)[1][0] and best not in index.search(q[:1], 1000)[1][0]
    index.append(index.vectors[best:best + 1].copy())   # back, in a new slot
    assert index.search(q[:1], 1)[1][0, 0] == len(x) and len(index) == len(x)


def test_auto_choice_and_bad_options(data, monkeypatch):
    x, _ = data
    assert build_index(x).kind == "exact"
    assert choose_kind(10, "faiss") == "exact"   # too few songs to train a structure
    monkeypatch.setattr("reform.index.EXACT_LIMIT", 100)
    assert build_index(x).kind == "ivf-pq"
    assert build_index(x, kind="exact").kind == "exact"
    with pytest.raises(ConfigError):
        build_index(x, metric="manhattan")
    with pytest.raises(ConfigError):
        build_index(x, kind="annoy")
