"""How sharply the recommender's walk weighs its links: the power of the cosine, on the folds of bench/quality.py.

The walk that ranks recommendations (`reform.space.walk`) joins each song to its nearest songs
and weighs every link by max(cosine, 0) to a power.  A higher power gives a song's closest
links nearly all the weight; a lower one spreads it over all of them.  For every method (from
the window embeddings `bench/quality.py` cached in its work folder) and for its untrained
network (same architecture, weights drawn as quality.py draws them, the method's own input
normalisation; cached in the work folder by `bench/window_sets.py`'s helper), each fold's songs
are ranked as recommendations rank them (`space.walks`: the links of `space.walk_links`) with
each power, and p@10 with the soundtrack as label is pooled over the folds.

Three tables:

powers
    For each method and power: p@10, paired against the power of 3 (the walk's first setting,
    the query expansion's power), the lead over the untrained network ranked the same way, and
    each fold's p@10.
nested choice
    The power is chosen on two folds and measured on the third, in turn, so that no figure
    comes from the songs its power was chosen on: the power with the highest p@10 of all the
    methods given, pooled over the two folds.  The lead over the untrained network on the third
    fold, pooled over the three.
smaller libraries
    Random sub-libraries of every fold (20 to 90 songs, 8 draws each; the draws share songs,
    so the intervals, which resample queries, are too narrow), the default power paired
    against 3.

    python bench/walk_weights.py --home DATA/home-all --work DATA/cv \\
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
from window_sets import cached, untrained_windows  # noqa: E402

from reform import Library, space  # noqa: E402
from reform import evaluate as ev  # noqa: E402
from reform.embed import aggregate  # noqa: E402
from reform.recommend import WALK, WALK_POOL  # noqa: E402

POWERS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0)
FIRST = 3.0   # the power the walk was measured with first


def song_vectors(windows: dict[str, list[np.ndarray]]) -> np.ndarray:
    """The whole songs' mean+std vectors of a fold's window embeddings."""
    return np.stack([aggregate(w, "meanstd", w.shape[1]) for w in windows["full"]])


def p10(vectors: np.ndarray, labels: list[str], power: float) -> np.ndarray:
    """Per-query p@10 of the fold ranked as recommendations are, the links weighted by ``power``."""
    return ev.label_queries(vectors, labels, metric=lambda v: space.walks(v, WALK, WALK_POOL, alpha=power))[1][:, 1]


def points(values: np.ndarray) -> str:
    mean, low, high = ev.bootstrap_interval(values)
    return f"{mean * 100:+.1f} [{low * 100:.1f}, {high * 100:.1f}]"


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

    def scores(self, methods: list[str], powers: tuple[float, ...]) -> dict[tuple[str, str, float], list[np.ndarray]]:
        """Per-fold p@10 of every method and untrained network with every power."""
        return {(m, net, a): [p10(v, labels, a) for v, labels in zip(self.vectors[m, net], self.labels)]
                for m in methods for net in ("trained", "untrained") for a in powers}


def powers_table(scores: dict, methods: list[str], powers: tuple[float, ...]) -> str:
    rows = []
    for m in methods:
        first = np.concatenate(scores[m, "trained", FIRST])
        for a in powers:
            trained, untrained = np.concatenate(scores[m, "trained", a]), np.concatenate(scores[m, "untrained", a])
            rows.append([m, f"{a:g}", f"{trained.mean():.3f}", points(trained - first), points(trained - untrained),
                         " / ".join(f"{s.mean():.3f}" for s in scores[m, "trained", a])])
    return table(["model", "power", "p@10", f"against the power {FIRST:g}", "over the untrained network",
                  "per fold"], rows)


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
            lead = np.concatenate([scores[m, "trained", a][f] - scores[m, "untrained", a][f]
                                   for m in ms for f, a in enumerate(chosen)])
            first = np.concatenate([scores[m, "trained", FIRST][f] - scores[m, "untrained", FIRST][f]
                                    for m in ms for f in range(k)])
            rows.append([name, label, points(lead), points(first)])
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
                                p10(folds.vectors[m, net][f][chosen], [labels[i] for i in chosen], a))
            pooled = {key: np.concatenate(v) for key, v in got.items()}
            rows.append([m, size, f"{pooled['trained', FIRST].mean():.3f}", f"{pooled['trained', power].mean():.3f}",
                         points(pooled["trained", power] - pooled["trained", FIRST]),
                         points(pooled["trained", power] - pooled["untrained", power])])
    return table(["model", "songs", f"p@10, power {FIRST:g}", f"p@10, power {power:g}", f"against the power {FIRST:g}",
                  "over the untrained network"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True)
    parser.add_argument("--manifest", nargs="+", required=True)
    parser.add_argument("--work", required=True, help="bench/quality.py's work folder")
    parser.add_argument("--methods", required=True, help="held-out methods quality.py evaluated, comma-separated")
    parser.add_argument("--own", default="", help="own-library methods quality.py evaluated, comma-separated")
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    groups = {"held out": args.methods.split(","), "own library": [m for m in args.own.split(",") if m]}
    methods = [m for ms in groups.values() for m in ms]
    torch.set_num_threads(os.cpu_count() or 1)
    with Library(args.home, create=False) as lib:
        folds = Folds(lib, work, args.manifest, methods, args.folds)
    scores = folds.scores(methods, POWERS)
    print(powers_table(scores, methods, POWERS) + "\n", flush=True)
    print(nested_table(scores, {g: ms for g, ms in groups.items() if ms}, POWERS, args.folds) + "\n", flush=True)
    print(smaller_table(folds, methods, space.WALK_ALPHA), flush=True)


if __name__ == "__main__":
    run_main(main)
