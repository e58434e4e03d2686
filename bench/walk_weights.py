"""How sharply the recommender's walk weighs its links: the power of the cosine, on the folds of bench/quality.py.

The walk that ranks recommendations (`reform.space.walk`) joins each song to its nearest songs
and weighs every link by max(cosine, 0) to a power.  A higher power gives a song's closest
links nearly all the weight; a lower one spreads it over all of them.  For every method (from
the window embeddings `bench/quality.py` cached in its work folder) and for its untrained
network (same architecture, weights drawn as quality.py draws them, the method's own input
normalisation; cached in the work folder by `bench/window_sets.py`'s helper), each fold's songs
are ranked as recommendations rank them (`space.walks`: the links of `space.walk_links`) with
each power, and p@10 with the soundtrack as label is pooled over the folds.

Five tables:

powers
    For each method and power: p@10, paired against the power of 3 (the walk's first setting,
    the query expansion's power), the lead over the untrained network ranked the same way, and
    each fold's p@10; then each model's mean cosine to a song's nearest and 19th nearest song,
    which says how evenly a power spreads the weight over a song's links.
weights from each song's own neighbours
    Instead of a power of the cosine, the weights of self-tuning spectral clustering (Zelnik-Manor
    and Perona 2004): exp(-d² / (σ_i σ_j)), d = 1 - cosine, σ_i the distance from song i to its
    k-th nearest song, for k = 3, 7, 15; otherwise the same walk.
nested choice
    The power is chosen on two folds and measured on the third, in turn, so that no figure
    comes from the songs its power was chosen on: the power with the highest p@10 of all the
    methods given, pooled over the two folds.  The lead over the untrained network on the third
    fold, pooled over the three.
smaller libraries
    Random sub-libraries of every fold (20 to 90 songs, 8 draws each; the draws share songs,
    so the intervals, which resample queries, are too narrow), the default power paired
    against 3.
the whole home
    Every song of the manifests as one library (342 songs, beyond the walk's pool of 256): the
    shipped model and its untrained network, the default power against 3.  The shipped model
    trained on these songs, so this stands for a library's own songs.

    python bench/walk_weights.py --home DATA/home --work DATA/cv \\
        --manifest DATA/realmusic.tsv DATA/extramusic.tsv \\
        --methods cas05-bank,cas-aug05-pre --own own-cas05-banksoft,own-cas05-seed1-banksoft,own-cas05-seed2-banksoft

The methods must have been evaluated by bench/quality.py in the same work folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import quality  # noqa: E402
from common import run_main, table  # noqa: E402
from walk_pool import p10, whole_vectors  # noqa: E402
from walk_pool import paired as points  # noqa: E402
from window_sets import cached, untrained_windows  # noqa: E402

from reform import Library, space  # noqa: E402
from reform.embed import aggregate  # noqa: E402
from reform.recommend import WALK, WALK_POOL  # noqa: E402

POWERS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0)
FIRST = 3.0   # the power the walk was measured with first
TUNED = (3, 7, 15)   # the neighbour whose distance scales a song's weights


def song_vectors(windows: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The whole songs' mean+std vectors of a fold's window embeddings."""
    return np.stack([aggregate(w, "meanstd", w.shape[1]) for w in windows["full"]])


def walked(power: float):
    """Ranking as recommendations rank, the links weighted by the cosine to ``power``."""
    return lambda v: space.walks(v, WALK, WALK_POOL, alpha=power)


def tuned(k: int):
    """The library-wide walk of `space.walks` (every fold is smaller than its pool), the links weighted
    exp(-d² / (σ_i σ_j)) instead of by a power of the cosine, σ_i song i's distance to its k-th nearest."""
    def ranking(vectors: np.ndarray) -> np.ndarray:
        cos = space.cosine_matrix(vectors)
        n, links = len(cos), space.walk_links(WALK, len(cos) - 1)
        dist = 1.0 - cos
        others = dist + np.diag(np.full(n, np.inf))
        sigma = np.sort(others, axis=1)[:, k - 1]
        nearest = space._nearest_others(cos, links)
        rows = np.arange(n)[:, None]
        weight = np.zeros((n, n))
        weight[rows, nearest] = np.exp(-dist[rows, nearest] ** 2 / (sigma[:, None] * sigma[nearest]))
        chosen = weight > 0
        graph = np.where(chosen & chosen.T, weight, 0.0)   # mutual choices, as the walk links them
        scale = 1.0 / np.sqrt(np.maximum(graph.sum(1), 1e-12))
        scores = (np.eye(n) + weight) @ np.linalg.inv(np.eye(n) - 0.9 * graph * scale[:, None] * scale[None, :])
        return space.nearest_first(scores, cos)
    return ranking


def neighbour_cosines(vectors: list[np.ndarray]) -> str:
    """The mean cosine of a song to its nearest and to its 19th nearest song, over the folds."""
    first, nineteenth = [], []
    for v in vectors:
        cos = np.sort(space.cosine_matrix(v) - 3 * np.eye(len(v)), axis=1)[:, ::-1]
        first.append(cos[:, 0])
        nineteenth.append(cos[:, 18])
    return f"{np.concatenate(first).mean():.2f} / {np.concatenate(nineteenth).mean():.2f}"


class Folds:
    """Per-fold song vectors of every method and of its untrained network, with their labels."""

    def __init__(self, lib: Library, work: Path, manifests: list[str], methods: list[str], k: int):
        self.vectors: dict[tuple[str, str], list[np.ndarray]] = {}
        self.labels: list[list[str]] = []
        folds, group_of = quality.manifest_folds(lib, manifests, k)
        for fold in folds:
            songs = quality.fold_order(fold)
            self.labels.append([group_of[r.hash] for r in songs])

            def specs(songs=songs):
                return [quality.parts(np.asarray(lib.home.spectrograms.open(r.hash))) for r in songs]

            for method in methods:
                self.vectors.setdefault((method, "trained"), []).append(
                    song_vectors(cached(work, method, fold, len(songs))))
                self.vectors.setdefault((method, "untrained"), []).append(
                    song_vectors(untrained_windows(work, method, fold, len(songs), specs)))
            print(f"fold {fold.index}: {len(songs)} songs", flush=True)

    def scores(self, methods: list[str], rankings: dict) -> dict[tuple[str, str, object], list[np.ndarray]]:
        """Per-fold p@10 of every method and untrained network with every ranking (by its key)."""
        return {(m, net, key): [p10(v, labels, ranking) for v, labels in zip(self.vectors[m, net], self.labels)]
                for m in methods for net in ("trained", "untrained") for key, ranking in rankings.items()}


def powers_table(scores: dict, methods: list[str], powers: tuple[float, ...]) -> str:
    rows = []
    for m in methods:
        first = np.concatenate(scores[m, "trained", FIRST])
        for a in powers:
            trained, untrained = np.concatenate(scores[m, "trained", a]), np.concatenate(scores[m, "untrained", a])
            rows.append([m, f"{a:g}", f"{trained.mean():.3f}", points(trained, first), points(trained, untrained),
                         " / ".join(f"{s.mean():.3f}" for s in scores[m, "trained", a])])
    return table(["model", "power", "p@10", f"against the power {FIRST:g}", "over the untrained network",
                  "per fold"], rows)


def cosines_table(folds: Folds, methods: list[str]) -> str:
    return table(["model", "trained: nearest / 19th nearest", "untrained"],
                 [[m, neighbour_cosines(folds.vectors[m, "trained"]), neighbour_cosines(folds.vectors[m, "untrained"])]
                  for m in methods])


def tuned_table(scores: dict, methods: list[str]) -> str:
    rows = []
    for m in methods:
        first = np.concatenate(scores[m, "trained", FIRST])
        for k in TUNED:
            trained, untrained = (np.concatenate(scores[m, net, f"k{k}"]) for net in ("trained", "untrained"))
            rows.append([m, k, f"{trained.mean():.3f}", points(trained, first), f"{untrained.mean():.3f}",
                         points(trained, untrained)])
    return table(["model", "σ: distance to the k-th nearest", "p@10", f"against the power {FIRST:g}",
                  "untrained p@10", "over the untrained network"], rows)


def whole_table(home: Path, manifests: list[str], power: float) -> str:
    vectors, labels = whole_vectors(home, manifests)
    got = {(m, a): p10(vectors[m], labels, walked(a)) for m in vectors for a in (FIRST, power)}
    rows = [[f"{a:g}", f"{got['shipped', a].mean():.3f}", points(got["shipped", a], got["shipped", FIRST]),
             f"{got['untrained', a].mean():.3f}", points(got["shipped", a], got["untrained", a])]
            for a in (FIRST, power)]
    return (f"{len(labels)} songs, {len(set(labels))} soundtracks\n\n"
            + table(["power", "shipped p@10", f"against the power {FIRST:g}", "untrained p@10",
                     "over the untrained network"], rows))


def nested_table(scores: dict, groups: dict[str, list[str]], powers: tuple[float, ...], k: int) -> str:
    """The power chosen on the other folds (all methods' p@10 pooled), measured on each fold in turn."""
    every = [m for ms in groups.values() for m in ms]
    chosen = []
    for fold in range(k):
        rest = [f for f in range(k) if f != fold]
        chosen.append(max(powers, key=lambda a: np.mean(np.concatenate(
            [scores[m, "trained", a][f] for m in every for f in rest]))))
    rows = []
    for name, methods in groups.items():
        for label, ms in [(m, [m]) for m in methods] + ([(f"{name}, pooled", methods)] if len(methods) > 1 else []):
            def pooled(net: str, powers: list[float]) -> np.ndarray:
                return np.concatenate([scores[m, net, a][f] for m in ms for f, a in enumerate(powers)])
            rows.append([name, label, points(pooled("trained", chosen), pooled("untrained", chosen)),
                         points(pooled("trained", [FIRST] * k), pooled("untrained", [FIRST] * k))])
    return (f"power chosen for folds {', '.join(map(str, range(k)))}: {', '.join(f'{a:g}' for a in chosen)}\n\n"
            + table(["models", "model", "over the untrained network", f"with the power {FIRST:g}"], rows))


def smaller_table(folds: Folds, methods: list[str], power: float) -> str:
    rows = []
    for m in methods:
        for size in (20, 30, 45, 70, 90):
            got: dict[tuple[str, float], list[np.ndarray]] = {}
            for f, labels in enumerate(folds.labels):
                for draw in range(8):
                    chosen = np.random.default_rng([f, draw, size]).choice(len(labels), size, replace=False)
                    for net in ("trained", "untrained"):
                        for a in (FIRST, power):
                            got.setdefault((net, a), []).append(
                                p10(folds.vectors[m, net][f][chosen], [labels[i] for i in chosen], walked(a)))
            pooled = {key: np.concatenate(v) for key, v in got.items()}
            rows.append([m, size, f"{pooled['trained', FIRST].mean():.3f}", f"{pooled['trained', power].mean():.3f}",
                         points(pooled["trained", power], pooled["trained", FIRST]),
                         points(pooled["trained", power], pooled["untrained", power])])
    return table(["model", "songs", f"p@10, power {FIRST:g}", f"p@10, power {power:g}", f"against the power {FIRST:g}",
                  "over the untrained network"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    quality.cached_folds_arguments(parser)
    parser.add_argument("--methods", required=True, help="held-out methods quality.py evaluated, comma-separated")
    parser.add_argument("--own", default="", help="own-library methods quality.py evaluated, comma-separated")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    groups = {"held out": args.methods.split(","), "own library": [m for m in args.own.split(",") if m]}
    methods = [m for ms in groups.values() for m in ms]
    torch.set_num_threads(os.cpu_count() or 1)
    with Library(args.home, create=False) as lib:
        folds = Folds(lib, work, args.manifest, methods, args.folds)
    scores = folds.scores(methods, {a: walked(a) for a in POWERS} | {f"k{k}": tuned(k) for k in TUNED})
    print(powers_table(scores, methods, POWERS) + "\n", flush=True)
    print(cosines_table(folds, methods) + "\n", flush=True)
    print(tuned_table(scores, methods) + "\n", flush=True)
    print(nested_table(scores, {g: ms for g, ms in groups.items() if ms}, POWERS, args.folds) + "\n", flush=True)
    print(smaller_table(folds, methods, space.WALK_ALPHA) + "\n", flush=True)
    print(whole_table(Path(args.home), args.manifest, space.WALK_ALPHA), flush=True)


if __name__ == "__main__":
    run_main(main)
