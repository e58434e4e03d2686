"""Plot training runs side by side: the losses and learning rate of each phase, per epoch.

A run started with `--phase cluster` from another run's pretrained model has no
pretraining rows of its own; its pretraining is the other run's.

    python bench/compare_runs.py HOME/models/note HOME/models/default --out docs/note-vs-default.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders holding metrics.jsonl")
    parser.add_argument("--labels", nargs="*", help="a label per run (default: folder names)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    labels = args.labels or [Path(r).name for r in args.runs]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for run, label in zip(args.runs, labels):
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        for col, phase in enumerate(("pretrain", "cluster")):
            pts = [h for h in rows if h["phase"] == phase]
            if not pts:
                continue
            epochs = [h["epoch"] for h in pts]
            line, = axes[0, col].plot(epochs, [h["total"] for h in pts], label=f"{label}: total")
            axes[0, col].plot(epochs, [h["main"] for h in pts], ls="--", color=line.get_color(),
                              label=f"{label}: main decoder")
            axes[1, col].step(epochs, [h["lr"] for h in pts], where="post", color=line.get_color(),
                              label=label)
    titles = ("pretraining loss", "clustering-phase loss", "pretraining learning rate",
              "clustering-phase learning rate")
    for ax, title in zip(axes.flat, titles):
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xlabel("epoch of the phase")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
