"""Training curves and architecture diagrams, drawn from the history and from the model itself."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import nn  # noqa: E402

from .files import replacing  # noqa: E402
from .model import ClusterAutoencoder, PretrainAutoencoder  # noqa: E402


def _save(fig, path: Path, tight: bool = True) -> None:
    try:
        with replacing(path) as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)


def _plottable(value) -> bool:
    """A value a log-scaled curve can show: a diverged epoch's NaN or infinity is left out
    (its epoch stays marked by a dotted line), never handed to matplotlib."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def write_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Losses per term, learning rate and embedding spread over the epochs of both phases
    (see :func:`curves_figure`), written crash-safely to ``path``."""
    fig = curves_figure(history, title)
    if fig is not None:
        _save(fig, path, tight=False)


def curves_figure(history: list[dict], title: str = ""):
    """The figure of :func:`write_curves` (None before the first epoch).

    Epochs are whole numbers on every x axis; the total loss is a wide pale band under the
    other terms, so a term that makes up nearly all of it (the main reconstruction, in the
    clustering phase) stays visible on top of it.
    """
    epochs = [h for h in history if h.get("epoch")]
    if not epochs:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    x_of = {id(h): i + 1 for i, h in enumerate(epochs)}
    boundary = next((x_of[id(h)] - 0.5 for h in epochs if h["phase"] == "cluster"), None)
    for ax, phase in ((axes[0, 0], "pretrain"), (axes[0, 1], "cluster")):
        rows = [h for h in epochs if h["phase"] == phase]
        terms = [k for k in (rows[0] if rows else {}) if k in ("total", "main", "cluster") or k.startswith("aux")]
        for term in terms:
            style = ({"lw": 6, "alpha": 0.3, "color": "grey", "zorder": 1} if term == "total" else
                     {"lw": 1.6, "marker": "o", "ms": 3, "zorder": 3} if term in ("main", "cluster") else
                     {"lw": 1.0, "ls": "--", "zorder": 2})
            points = [(x_of[id(h)], h[term]) for h in rows if _plottable(h.get(term))]
            ax.plot([x for x, _ in points], [y for _, y in points], label=term, **style)
        for h in rows:
            if h.get("event") in ("drop", "stop", "diverged"):
                ax.axvline(x_of[id(h)], color="grey", lw=0.8, ls=":")
        if any(_plottable(h.get(t)) for h in rows for t in terms):
            ax.set_yscale("log")
        ax.set_title(f"{phase} losses" + ("" if rows else " (not run)"))
        ax.set_xlabel("epoch")
        if terms:
            ax.legend(fontsize=8, ncol=2)
    xs = [x_of[id(h)] for h in epochs]
    axes[1, 0].step(xs, [h["lr"] for h in epochs], where="post", color="tab:purple")
    axes[1, 0].set_yscale("log")
    axes[1, 0].set_title("learning rate")
    ratio = [(x_of[id(h)], h["spread_ratio"]) for h in epochs if _plottable(h.get("spread_ratio"))]
    if ratio:
        axes[1, 1].plot(*zip(*ratio), color="tab:green", label="between / within songs")
        axes[1, 1].legend(fontsize=8)
    axes[1, 1].set_title("embedding spread: between / within songs")
    for ax in axes[1]:
        ax.set_xlabel("epoch (both phases)")
        if boundary:
            ax.axvline(boundary, color="black", lw=0.8)
            ax.text(boundary, ax.get_ylim()[1], " clustering", va="top", fontsize=8)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.92 if title else 0.95,
                        hspace=0.35, wspace=0.18)
    return fig


def _shapes(model: nn.Module, modules: list[nn.Module]) -> dict[int, tuple]:
    """Output shape of each module for one input window, by module id."""
    shapes: dict[int, tuple] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: shapes.__setitem__(id(mod), tuple(o.shape)))
             for m in modules]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, model.cfg.n_mels, model.cfg.window_frames))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return shapes


def _describe(layer: nn.Module) -> str:
    first = next(m for m in layer.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)))
    if isinstance(first, nn.Linear):
        return f"linear {first.in_features}->{first.out_features}"
    kind = "conv" if isinstance(first, nn.Conv2d) else "convT"
    return f"{kind} {first.kernel_size[0]}x{first.kernel_size[1]}/2 {first.in_channels}->{first.out_channels}"


def _fmt(shape: tuple) -> str:
    return "x".join(str(s) for s in shape[1:])


def draw_architecture(model: PretrainAutoencoder | ClusterAutoencoder, path: Path) -> None:
    """The encoder column, one column per decoder, and the cluster output, with tensor shapes."""
    enc = list(model.encoder.layers)
    decoders = list(model.decoders) if isinstance(model, PretrainAutoencoder) else [model.decoder]
    modules = enc + [layer for d in decoders for layer in d]
    shapes = _shapes(model, modules)
    k_total = len(enc)
    n_cols = 1 + len(decoders) + (1 if isinstance(model, ClusterAutoencoder) else 0)
    fig, ax = plt.subplots(figsize=(2.3 * n_cols + 1, 0.95 * (k_total + 2)))
    box_w, box_h = 1.9, 0.62

    def box(x: float, y: float, text: str, color: str) -> None:
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02", fc=color, ec="black", lw=0.6))
        ax.text(x, y, text, ha="center", va="center", fontsize=7)

    def arrow(a: tuple, b: tuple) -> None:
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=8, lw=0.6, color="dimgray"))

    row_y = lambda r: -r  # noqa: E731  row 0 (input / reconstructions) at the top
    box(0, row_y(0), f"input window\n1x{model.cfg.n_mels}x{model.cfg.window_frames}", "#e8e8e8")
    for r, layer in enumerate(enc, start=1):
        box(0, row_y(r), f"encoder {r}: {_describe(layer)}\n{_fmt(shapes[id(layer)])}",
            "#ffd9a8" if r == k_total else "#cfe3ff")
        arrow((0, row_y(r - 1) - box_h / 2), (0, row_y(r) + box_h / 2))
    for c, dec in enumerate(decoders, start=1):
        x = c * 2.3
        k = k_total if isinstance(model, ClusterAutoencoder) else c
        main = k == k_total
        label = "main decoder" if main else f"aux decoder {k}"
        ax.text(x, row_y(k - 1) - box_h / 2 - 0.06, label, ha="center", va="top", fontsize=8, weight="bold")
        prev = (0 + box_w / 2, row_y(k))
        for j, layer in enumerate(dec):
            r = k - 1 - j
            box(x, row_y(r), f"{_describe(layer)}\n{_fmt(shapes[id(layer)])}",
                "#c8f0c8" if main else "#eeeeee")
            arrow(prev, (x - box_w / 2, row_y(r)) if j == 0 else (x, row_y(r) - box_h / 2))
            prev = (x, row_y(r) + box_h / 2)
        ax.text(x, row_y(0) + 0.45, "reconstruction" if main else "aux reconstruction",
                ha="center", fontsize=7, style="italic")
    if isinstance(model, ClusterAutoencoder):
        x = len(decoders) * 2.3 + 2.3
        box(x, row_y(k_total), f"cluster output\nembedding {_fmt(shapes[id(enc[-1])])}\nMSE to batch mean",
            "#ffc2c2")
        arrow((box_w / 2, row_y(k_total) - 0.15), (x - box_w / 2, row_y(k_total)))
        ax.text(x, row_y(k_total) - 0.55, "batch norm frozen", ha="center", va="top", fontsize=7)
    name = "pretraining" if isinstance(model, PretrainAutoencoder) else "clustering"
    ax.set_title(f"ReFORM auto-encoder, {name} model (shapes per window: channels x mels x frames)",
                 fontsize=9)
    ax.set_xlim(-1.3, (n_cols - 1) * 2.3 + 1.3)
    ax.set_ylim(-k_total - 1.1, 0.9)
    ax.axis("off")
    _save(fig, path)
