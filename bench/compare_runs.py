"""Plot training runs side by side: total loss of both phases and the learning rate per epoch.

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
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for run, label in zip(args.runs, labels):
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        for ax, phase in zip(axes[:2], ("pretrain", "cluster")):
            pts = [(h["epoch"], h["total"], h["main"]) for h in rows if h["phase"] == phase]
            if pts:
                line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{label}: total")
                ax.plot([p[0] for p in pts], [p[2] for p in pts], ls="--", color=line.get_color(),
                        label=f"{label}: main decoder")
        axes[2].step(range(1, len(rows) + 1), [h["lr"] for h in rows], where="post", label=label)
    for ax, title in zip(axes, ("pretraining loss", "clustering-phase loss", "learning rate (both phases)")):
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
