"""Training curves: a diverged epoch's NaN or infinity never reaches matplotlib; whole epochs on
the x axes; the main loss visible on top of the total."""

import math

import matplotlib.pyplot as plt
import pytest

from reform.plots import curves_figure, write_curves


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_curves_of_a_diverged_run_are_drawn(tmp_path, bad):
    ok = {"lr": 1e-3, "total": 1.0, "main": 0.8, "aux1": 0.2, "spread_ratio": 1.5}
    for history in (
        [{"phase": "pretrain", "epoch": 1, **ok},
         {"phase": "pretrain", "epoch": 2, **ok, "total": bad, "main": bad, "spread_ratio": bad,
          "event": "diverged"}],
        [{"phase": "pretrain", "epoch": 1, **ok, "total": bad, "main": bad, "aux1": bad,
          "spread_ratio": bad, "event": "diverged"}],                 # nothing finite at all
        [{"phase": "pretrain", "epoch": 1, **ok},
         {"phase": "cluster", "epoch": 1, "lr": 1e-4, "total": bad, "main": bad, "cluster": bad,
          "event": "diverged"}],
    ):
        out = tmp_path / "curves.png"
        out.unlink(missing_ok=True)
        write_curves(history, out)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]   # no temporary file left


def _history():
    out = []
    for epoch in range(1, 4):
        out.append({"phase": "pretrain", "epoch": epoch, "lr": 1e-3, "total": 2.0 / epoch,
                    "main": 1.5 / epoch, "aux1": 0.5 / epoch, "spread_ratio": 2.0, "event": ""})
    for epoch in range(1, 3):  # clustering: the total is almost all main reconstruction
        out.append({"phase": "cluster", "epoch": epoch, "lr": 1e-4, "total": 0.5001, "main": 0.5,
                    "cluster": 1e-4, "spread_ratio": 2.5, "event": "stop" if epoch == 2 else ""})
    return out


def test_epochs_are_whole_and_main_is_drawn_over_total(tmp_path):
    fig = curves_figure(_history())
    try:
        for ax in fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ax.get_title()
        lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
        assert lines["main"].get_zorder() > lines["total"].get_zorder()
        assert lines["total"].get_linewidth() > 3 * lines["main"].get_linewidth()  # a band under it
    finally:
        plt.close(fig)
    assert curves_figure([]) is None
    write_curves(_history(), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
