"""Reconstruction, auxiliary and clustering losses.

Windows of songs shorter than 640 frames are zero-padded; ``mask`` marks the
real frames, and padding never counts in a reconstruction loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .model import PretrainOutput


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the unmasked elements.

    pred, target : (B, 1, M, T); mask : (B, 1, 1, T), 1.0 on real frames and 0.0 on padding
    """
    err = (pred.float() - target).square() * mask                   # (B, 1, M, T)
    return err.sum() / (mask.sum() * target.shape[2]).clamp(min=1.0)


def aux_weights(weight: float | Sequence[float], n_aux: int) -> list[float]:
    """One weight per auxiliary decoder: a single number applies to all of them."""
    if isinstance(weight, (int, float)):
        return [float(weight)] * n_aux
    weights = [float(w) for w in weight]
    if len(weights) != n_aux:
        raise ValueError(f"{len(weights)} auxiliary weights given for {n_aux} auxiliary decoders")
    return weights


def pretrain_loss(out: PretrainOutput, x: torch.Tensor, mask: torch.Tensor,
                  weights: Sequence[float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MSE of the main decoder plus the weighted MSE of every auxiliary decoder.

    Returns the total (for backward) and every term detached, named ``main``,
    ``aux1``..``aux{K-1}`` and ``total``: 0-d tensors on the model's device, which the
    training loop reads once per epoch (reading one every step would make the CPU wait
    for a GPU to finish the step before it could prepare the next).
    """
    *aux, main = out.reconstructions
    main_loss = masked_mse(main, x, mask)
    total = main_loss
    terms = {"main": main_loss.detach()}
    for k, (recon, w) in enumerate(zip(aux, weights, strict=True), start=1):
        loss = masked_mse(recon, x, mask)
        terms[f"aux{k}"] = loss.detach()
        total = total + w * loss
    terms["total"] = total.detach()
    return total, terms


def cluster_loss(embedding: torch.Tensor, unit: bool = False) -> torch.Tensor:
    """MSE between every embedding of the batch and the batch mean: (B, D) -> scalar.

    Zero exactly when all windows of the (one-song) batch embed to the same point.
    With ``unit`` the embeddings are first scaled to unit length, which makes the
    loss blind to their scale: the raw loss can be lowered by shrinking every
    embedding instead of gathering a song's windows (measured: docs/method.md).
    """
    embedding = embedding.float()
    if unit:
        embedding = torch.nn.functional.normalize(embedding, dim=1)
    return (embedding - embedding.mean(dim=0, keepdim=True)).square().mean()


def _song_pairs(embedding: torch.Tensor, songs: torch.Tensor,
                temperature: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What both song contrasts start from: the cosine / ``temperature`` between every two
    windows of the batch, each window's pair with itself, and its same-song partners (all (B, B))."""
    z = torch.nn.functional.normalize(embedding.float(), dim=1)
    self_pair = torch.eye(len(z), dtype=torch.bool, device=z.device)
    partner = (songs[:, None] == songs[None, :]) & ~self_pair
    return z @ z.T / temperature, self_pair, partner


def contrastive_loss(embedding: torch.Tensor, songs: torch.Tensor, temperature: float,
                     albums: torch.Tensor | None = None, album_share: float = 0.0) -> torch.Tensor:
    """Song contrast over a batch of windows from many songs: (B, D), (B,) -> scalar.

    Every window is pulled towards the other windows of its song and pushed from the
    windows of every other song: for each window, the cross-entropy of picking a window
    of the same song among all others by cosine similarity / ``temperature``, averaged
    over its same-song partners (a batch may hold several windows of one song, e.g.
    both channels; all count as partners).  Windows without a partner are left out.

    With ``albums`` (B,) and ``album_share`` > 0, a window that has windows of other
    songs of its album in the batch gives them that share of its target (spread evenly)
    and its own song's partners the rest: the album tags of a library are a weak hint of
    what sounds alike, as editorial metadata is in Alonso-Jimenez et al. (2023).
    """
    sim, self_pair, partner = _song_pairs(embedding, songs, temperature)
    sim = sim.masked_fill(self_pair, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    has = partner.any(1)
    if not has.any():
        return embedding.sum() * 0.0
    if albums is None or album_share == 0:
        return (-(log_prob.masked_fill(~partner, 0.0)).sum(1)[has] / partner.sum(1)[has]).mean()
    own = partner / partner.sum(1, keepdim=True).clamp(min=1)
    mate = (albums[:, None] == albums[None, :]) & ~partner & ~self_pair
    target = torch.where(mate.any(1, keepdim=True),
                         (1 - album_share) * own + album_share * mate / mate.sum(1, keepdim=True).clamp(min=1), own)
    return (-(log_prob.masked_fill(target == 0, 0.0) * target).sum(1)[has]).mean()


def debiased_contrastive_loss(embedding: torch.Tensor, songs: torch.Tensor, temperature: float,
                              prior: float) -> torch.Tensor:
    """Song contrast that expects some of the other songs to be like the window's own: scalar.

    A random other song of the batch is sometimes a song of the same kind (a soundtrack
    mate), which the plain contrast pushes away like any other.  The debiased contrast of
    Chuang et al. (2020) takes ``prior`` as the chance that another song is of the same
    kind and removes that share of positives from the mean of the negatives' terms (never
    below the smallest value the term can take); each window then scores each partner
    against that estimate, times the number of negatives.  Windows without a partner or
    without another song are left out.  (B, D), (B,) -> scalar.
    """
    sim, self_pair, partner = _song_pairs(embedding, songs, temperature)
    sim = sim - 1.0 / temperature                                        # at most 0
    negative = ~partner & ~self_pair
    has = partner.any(1) & negative.any(1)
    if not has.any():
        return embedding.sum() * 0.0
    term = sim.exp()                                                     # in [exp(-2/t), 1]
    negatives = negative.sum(1).clamp(min=1)
    negative_mean = (term * negative).sum(1) / negatives
    partner_mean = (term * partner).sum(1) / partner.sum(1).clamp(min=1)
    estimate = ((negative_mean - prior * partner_mean) / (1 - prior)).clamp(min=math.exp(-2 / temperature))
    pair_loss = torch.log(term + (negatives * estimate)[:, None]) - sim  # -log(term / (term + N x estimate))
    per_window = (pair_loss * partner).sum(1)[has] / partner.sum(1)[has]
    return per_window.mean()


def vicreg_loss(z: torch.Tensor, z2: torch.Tensor, covariance_weight: float = 0.04) -> torch.Tensor:
    """Two views kept alike without pushing any other song away: (B, D), (B, D) -> scalar.

    VICReg (Bardes et al., 2022): the mean squared difference of each row's two views
    (invariance), a hinge that keeps every dimension's standard deviation over the batch
    at least 1 in each view (variance: the space cannot collapse), and the squared
    off-diagonal covariances per dimension (decorrelation), the last scaled by
    ``covariance_weight``.  The paper's weights 25 / 25 / 1 divided by 25, so that the
    sum sits beside the reconstruction loss at weight 1.  No song is a negative: songs
    that sound alike are free to stay close.
    """
    z, z2 = z.float(), z2.float()
    invariance = (z - z2).square().mean()
    variance = covariance = z.new_zeros(())
    for v in (z, z2):
        centred = v - v.mean(0)
        variance = variance + torch.relu(1 - torch.sqrt(centred.var(0) + 1e-4)).mean() / 2
        cov = centred.T @ centred / max(len(v) - 1, 1)
        covariance = covariance + (cov.square().sum() - cov.diagonal().square().sum()) / v.shape[1] / 2
    return invariance + variance + covariance_weight * covariance


def bank_loss(embedding: torch.Tensor, targets: torch.Tensor, bank: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Contrast of one song's windows against a bank of song vectors: scalar.

    embedding : (B, D) windows of one song; bank : (N, D) unit vectors, one per training
    song; targets : (N,) a distribution over the bank saying which songs each window
    should be closest to (its own song, and possibly its nearest songs as soft
    positives).  Cross-entropy between ``targets`` and the softmax of cosine / temperature.
    """
    z = torch.nn.functional.normalize(embedding.float(), dim=1)
    log_prob = torch.log_softmax(z @ bank.T / temperature, dim=1)           # (B, N)
    return -(log_prob * targets[None, :]).sum(1).mean()
