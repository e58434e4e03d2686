"""Training curves: a diverged epoch's NaN or infinity never reaches matplotlib."""

import math

import pytest

from reform.plots import write_curves


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
