"""Ways to turn a song's window embeddings into one vector, compared with `reform evaluate`.

For one model and one library (with labels from a TSV such as realmusic.tsv) it
embeds every window once and scores, with the same protocols and songs as
`reform evaluate`: mean+std (the default), mean+std+max, mean+std+min+max, and
mean+std of unit-length windows.  docs/method.md (section 6.3) has the results.

    python bench/aggregation.py --home DATA/quality/home-test --labels-file DATA/realmusic.tsv \\
        --model DATA/quality/home-train/models/c1/model.pt
"""

from __future__ import annotations

import argparse

import numpy as np

from reform import Library
from reform import evaluate as ev
from reform.embed import Embedder, song_windows


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v)
    return (v / norm if norm > 0 else v).astype(np.float32)


AGGREGATIONS = {
    "mean+std (default)": lambda w: _unit(np.concatenate([w.mean(0), w.std(0)])),
    "mean+std+max": lambda w: _unit(np.concatenate([w.mean(0), w.std(0), w.max(0)])),
    "mean+std+min+max": lambda w: _unit(np.concatenate([w.mean(0), w.std(0), w.min(0), w.max(0)])),
    "mean+std of unit-length windows": lambda w: _unit(np.concatenate(
        [(u := w / np.linalg.norm(w, axis=1, keepdims=True)).mean(0), u.std(0)])),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="a scanned library home")
    parser.add_argument("--labels-file", required=True)
    parser.add_argument("--label-column", default="group")
    parser.add_argument("--model", required=True, help="model file (model.pt or pretrain.pt)")
    args = parser.parse_args()

    with Library(args.home, create=False) as lib:
        bundle = lib.load_model(args.model)
        embedder = Embedder(bundle)

        def method(aggregate):
            def vectors(rows):
                specs = [lib.home.spectrograms.open(r.hash) for r in rows]
                return ev.featurize(specs, lambda spec: aggregate(embedder.windows(
                    song_windows(spec, bundle.normaliser, embedder.window, embedder.hop))), standardised=False)
            return vectors

        report = lib.evaluate(label_file=args.labels_file, label_column=args.label_column, models=[args.model],
                              stages=False, baselines=False,
                              extra={name: method(agg) for name, agg in AGGREGATIONS.items()})
    print(f"model {args.model}, {report.songs} songs\n")
    print(report.markdown())


if __name__ == "__main__":
    main()
