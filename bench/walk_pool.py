"""The recommender's walk on libraries of other sizes than the ones `bench/quality.py` measures.

Every fold of the quality bench has about 115 songs, and there the walk over a query's 256
nearest songs is the library-wide diffusion.  Three measurements of p@10 with the soundtrack as
label, each walk here with exactly the links it names (`space.walk` itself caps them with
`space.walk_links`, which the rows "as recommended" use):

folds
    From the quality bench's cached window embeddings (``--work``, ``--methods``), each fold's
    queries walk over their P nearest songs only, paired against the walk over the whole fold
    with 20 links.
smaller libraries
    Random sub-libraries of each fold (20 to 90 songs, 8 draws each; the draws share songs, so
    the intervals, which resample queries, are narrower than they should be), ranked by the
    cosine, the expansion, and walks with 20 and 10 links and as recommended, paired against
    the cosine.
whole
    The whole home (every song of the manifests, 25 soundtracks, ``--home``) as one library of
    342 songs, where the pool of 256 is no longer the library: the shipped model and its
    untrained network (same normaliser, seed 0), ranked in each of those ways.  The shipped model
    was trained on these songs, so this stands for a library's own songs.

    python bench/walk_pool.py --work DATA/cv --methods cas05-bank,own-cas05-banksoft \\
        --home DATA/home --manifest DATA/realmusic.tsv DATA/extramusic.tsv
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import read_manifest, run_main, table  # noqa: E402
from quality import Scores  # noqa: E402

from reform import Library, space  # noqa: E402
from reform import evaluate as ev  # noqa: E402
from reform.checkpoint import Bundle, load_bundle  # noqa: E402
from reform.config import EmbedConfig  # noqa: E402
from reform.embed import Embedder, aggregate, song_windows  # noqa: E402
from reform.home import SHIPPED_MODEL  # noqa: E402
from reform.model import ClusterAutoencoder  # noqa: E402
from reform.recommend import WALK, WALK_POOL  # noqa: E402

WHOLE = 10 ** 6   # a pool larger than any library: the library-wide walk


def paired(values: np.ndarray, reference: np.ndarray) -> str:
    """Mean difference in points and its bootstrap 95 % interval over the queries."""
    mean, low, high = ev.bootstrap_interval(values - reference)
    return f"{mean * 100:+.1f} [{low * 100:.1f}, {high * 100:.1f}]"


def p10(vectors: np.ndarray, labels: list[str], ranking) -> np.ndarray:
    return ev.label_queries(vectors, labels, metric=ranking)[1][:, 1]


def walking(pool: int, links: int):
    """Every song's walk over its ``pool`` nearest other songs with exactly ``links`` links, the
    songs beyond its pool below them (the diffusion of `space.walk` without its cap on the links)."""
    def ranking(vectors: np.ndarray) -> np.ndarray:
        sim = space.cosine_matrix(vectors)
        out = sim - 10.0
        for i in range(len(vectors)):
            others = np.delete(np.arange(len(vectors)), i)
            if len(others) > pool:
                others = others[np.argsort(-sim[i, others], kind="stable")[:pool]]
            nodes = np.concatenate([[i], others])
            out[i, others] = space.similarity(vectors[nodes], average="diffusion-near", neighbours=links,
                                              alpha=space.WALK_ALPHA, keep_nearest=True)[0, 1:]
        return out
    return ranking


def recommended(vectors: np.ndarray) -> np.ndarray:
    """As recommendations rank: the walk over each song's WALK_POOL nearest, links capped."""
    return space.walks(vectors, WALK, WALK_POOL)


def fold_vectors(work: Path, method: str, fold: int) -> tuple[np.ndarray, list[str]]:
    """A fold's mean+std song vectors from the quality bench's cache, and their soundtracks."""
    cached = work / "windows" / method / f"fold{fold}.npz"
    if not cached.exists():
        raise SystemExit(f"error: {cached} is missing: run `python bench/quality.py --work {work} --methods "
                         f"{method}` first")
    labels = list(Scores.load(work / "results" / f"{method}@meanstd" / f"fold{fold}.npz").groups)
    with np.load(work / "windows" / method / f"fold{fold}.npz") as data:
        dim = 128
        vectors = np.stack([aggregate(data[f"full{i}"].astype(np.float32)[:, :dim], "meanstd", dim)
                            for i in range(len(labels))])
    return vectors, labels


def folds(work: Path, methods: list[str]) -> str:
    """Walks over each query's P nearest songs of a fold, against the whole fold."""
    settings = [(10, WALK), (32, WALK), (32, 6), (64, WALK), (64, 11), (WHOLE, 10), (WHOLE, 5), (WHOLE, WALK)]
    rows = []
    for method in methods:
        got: dict[tuple[int, int], list[np.ndarray]] = {s: [] for s in settings}
        for f in range(3):
            vectors, labels = fold_vectors(work, method, f)
            for s in settings:
                got[s].append(p10(vectors, labels, walking(*s)))
        pooled = {s: np.concatenate(v) for s, v in got.items()}
        for s in settings:
            pool = "the whole fold" if s[0] == WHOLE else f"{s[0]} nearest"
            rows.append([method, pool, s[1], f"{pooled[s].mean():.3f}", paired(pooled[s], pooled[WHOLE, WALK])])
    return table(["model", "walk over", "links", "p@10", "against the whole fold, 20 links"], rows)


def smaller(work: Path, methods: list[str]) -> str:
    """Random sub-libraries of the folds, ranked five ways, paired against the cosine."""
    rankings = {"plain cosine": "cosine",
                "expansion, 2 songs": lambda v: space.similarity(v, average="queries", neighbours=2),
                "walk, 20 links": walking(WALK_POOL, WALK), "walk, 10 links": walking(WALK_POOL, 10),
                "walk as recommended": recommended}
    rows = []
    for method in methods:
        cached = [fold_vectors(work, method, f) for f in range(3)]
        for size in (20, 30, 45, 70, 90):
            got: dict[str, list[np.ndarray]] = {r: [] for r in rankings}
            for f, (vectors, labels) in enumerate(cached):
                for draw in range(8):
                    chosen = np.random.default_rng([f, draw, size]).choice(len(labels), size, replace=False)
                    for name, ranking in rankings.items():
                        got[name].append(p10(vectors[chosen], [labels[i] for i in chosen], ranking))
            pooled = {r: np.concatenate(v) for r, v in got.items()}
            rows.append([method, size, f"{pooled['plain cosine'].mean():.3f}"]
                        + [f"{pooled[r].mean():.3f}, {paired(pooled[r], pooled['plain cosine'])}"
                           for r in list(rankings)[1:]]
                        + [paired(pooled["walk as recommended"], pooled["walk, 20 links"])])
    return table(["model", "songs", "cosine"] + [f"{r}: p@10, against the cosine" for r in list(rankings)[1:]]
                 + ["as recommended against 20 links"], rows)


def whole_vectors(home: Path, manifests: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every song of the manifests in the home (once each) as one library: the mean+std vectors of
    the shipped model and of its untrained network (same normaliser, seed 0), and the soundtracks."""
    group = {os.path.realpath(r["path"]): r["group"] for m in manifests for r in read_manifest(m)}
    lib = Library(home, create=False, read_only=True)
    first: dict[str, object] = {}
    for r in sorted(lib.songs(), key=lambda r: r.path):
        if os.path.realpath(r.path) in group:
            first.setdefault(r.hash, r)
    songs = list(first.values())
    songs = [songs[i] for i in np.random.default_rng(0).permutation(len(songs))]  # ties must not follow folders
    labels = [group[os.path.realpath(r.path)] for r in songs]
    shipped = load_bundle(SHIPPED_MODEL)
    torch.manual_seed(0)
    untrained = Bundle(ClusterAutoencoder(shipped.cfg), shipped.cfg, shipped.normaliser,
                       shipped.feature_version, "cluster", "untrained", {})
    vectors = {}
    for name, bundle in (("shipped", shipped), ("untrained", untrained)):
        embedder = Embedder(bundle, EmbedConfig())
        vectors[name] = np.stack([
            aggregate(embedder.windows(song_windows(np.asarray(lib.home.spectrograms.open(r.hash)),
                                                    bundle.normaliser, embedder.window, embedder.hop)),
                      "meanstd", bundle.cfg.embedding_dim) for r in songs])
    lib.close()
    return vectors, labels


def whole(home: Path, manifests: list[str]) -> str:
    """The shipped model and its untrained network on every song of the manifests as one library."""
    vectors, labels = whole_vectors(home, manifests)
    rankings = {"plain cosine": "cosine",
                "expansion, 2 songs": lambda v: space.similarity(v, average="queries", neighbours=2),
                "walk as recommended": recommended}
    for pool, links in [(WALK_POOL, WALK), (WHOLE, WALK), (WHOLE, 10), (WHOLE, 40), (WHOLE, 60),
                        (WALK_POOL, 45), (114, WALK), (64, 11), (32, 6)]:
        over = "the whole library" if pool == WHOLE else f"{pool} nearest"
        rankings[f"walk over {over}, {links} links"] = walking(pool, links)
    got = {(m, r): p10(vectors[m], labels, f) for m in vectors for r, f in rankings.items()}
    rows = [[r, f"{got['shipped', r].mean():.3f}", paired(got["shipped", r], got["shipped", "plain cosine"]),
             f"{got['untrained', r].mean():.3f}", paired(got["shipped", r], got["untrained", r])]
            for r in rankings]
    return (f"{len(labels)} songs, {len(set(labels))} soundtracks\n\n"
            + table(["ranking", "shipped p@10", "against its plain cosine", "untrained p@10",
                     "over the untrained network"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="the quality bench's work folder (for the folds)")
    parser.add_argument("--methods", default="cas05-bank,own-cas05-banksoft")
    parser.add_argument("--home", type=Path, help="a home holding every song of the manifests")
    parser.add_argument("--manifest", nargs="+", default=[])
    args = parser.parse_args()
    if args.work:
        print(folds(args.work, args.methods.split(",")) + "\n", flush=True)
        print(smaller(args.work, args.methods.split(",")) + "\n", flush=True)
    if args.home:
        print(whole(args.home, args.manifest), flush=True)


if __name__ == "__main__":
    run_main(main)
