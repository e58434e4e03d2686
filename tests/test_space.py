"""Query-time transforms (centring, z-scores, whitening), neighbour averaging and hubness reduction (CSLS, MP)."""

import math

import numpy as np
import pytest

from reform.errors import ConfigError
from reform.space import (WALK_ALPHA, average_neighbours, csls, diffuse, fit_transform, mutual_proximity, neighbourhood,
                          nearest_first, normal_cdf, similarity, walk, walk_links, walks)


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


def test_average_neighbours_known_answer():
    x = np.array([[2.0, 0.0], [0.8, 0.6], [0.0, 3.0]])      # cosines: 0-1 0.8, 1-2 0.6, 0-2 0
    one = average_neighbours(x, 1, alpha=1.0)
    # 0's nearest is 1 (weight 0.8); 1's is 0 (0.8); 2's is 1 (0.6); each added to itself at unit length
    expected = np.array([[1 + 0.8 * 0.8, 0.8 * 0.6], [0.8 + 0.8, 0.6], [0.6 * 0.8, 1 + 0.6 * 0.6]])
    assert np.allclose(one, expected / np.linalg.norm(expected, axis=1, keepdims=True))
    # weights are cosines to the power alpha; a neighbour at a negative cosine counts nothing
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert np.allclose(average_neighbours(opposite, 1), opposite)
    # more neighbours than other songs: all of them; none: the vectors at unit length
    assert np.allclose(average_neighbours(x, 10, alpha=0.0),
                       np.repeat([x[0] / 2 + x[1] + x[2] / 3], 3, axis=0) / np.linalg.norm(x[0] / 2 + x[1] + x[2] / 3))
    assert np.allclose(average_neighbours(x, 0), x / np.linalg.norm(x, axis=1, keepdims=True))


def test_average_neighbours_gathers_a_song_with_its_kind():
    # two kinds around (1, 0) and (0, 1); song 0 lies a little nearer to song 4, a song of the
    # other kind at its edge, than to any of its own kind, which lie close to each other
    x = np.array([[1.0, 0.75], [1.0, 0.1], [1.0, 0.0], [1.0, -0.1], [0.9, 1.0], [0.0, 1.0], [0.1, 1.0]])
    def nearest_of_0(sim):
        return int(np.argmax(np.where(np.arange(len(sim)) == 0, -np.inf, sim[0])))
    assert nearest_of_0(similarity(x)) == 4
    assert nearest_of_0(similarity(x, average="all", neighbours=3)) in (1, 2, 3)
    # the query alone averaged (query expansion): its row against the songs as they are; here
    # song 4 is among its 3 nearest and stays first (only averaging song 4 too moves it away)
    expanded = similarity(x, average="queries", neighbours=3)
    assert nearest_of_0(expanded) == 4
    assert np.allclose(expanded[0], average_neighbours(x, 3)[0] @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T)


def test_diffusion_known_answer_on_two_pairs():
    # two pairs, each the other's only neighbour: each pair's normalised link is 1, whatever
    # its cosine, so (I - a W)^-1 = [[1, a], [a, 1]] / (1 - a^2) within a pair and 0 across
    sim = np.array([[1, 0.8, 0, 0], [0.8, 1, 0, 0], [0, 0, 1, 0.5], [0, 0, 0.5, 1.0]])
    pair = np.array([[1, 0.5], [0.5, 1]]) / (1 - 0.25)
    assert np.allclose(diffuse(sim, 1, spread=0.5), np.kron(np.eye(2), pair))
    # started at the song and its neighbour too: its own row plus the neighbour's, weighted 0.8 ** 3
    near = diffuse(sim, 1, spread=0.5, start="near")
    assert np.allclose(near[0], np.r_[pair[0] + 0.8 ** 3 * pair[1], 0, 0])
    assert np.allclose(near[3], np.r_[0, 0, pair[1] + 0.5 ** 3 * pair[0]])


def test_diffusion_follows_a_chain_of_close_songs():
    # 0-1 and 1-2 close, 0-2 less; song 3 is nearer to 0 than 2 is, but near nothing else
    sim = np.array([[1, 0.9, 0.5, 0.6], [0.9, 1, 0.9, 0.1], [0.5, 0.9, 1, 0.1], [0.6, 0.1, 0.1, 1.0]])
    assert sim[0, 3] > sim[0, 2]
    scores = diffuse(sim, 2)
    assert scores[0, 2] > scores[0, 3]
    assert np.allclose(scores, scores.T)
    # through similarity(): the cosine of vectors, then the same diffusion
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    assert np.allclose(similarity(x, average="diffusion", neighbours=1), diffuse(x @ x.T, 1))
    assert np.allclose(similarity(np.ones((1, 2)), average="diffusion"), [[1.0]])   # one song: nothing to join


def test_the_nearest_song_can_be_kept_first_after_a_diffusion():
    # the chain of the test above: songs 0-1-2 close in a row, 3 near 0 only
    sim = np.array([[1, 0.9, 0.5, 0.6], [0.9, 1, 0.85, 0.1], [0.5, 0.85, 1, 0.1], [0.6, 0.1, 0.1, 1.0]])
    # each row's other song raised to 1 above the best other score; a song's own score left as it is
    assert np.allclose(nearest_first(np.array([[5.0, 1.0], [2.0, 7.0]]), np.eye(2)), [[5.0, 2.0], [3.0, 7.0]])
    scores = diffuse(sim, 2)
    first = nearest_first(scores, sim)
    for i, nearest in enumerate([1, 0, 1, 0]):
        ranked = np.argsort(-np.where(np.eye(4, dtype=bool)[i], -np.inf, first[i]))
        assert ranked[0] == nearest
        others = [j for j in ranked[1:] if j != i]
        assert others == [j for j in np.argsort(-scores[i]) if j not in (i, nearest)]   # the rest as diffused
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    assert np.allclose(similarity(x, average="diffusion", neighbours=1, keep_nearest=True),
                       nearest_first(diffuse(x @ x.T, 1), x @ x.T))
    assert np.allclose(similarity(np.ones((1, 2)), keep_nearest=True), [[1.0]])


def test_unknown_settings_are_refused():
    with pytest.raises(ConfigError):
        fit_transform(np.ones((3, 2)), "pca")
    with pytest.raises(ConfigError):
        similarity(np.ones((3, 2)), hubness="magic")
    with pytest.raises(ConfigError):
        similarity(np.ones((3, 2)), average="all", neighbours=0)
    with pytest.raises(ConfigError):
        similarity(np.ones((3, 2)), average="both")
    with pytest.raises(ConfigError):
        diffuse(np.eye(3), 1, start="elsewhere")


def test_a_walk_over_few_songs_gets_fewer_links():
    """Twenty links over a few dozen songs join nearly every song to every other; a walk gets
    at most a sixth of its songs as links, never fewer than 10 for that, and never more than asked."""
    assert [walk_links(20, n) for n in (0, 30, 65, 66, 114, 120, 256, 10 ** 6)] == [10, 10, 10, 11, 19, 20, 20, 20]
    assert walk_links(5, 1000) == 5 and walk_links(5, 3) == 5
    # through the walk and the evaluation's walks: a library of 40 songs walks with 10 links
    x = np.random.default_rng(5).normal(size=(40, 8))
    ten = similarity(x, average="diffusion-near", neighbours=10, keep_nearest=True, alpha=WALK_ALPHA)
    twenty = similarity(x, average="diffusion-near", neighbours=20, keep_nearest=True, alpha=WALK_ALPHA)
    others = np.arange(1, 40)
    assert np.allclose(walk(x[0], x[others], 20), ten[0, others])
    assert not np.allclose(ten[0, others], twenty[0, others])
    assert np.allclose(walks(x, 20), ten)


def test_the_walk_weighs_its_links_by_the_cosine_to_the_sixth_power():
    """Known answer on a query and three songs, all linked to each other: the links weigh
    max(cosine, 0) ** 6 (normalised by the square roots of their sums), the walk starts at the
    query and along its links, goes on with probability 0.9, and keeps the nearest song first."""
    assert WALK_ALPHA == 6.0
    angles = np.array([0.0, 0.2, 0.6, 1.3])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cos = x @ x.T
    links = np.maximum(cos, 0.0) ** 6
    np.fill_diagonal(links, 0.0)
    scale = 1.0 / np.sqrt(links.sum(1))
    start = links[0].copy()
    start[0] += 1.0
    expected = np.linalg.solve(np.eye(4) - 0.9 * links * scale[:, None] * scale[None, :], start)[1:]
    expected[0] = expected.max() + 1.0          # the nearest song by the cosine
    assert np.allclose(walk(x[0], x[1:], 3), expected)
    # the cube, the walk's first setting, gives the farthest song more of the score (0.51 of the
    # second's, not 0.39)
    cubed = walk(x[0], x[1:], 3, alpha=3.0)
    assert cubed[2] / cubed[1] > expected[2] / expected[1]
