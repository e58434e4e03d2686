"""Changes to training windows that a listener would not care about, and hidden stripes.

Two kinds, both applied to whole batches of normalised log-mel windows in torch:

* **Augmentations** make two views of a song differ in what should not decide
  similarity: the overall gain, a smooth equalisation curve, a shift of a few
  mel bands (a small change of pitch), a change of tempo (the frames stretched
  or squeezed in time) and another song mixed in underneath.  Gain and
  equalisation are offsets in dB, which the per-band normalisation turns into
  ``offset / std`` per band.
* **Hidden stripes** (masked reconstruction): random time and frequency stripes of
  the input are set to 0, the training mean, and the decoders must still rebuild the
  whole window, so the encoder has to infer what it cannot see from its context.

Every draw comes from the ``torch.Generator`` the caller passes (:func:`generator`
makes one from a batch's seed), so a resumed training run makes exactly the same
changes as an uninterrupted one.  A process that trains on some rows of a batch
(several processes, :mod:`reform.distributed`) draws for the whole batch and keeps its
rows: every row gets the change it would get in one process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import AugmentConfig


@dataclass(frozen=True)
class Rows:
    """Which rows of a batch of ``total`` windows a process holds (``batch[rows]``)."""

    total: int
    rows: slice = field(default_factory=lambda: slice(None))


def generator(seed: tuple[int, ...]) -> torch.Generator:
    """The random source of one batch's changes, from the batch's seed (its plan's)."""
    return torch.Generator().manual_seed(int(np.random.default_rng([*seed, 0x5EED]).integers(2 ** 62)))


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (high - low) + low


def eq_curves(n: int, bands: int, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """``n`` random smooth curves over the mel bands, in dB: (n, bands).

    Values at ``eq_points`` evenly spaced bands are drawn uniformly and joined by
    straight lines, so neighbouring bands move together as with a real equaliser.
    """
    points = _uniform((n, 1, cfg.eq_points), -cfg.eq_db, cfg.eq_db, gen)
    return torch.nn.functional.interpolate(points, size=bands, mode="linear", align_corners=True)[:, 0]


def shift_bands(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move every window's bands up (positive shift) or down by whole bins, repeating the edge band.

    x : (B, 1, M, T); shifts : (B,) integers
    """
    bands = x.shape[2]
    source = (torch.arange(bands, device=x.device)[None, :] - shifts[:, None]).clamp(0, bands - 1)  # (B, M)
    return x.gather(2, source[:, None, :, None].expand_as(x))


def stretch_time(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Play every window faster (factor above 1) or slower around its middle frame.

    Output frame t reads the input at ``middle + (t - middle) * factor``, between frames by
    linear interpolation; reads past either end repeat the edge frame, as shift_bands
    repeats the edge band.  x : (B, 1, M, T); factors : (B,) positive
    """
    frames = x.shape[3]
    middle = (frames - 1) / 2
    pos = middle + (torch.arange(frames, device=x.device)[None, :] - middle) * factors[:, None]
    pos = pos.clamp(0, frames - 1)                                       # (B, T)
    low = pos.floor().long()
    high = (low + 1).clamp(max=frames - 1)
    weight = (pos - low).to(x.dtype)[:, None, None, :]

    def frames_at(index: torch.Tensor) -> torch.Tensor:
        return x.gather(3, index[:, None, None, :].expand_as(x))

    return frames_at(low) * (1 - weight) + frames_at(high) * weight


_NEPER_PER_DB = math.log(10.0) / 10.0


def mix_background(x: torch.Tensor, valid: torch.Tensor, background: torch.Tensor, background_valid: torch.Tensor,
                   mean: torch.Tensor, std: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator,
                   rows: Rows | None = None) -> torch.Tensor:
    """Each window with another song's window mixed in underneath, as BYOL-A's mixup does.

    The two are added as powers, the other song's share drawn per window uniformly in
    [0, cfg.mix): ``(1 - share) x + share x background`` in power, back in dB and normalised.
    Frames where either window is padding keep the window as it was.
    x, background : (B, 1, M, T) normalised log-mel; valid, background_valid : (B, 1, 1, T);
    mean, std : (M,) the normaliser's, in dB.
    """
    if cfg.mix <= 0:
        return x
    rows = rows or Rows(len(x))
    share = _uniform((rows.total,), 0.0, cfg.mix, gen)[rows.rows].to(x.device)[:, None, None, None]
    mean, std = mean[:, None], std[:, None]                                 # (M, 1) against (B, 1, M, T)
    own = (x.float() * std + mean) * _NEPER_PER_DB + torch.log1p(-share)
    other = (background.float() * std + mean) * _NEPER_PER_DB + torch.log(share)
    mixed = (torch.logaddexp(own, other) / _NEPER_PER_DB - mean) / std
    return torch.where((valid * background_valid) > 0, mixed.to(x.dtype), x)


def augment(x: torch.Tensor, valid: torch.Tensor, std: torch.Tensor, cfg: AugmentConfig,
            gen: torch.Generator, rows: Rows | None = None) -> torch.Tensor:
    """A changed copy of a batch of normalised windows.

    x : (B, 1, M, T) normalised log-mel; valid : (B, 1, 1, T), 1 on real frames and 0 on
    padding (which stays 0); std : (M,) the normaliser's standard deviation per band (dB);
    rows : the rows of a larger batch that x holds (default: x is the whole batch).
    """
    if not cfg.changes:
        return x
    rows = rows or Rows(len(x))
    n, bands = rows.total, x.shape[2]
    offset = torch.zeros(n, bands)
    if cfg.gain_db > 0:
        offset += _uniform((n, 1), -cfg.gain_db, cfg.gain_db, gen)
    if cfg.eq_db > 0:
        offset += eq_curves(n, bands, cfg, gen)
    offset = offset[rows.rows]                                         # (B, M)
    # random draws stay on the CPU generator (the same on every device); the changes apply on x's
    out = x + (offset.to(x.device) / std)[:, None, :, None] * valid   # dB offsets in normalised units
    if cfg.pitch_bins > 0:
        shifts = torch.randint(-cfg.pitch_bins, cfg.pitch_bins + 1, (n,), generator=gen)[rows.rows]
        out = shift_bands(out, shifts.to(x.device)) * valid
    if cfg.stretch > 0:
        widest = math.log1p(cfg.stretch)                  # log-uniform: as often slower as faster
        factors = torch.exp(_uniform((n,), -widest, widest, gen))[rows.rows]
        out = stretch_time(out, factors.to(x.device)) * valid
    return out


def _stripes(n: int, length: int, widest: int, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` random stripes of width 0..widest along an axis of ``length``: (n, length) bool."""
    width = torch.randint(0, widest + 1, (n, count), generator=gen)
    start = (torch.rand(n, count, generator=gen) * (length - width + 1)).long()
    pos = torch.arange(length)[None, None, :]
    return ((pos >= start[..., None]) & (pos < (start + width)[..., None])).any(1)


def hide_stripes(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator,
                 rows: Rows | None = None) -> torch.Tensor:
    """A copy of the batch with ``stripes`` random time and frequency stripes set to 0 (the mean).

    x : (B, 1, M, T).  Stripe widths are uniform in [0, stripe_frames] and [0, stripe_bins].
    rows : the rows of a larger batch that x holds (default: x is the whole batch).
    """
    if not cfg.hides:
        return x
    rows = rows or Rows(len(x))
    n, (_, _, bands, frames) = rows.total, x.shape
    # the stripes are drawn on the CPU generator and cross to x's device as (B, T) and (B, M)
    # masks; the full (B, 1, M, T) mask is only ever made there
    hidden = torch.zeros(len(x), 1, bands, frames, dtype=torch.bool, device=x.device)
    if cfg.stripe_frames > 0:
        hidden |= _stripes(n, frames, cfg.stripe_frames, cfg.stripes, gen)[rows.rows].to(x.device)[:, None, None, :]
    if cfg.stripe_bins > 0:
        hidden |= _stripes(n, bands, cfg.stripe_bins, cfg.stripes, gen)[rows.rows].to(x.device)[:, None, :, None]
    return x.masked_fill(hidden, 0.0)
