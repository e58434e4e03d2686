"""Query-time transforms (centring, z-scores, whitening) and hubness reduction (CSLS, MP)."""

import math

import numpy as np
import pytest

from reform.errors import ConfigError
from reform.space import (csls, fit_transform, mutual_proximity, neighbourhood, normal_cdf,
                          similarity)


def test_centre_removes_what_every_song_shares():
    shared = np.array([10.0, 10.0, 0.0])
    x = shared + np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    raw = similarity(x)
    centred = similarity(x, "centre")
    assert raw.min() > 0.98                                  # the shared offset makes all alike
    assert centred[0, 1] == pytest.approx(-1.0) and centred[0, 2] == pytest.approx(0.0)


def test_zscore_and_whiten_give_unit_variance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3)) @ np.array([[5.0, 0, 0], [2.0, 1.0, 0], [0, 0, 0.1]])
    z = fit_transform(x, "zscore").apply(x)
    assert np.allclose(z.mean(0), 0, atol=1e-9) and np.allclose(z.std(0), 1, atol=1e-9)
    w = fit_transform(x, "whiten").apply(x)
    assert np.allclose(np.cov(w, rowvar=False), np.eye(3), atol=1e-9)


def test_whiten_drops_directions_without_variance():
    x = np.array([[1.0, 2.0, 5.0], [2.0, 1.0, 5.0], [3.0, 5.0, 5.0], [0.0, 1.0, 5.0]])
    assert fit_transform(x, "whiten").apply(x).shape == (4, 2)


def test_neighbourhood_and_csls_known_answer():
    sim = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.5], [0.1, 0.5, 1.0]])
    r = neighbourhood(sim, 1)                                # nearest other item of each
    assert r.tolist() == pytest.approx([0.9, 0.9, 0.5])
    c = csls(sim, 1)
    assert c[0, 2] == pytest.approx(2 * 0.1 - 0.9 - 0.5)
    assert c[1, 2] == pytest.approx(2 * 0.5 - 0.9 - 0.5)


def test_csls_demotes_a_hub():
    # item 0 is close to everyone (a hub); items 1 and 2 are each other's true neighbours
    sim = np.array([[1.0, 0.75, 0.75, 0.75],
                    [0.75, 1.0, 0.7, 0.1],
                    [0.75, 0.7, 1.0, 0.1],
                    [0.75, 0.1, 0.1, 1.0]])
    assert np.argmax(np.where(np.eye(4, dtype=bool), -np.inf, sim)[1]) == 0        # hub first
    c = csls(sim, 3)
    assert np.argmax(np.where(np.eye(4, dtype=bool), -np.inf, c)[1]) == 2          # true neighbour


def test_normal_cdf_matches_erf():
    z = np.linspace(-4, 4, 33)
    expected = [0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z]
    assert np.allclose(normal_cdf(z), expected, atol=2e-7)


def test_mutual_proximity_is_symmetric_in_unit_range_and_demotes_a_hub():
    sim = np.array([[1.0, 0.8, 0.8, 0.8],
                    [0.8, 1.0, 0.7, 0.1],
                    [0.8, 0.7, 1.0, 0.1],
                    [0.8, 0.1, 0.1, 1.0]])
    mp = mutual_proximity(sim)
    assert np.allclose(mp, mp.T) and mp.min() >= 0 and mp.max() <= 1
    # for item 1 the hub (0) is close to everyone, so item 2 wins under MP
    assert mp[1, 2] > mp[1, 0]


def test_unknown_settings_are_refused():
    with pytest.raises(ConfigError):
        fit_transform(np.ones((3, 2)), "pca")
    with pytest.raises(ConfigError):
        similarity(np.ones((3, 2)), hubness="magic")
