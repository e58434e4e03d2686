"""Augmentations and hidden stripes of training windows."""

import pytest
import torch

from reform.augment import Rows, augment, eq_curves, hide_stripes, mix_background, shift_bands, stretch_time
from reform.config import AugmentConfig


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("settings, said", [
    ({"pitch_bins": 500}, "--pitch-bins at most 32"),                       # every band shifted out
    ({"stripes": 1000, "stripe_frames": 64}, "--stripes x --stripe-frames at most 320"),   # blank windows
    ({"stripes": 3, "stripe_bins": 32}, "--stripes x --stripe-bins at most 64"),
    ({"gain_db": 1000.0}, "--gain-db and --eq-db at most 40"),
    ({"stretch": 3.0}, "--stretch at most 1"),
])
def test_changes_that_leave_little_of_a_window_are_refused(settings, said):
    from reform.errors import ConfigError

    with pytest.raises(ConfigError, match=said):
        AugmentConfig(**settings).check(128, 640)
    AugmentConfig(gain_db=3.0, eq_db=3.0, pitch_bins=1, stripe_frames=128, stripe_bins=32, stripes=2).check(128, 640)


def test_no_settings_change_nothing():
    x = torch.randn(3, 1, 8, 10)
    valid = torch.ones(3, 1, 1, 10)
    cfg = AugmentConfig()
    assert augment(x, valid, torch.ones(8), cfg, _gen()) is x
    assert hide_stripes(x, cfg, _gen()) is x


def test_gain_is_one_offset_per_window_in_normalised_units_and_spares_padding():
    x = torch.zeros(4, 1, 8, 10)
    valid = torch.ones(4, 1, 1, 10)
    valid[:, :, :, 7:] = 0.0                                   # the last 3 frames are padding
    std = torch.full((8,), 2.0)
    out = augment(x, valid, std, AugmentConfig(gain_db=6.0), _gen())
    per_window = out[:, 0, :, :7]
    offsets = per_window[:, 0, 0]
    assert torch.allclose(per_window, offsets[:, None, None].expand_as(per_window))
    assert (offsets.abs() <= 3.0).all() and offsets.abs().max() > 0   # 6 dB / std 2
    assert (out[:, :, :, 7:] == 0).all()


def test_eq_curves_are_smooth_and_bounded():
    curves = eq_curves(16, 128, AugmentConfig(eq_db=6.0), _gen())
    assert curves.shape == (16, 128) and curves.abs().max() <= 6.0
    steps = curves.diff(dim=1).abs().max()
    assert steps <= 2 * 6.0 / (128 / 5) + 1e-5              # straight lines between 6 points


def test_shift_bands_moves_rows_and_repeats_the_edge():
    x = torch.arange(4.0).view(1, 1, 4, 1).repeat(2, 1, 1, 3)  # band b holds the value b
    out = shift_bands(x, torch.tensor([1, -2]))
    assert out[0, 0, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert out[1, 0, :, 0].tolist() == [2.0, 3.0, 3.0, 3.0]


def test_hidden_stripes_are_zero_bounded_and_reproducible():
    x = torch.ones(8, 1, 32, 100)
    cfg = AugmentConfig(stripe_frames=10, stripe_bins=4, stripes=2)
    out = hide_stripes(x, cfg, _gen(3))
    assert torch.equal(out, hide_stripes(x, cfg, _gen(3)))
    hidden_frames = (out == 0).all(dim=2)[:, 0]              # frames hidden across every band
    assert hidden_frames.sum(1).max() <= 20                   # at most 2 stripes of 10 frames
    hidden_bands = (out == 0).all(dim=3)[:, 0]
    assert hidden_bands.sum(1).max() <= 8
    assert (out == 0).any() and (out == 1).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_augment_is_reproducible_from_the_generator(seed):
    x = torch.randn(2, 1, 16, 20)
    valid = torch.ones(2, 1, 1, 20)
    cfg = AugmentConfig(gain_db=3, eq_db=3, pitch_bins=1)
    a = augment(x, valid, torch.ones(16), cfg, _gen(seed))
    b = augment(x, valid, torch.ones(16), cfg, _gen(seed))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_stretch_time_reads_around_the_middle_frame_and_repeats_the_edges():
    x = torch.arange(9.0).view(1, 1, 1, 9).repeat(3, 1, 2, 1)  # frame t holds the value t
    out = stretch_time(x, torch.tensor([1.0, 2.0, 0.5]))
    assert torch.equal(out[0], x[0])                            # tempo unchanged
    assert out[1, 0, 0].tolist() == [0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 8.0, 8.0, 8.0]   # twice as fast
    assert out[2, 0, 0].tolist() == [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]   # half as fast
    assert torch.equal(out[:, :, 0], out[:, :, 1])             # every band moves alike


def test_stretch_keeps_tempo_changes_within_range_and_spares_padding():
    frames = 101
    x = torch.arange(float(frames)).view(1, 1, 1, frames).repeat(64, 1, 1, 1)
    valid = torch.ones(64, 1, 1, frames)
    valid[:, :, :, 95:] = 0.0
    out = augment(x * valid, valid, torch.ones(1), AugmentConfig(stretch=0.25), _gen())
    factors = out[:, 0, 0, 51] - out[:, 0, 0, 50]              # one frame later reads factor frames on
    assert (factors >= 1 / 1.25 - 1e-4).all() and (factors <= 1.25 + 1e-4).all()
    assert (factors > 1.05).any() and (factors < 0.95).any()   # faster and slower both drawn
    assert (out[:, :, :, 95:] == 0).all()


def _mix(x, valid, background, background_valid, mix=0.5, seed=0, rows=None, mean=None, std=None):
    bands = x.shape[2]
    mean = torch.zeros(bands) if mean is None else mean
    std = torch.ones(bands) if std is None else std
    return mix_background(x, valid, background, background_valid, mean, std, AugmentConfig(mix=mix),
                          _gen(seed), rows)


def test_a_song_mixed_with_itself_stays_as_it_was():
    x, valid = torch.randn(4, 1, 8, 10, generator=_gen(2)), torch.ones(4, 1, 1, 10)
    mean, std = torch.linspace(-40, -10, 8), torch.linspace(5, 15, 8)
    torch.testing.assert_close(_mix(x, valid, x, valid, mix=0.9, mean=mean, std=std), x, atol=1e-5, rtol=0)


def test_mixing_adds_powers_with_a_share_drawn_per_window_below_the_limit():
    x = torch.zeros(64, 1, 8, 10)                     # 0 dB (mean 0, std 1: units are dB)
    background = torch.full((64, 1, 8, 10), 10.0)     # 10 dB: ten times the power
    valid = torch.ones(64, 1, 1, 10)
    out = _mix(x, valid, background, valid, mix=0.4)
    share = (10 ** (out / 10) - 1) / 9                # power (1 - s) x 1 + s x 10 = 1 + 9 s
    per_window = share[:, 0, 0, 0]
    torch.testing.assert_close(share, per_window[:, None, None, None].expand_as(share), atol=1e-5, rtol=0)
    assert per_window.min() >= 0 and per_window.max() < 0.4 and per_window.std() > 0.05


def test_padding_of_either_window_is_left_as_it_was():
    x, background = torch.zeros(2, 1, 4, 6), torch.full((2, 1, 4, 6), 20.0)
    valid, background_valid = torch.ones(2, 1, 1, 6), torch.ones(2, 1, 1, 6)
    valid[:, :, :, 5:] = 0.0
    background_valid[:, :, :, :2] = 0.0
    out = _mix(x, valid, background, background_valid, mix=0.9, seed=3)
    assert (out[..., :2] == 0).all() and (out[..., 5:] == 0).all() and (out[..., 2:5] > 0).all()


def test_a_process_mixing_some_rows_mixes_them_as_one_process_mixing_all():
    noise = _gen(1)
    x, background = torch.randn(6, 1, 8, 10, generator=noise), torch.randn(6, 1, 8, 10, generator=noise)
    valid = torch.ones(6, 1, 1, 10)
    whole = _mix(x, valid, background, valid, seed=5)
    rows = slice(1, None, 2)
    part = _mix(x[rows], valid[rows], background[rows], valid[rows], seed=5, rows=Rows(6, rows))
    torch.testing.assert_close(part, whole[rows], atol=1e-6, rtol=1e-6)   # same draws; the last bit may
    # differ, as vector code on tensors of other shapes rounds differently
