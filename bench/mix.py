"""Mixes of several seeds: each seed's nearest songs in turn against the songs nearest their centre.

A person who asks for a mix of songs they love, from two or three kinds of music,
expects every kind in it.  For random sets of seeds drawn from distinct soundtracks
(and, as a control, from one soundtrack), it asks the library's recommender for a mix
of N songs both ways (`Recommender.mix(how="each" | "centre")`) and scores, per set:

of the seeds' kinds
    the share of the mix whose soundtrack is one of the seeds' (what a mix should hold);
every seed's kind
    1 when each seed's soundtrack is in the mix at least once;
fairest share
    the fewest songs of any seed's soundtrack, against an even share of N (capped at 1).

Means with bootstrap 95 % intervals over the sets, and the paired difference each - centre.

    python bench/mix.py --home DATA/home-all --manifest DATA/realmusic.tsv DATA/extramusic.tsv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import read_manifest, run_main, table  # noqa: E402

from reform import Library  # noqa: E402
from reform.evaluate import bootstrap_interval  # noqa: E402


def score(groups: list[str], seeds: list[str], n: int) -> tuple[float, float, float]:
    """(share of the seeds' kinds, every seed's kind there, fairest share) of one mix."""
    kinds = set(seeds)
    counts = [groups.count(g) for g in kinds]
    return (sum(g in kinds for g in groups) / n, float(min(counts) > 0),
            min(1.0, min(counts) / (n / len(kinds))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", required=True, help="a scanned and embedded library of the manifests' songs")
    ap.add_argument("--manifest", nargs="+", required=True, help="realmusic.tsv and/or extramusic.tsv")
    ap.add_argument("--sets", type=int, default=300, help="seed sets per kind of draw")
    ap.add_argument("-n", type=int, default=10, help="songs per mix")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    group_of = {r["path"]: r["group"] for m in args.manifest for r in read_manifest(m)}
    rng = np.random.default_rng(args.seed)
    with Library(Path(args.home), create=False) as lib:
        rec = lib.recommender()
        rows = [r for r in lib.songs() if r.path in group_of and rec.has(r.hash)]
        by_group: dict[str, list] = {}
        for r in rows:
            by_group.setdefault(group_of[r.path], []).append(r)
        groups = sorted(g for g, songs in by_group.items() if len(songs) >= 4)
        print(f"{len(rows)} songs of {len(groups)} soundtracks with at least 4 songs; "
              f"{args.sets} seed sets per draw, mixes of {args.n}")
        lines = []
        for draw, k in (("distinct", 2), ("distinct", 3), ("distinct", 4), ("one soundtrack", 2)):
            results = {how: [] for how in ("centre", "each")}
            for _ in range(args.sets):
                if draw == "distinct":
                    kinds = rng.choice(groups, k, replace=False)
                    picked = [by_group[g][rng.integers(len(by_group[g]))] for g in kinds]
                else:
                    g = groups[rng.integers(len(groups))]
                    picked = [by_group[g][i] for i in rng.choice(len(by_group[g]), k, replace=False)]
                seeds = [rec.seed_of(r) for r in picked]
                for how in results:
                    mix = rec.mix(seeds, args.n, how=how)
                    results[how].append(score([group_of.get(m.row.path, "") for m in mix],
                                              [group_of[r.path] for r in picked], args.n))
            centre, each = np.array(results["centre"]), np.array(results["each"])
            for j, measure in enumerate(("of the seeds' kinds", "every seed's kind", "fairest share")):
                if draw != "distinct" and j:
                    continue   # one kind: only the share of it means anything
                cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in
                         (bootstrap_interval(x[:, j]) for x in (centre, each, each - centre))]
                lines.append([f"{k} seeds, {draw}", measure, *cells])
        print(table(["seeds", "measure", "centre", "each in turn", "each - centre (paired)"], lines))


if __name__ == "__main__":
    run_main(main)
