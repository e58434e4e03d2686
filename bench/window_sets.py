"""Songs compared as sets of windows instead of one pooled vector, on the folds of bench/quality.py.

A song vector (mean+std of the window embeddings) keeps what a song's windows share on
average; comparing the windows themselves asks whether each window of one song has a
close window in the other.  For every method (from the window embeddings that
`bench/quality.py` cached in its work folder) and for the untrained network of the same
architecture, it scores three similarities on each fold's songs, pooled over the folds:

mean+std
    the product's: the cosine of the song vectors;
windows matched
    the mean, over the windows of each song, of the cosine to the closest window of the
    other song, averaged both ways (the Chamfer similarity of two point sets);
bag of windows
    every window assigned softly to 64 centres (k-means over the fold's windows, unit
    length), a song the share of its windows at each centre, compared by the Hellinger
    affinity (the cosine of the square roots).

    python bench/window_sets.py --home DATA/home-all --work DATA/cv \\
        --manifest DATA/realmusic.tsv DATA/extramusic.tsv --methods cas05-bank,own-cas05-banksoft

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
from common import table  # noqa: E402

from reform import Library  # noqa: E402
from reform import evaluate as ev  # noqa: E402
from reform.checkpoint import Bundle, load_bundle  # noqa: E402
from reform.model import ClusterAutoencoder  # noqa: E402

CENTRES = 64
ASSIGN_TEMPERATURE = 0.1


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pooled(sets: list[np.ndarray]) -> np.ndarray:
    """Cosines of the mean+std song vectors (the product's similarity)."""
    x = np.stack([quality.aggregate(s, "meanstd") for s in sets])
    return x @ x.T


def matched(sets: list[np.ndarray]) -> np.ndarray:
    """Chamfer similarity: each window's best cosine in the other song, averaged both ways."""
    units = [_unit(s) for s in sets]
    sim = np.zeros((len(sets), len(sets)))
    for i, a in enumerate(units):
        for j in range(i, len(units)):
            c = a @ units[j].T
            sim[i, j] = sim[j, i] = 0.5 * (c.max(1).mean() + c.max(0).mean())
    return sim


def bag(sets: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Hellinger affinity of soft histograms over k-means centres of all the windows."""
    windows = _unit(np.concatenate(sets))
    centres = windows[np.random.default_rng(seed).choice(len(windows), CENTRES, replace=False)]
    for _ in range(20):
        nearest = (windows @ centres.T).argmax(1)
        for c in range(CENTRES):
            if (nearest == c).any():
                centres[c] = windows[nearest == c].mean(0)
        centres = _unit(centres)
    hist = []
    for s in sets:
        logits = _unit(s) @ centres.T / ASSIGN_TEMPERATURE
        p = np.exp(logits - logits.max(1, keepdims=True))
        hist.append((p / p.sum(1, keepdims=True)).mean(0))
    roots = _unit(np.sqrt(np.array(hist)))
    return roots @ roots.T


SIMILARITIES = {"mean+std": pooled, "windows matched": matched, "bag of windows": bag}


def fold_scores(windows: dict[str, list[np.ndarray]], labels: list[str], similarity) -> dict[str, np.ndarray]:
    """Per-query p@10 and same-song hits (halves, unequal parts) under one similarity."""
    ids = np.arange(len(labels))[:, None]     # the similarity looks songs up by their row
    full = similarity(windows["full"])
    _, label_scores = ev.label_queries(ids, labels, metric=lambda _: full)
    out = {"p@10": label_scores[:, 1]}
    n = len(labels)
    for name, (a, b) in {"top-1": ("first", "second"), "unequal": ("early", "late")}.items():
        both = similarity(windows[a] + windows[b])
        out[name] = ev.same_song_hits(ids[:n], ids[:n], metric=lambda _, s=both: s)["top1"]
    return out


def cached(work: Path, method: str, fold: quality.Fold, count: int) -> dict[str, list[np.ndarray]]:
    """The window embeddings bench/quality.py kept of a method on a fold (without the feature map's
    statistics after them)."""
    path = work / "windows" / method / f"fold{fold.index}.npz"
    if not path.exists():
        sys.exit(f"{method} has no window embeddings on fold {fold.index}: evaluate it with bench/quality.py first")
    dim = load_bundle(model_file(work, method, fold)).cfg.embedding_dim
    with np.load(path) as data:
        return {p: [data[f"{p}{i}"].astype(np.float32)[:, :dim] for i in range(count)] for p in quality.PARTS}


def model_file(work: Path, method: str, fold: quality.Fold) -> Path:
    folder = work / "runs" / method / f"fold{fold.index}"
    return folder / "model.pt" if (folder / "model.pt").exists() else folder / "pretrain.pt"


def untrained_windows(work: Path, method: str, fold: quality.Fold, count: int, specs) -> dict[str, list[np.ndarray]]:
    """The window embeddings of the method's network with the weights it starts from, drawn as
    bench/quality.py draws them, with the method's input normalisation (kept in the work folder)."""
    trained = load_bundle(model_file(work, method, fold))
    torch.manual_seed(0)
    network = Bundle(ClusterAutoencoder(trained.cfg), trained.cfg, trained.normaliser, trained.feature_version,
                     "cluster", "untrained", {})
    windows = quality.cached_windows(f"untrained-{method}", network, fold, work, count, specs)
    return {p: [w[:, :trained.cfg.embedding_dim] for w in ws] for p, ws in windows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    quality.cached_folds_arguments(parser)
    parser.add_argument("--methods", required=True, help="comma-separated methods quality.py evaluated")
    args = parser.parse_args()
    work, methods = Path(args.work).resolve(), args.methods.split(",")
    torch.set_num_threads(os.cpu_count() or 1)
    results: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    with Library(args.home, create=False) as lib:
        folds, group_of = quality.manifest_folds(lib, args.manifest, args.folds)
        for fold in folds:
            songs = quality.fold_order(fold)
            labels = [group_of[r.hash] for r in songs]

            def specs(songs=songs):
                return [quality.parts(np.asarray(lib.home.spectrograms.open(r.hash))) for r in songs]

            for name in ["untrained", *methods]:
                windows = (untrained_windows(work, methods[0], fold, len(songs), specs) if name == "untrained"
                           else cached(work, name, fold, len(songs)))
                for how, similarity in SIMILARITIES.items():
                    results.setdefault((name, how), []).append(fold_scores(windows, labels, similarity))
            print(f"fold {fold.index}: {len(songs)} songs", flush=True)

    def cat(name: str, how: str, key: str) -> np.ndarray:
        return np.concatenate([r[key] for r in results[(name, how)]])

    def interval(values: np.ndarray, scale: float = 1.0) -> str:
        mean, low, high = ev.bootstrap_interval(values * scale)
        return f"{mean:.3f} [{low:.3f}, {high:.3f}]" if scale == 1 else f"{mean:+.1f} [{low:.1f}, {high:.1f}]"

    rows_out = []
    for name in ["untrained", *methods]:
        for how in SIMILARITIES:
            row = [name, how] + [interval(cat(name, how, k)) for k in ("p@10", "top-1", "unequal")]
            row += ["" if name == "untrained" else
                    interval(cat(name, how, k) - cat("untrained", how, k), 100) for k in ("p@10", "top-1")]
            rows_out.append(row)
    print(table(["model", "similarity", "p@10", "same-song top-1", "top-1, unequal parts",
                 "p@10 over untrained, same similarity", "top-1 over untrained"], rows_out))
    against = [[name, how] + [interval(cat(name, how, k) - cat(name, "mean+std", k), 100)
                              for k in ("p@10", "top-1", "unequal")]
               for name in ["untrained", *methods] for how in list(SIMILARITIES)[1:]]
    print("\nPaired against mean+std of the same model (points):\n")
    print(table(["model", "similarity", "p@10", "same-song top-1", "top-1, unequal parts"], against))


if __name__ == "__main__":
    main()
