"""The song-contrast and bank losses on small hand-made embeddings with known answers."""

import math

import pytest
import torch

from reform.losses import bank_loss, contrastive_loss, debiased_contrastive_loss, vicreg_loss


def test_contrast_known_answer_for_two_songs():
    # two songs, two windows each; windows of a song point the same way, songs are orthogonal
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    songs = torch.tensor([0, 0, 1, 1])
    t = 0.5
    # each window: its partner at cosine 1, the two others at cosine 0
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * math.exp(0.0)))
    assert contrastive_loss(z, songs, t).item() == pytest.approx(expected, rel=1e-6)


def test_contrast_is_blind_to_scale_and_lower_when_songs_separate():
    songs = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    assert contrastive_loss(apart, songs, 0.1) < contrastive_loss(mixed, songs, 0.1)
    assert contrastive_loss(apart * 7, songs, 0.1).item() == pytest.approx(
        contrastive_loss(apart, songs, 0.1).item(), rel=1e-6)


def test_contrast_counts_every_same_song_window_and_skips_loners():
    # song 0 has three windows (two partners each); song 2 has one window and no partner
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    songs = torch.tensor([0, 0, 0, 1, 1, 2])
    t = 1.0
    e = math.exp
    # a window of song 0: partners at cos 1 (x2), song 1 at 0 (x2), song 2 at -1
    den0 = 2 * e(1) + 2 * e(0) + e(-1)
    loss0 = -math.log(e(1) / den0)
    # a window of song 1: partner at 1, song 0 at 0 (x3), song 2 at 0
    den1 = e(1) + 4 * e(0)
    loss1 = -math.log(e(1) / den1)
    expected = (3 * loss0 + 2 * loss1) / 5          # the lone window of song 2 is not a query
    assert contrastive_loss(z, songs, t).item() == pytest.approx(expected, rel=1e-6)


def test_contrast_without_partners_is_zero_and_differentiable():
    z = torch.randn(3, 4, requires_grad=True)
    loss = contrastive_loss(z, torch.tensor([0, 1, 2]), 0.1)
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None


def test_contrast_album_share_known_answer():
    # songs 0 and 1 share an album, song 2 is on another; two windows per song
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]])
    songs = torch.tensor([0, 0, 1, 1, 2, 2])
    albums = torch.tensor([7, 7, 7, 7, 3, 3])
    t, share, e = 1.0, 0.25, math.exp
    # a window of song 0: its partner at cos 1, song 1 (album mate) at 0 (x2), song 2 at -1 (x2)
    den0 = e(1) + 2 * e(0) + 2 * e(-1)
    loss0 = -(1 - share) * math.log(e(1) / den0) - share * math.log(e(0) / den0)
    # song 1 is song 0 turned by 90 degrees: partner 1, song 0 at 0 (x2), song 2 at 0 (x2)
    den1 = e(1) + 4 * e(0)
    loss1 = -(1 - share) * math.log(e(1) / den1) - share * math.log(e(0) / den1)
    # song 2 has no album mate in the batch: its own partner takes the whole target
    den2 = e(1) + 2 * e(-1) + 2 * e(0)
    loss2 = -math.log(e(1) / den2)
    expected = (2 * loss0 + 2 * loss1 + 2 * loss2) / 6
    assert contrastive_loss(z, songs, t, albums, share).item() == pytest.approx(expected, rel=1e-6)
    # no share, or every song on an album of its own, is the plain contrast
    plain = contrastive_loss(z, songs, t).item()
    assert contrastive_loss(z, songs, t, albums, 0.0).item() == pytest.approx(plain, rel=1e-6)
    assert contrastive_loss(z, songs, t, songs + 10, share).item() == pytest.approx(plain, rel=1e-6)


def test_contrast_album_share_pulls_album_mates_together():
    songs, albums = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 0, 0, 0, 1, 1])
    mates_close = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.2], [1.0, 0.2], [-1.0, 0.0], [-1.0, 0.0]])
    mates_apart = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]])
    # with the share, album mates close together is the lower loss; without, apart is
    assert contrastive_loss(mates_close, songs, 0.5, albums, 0.5) < contrastive_loss(mates_apart, songs, 0.5,
                                                                                         albums, 0.5)
    assert contrastive_loss(mates_close, songs, 0.5) > contrastive_loss(mates_apart, songs, 0.5)


def test_bank_loss_known_answer_and_soft_targets():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    z = torch.tensor([[2.0, 0.0], [3.0, 0.0]])          # both windows point at song 0
    t = 1.0
    log_p = torch.log_softmax(torch.tensor([1.0, 0.0, -1.0]) / t, dim=0)
    hard = torch.tensor([1.0, 0.0, 0.0])
    assert bank_loss(z, hard, bank, t).item() == pytest.approx(-log_p[0].item(), rel=1e-6)
    soft = torch.tensor([0.5, 0.5, 0.0])
    assert bank_loss(z, soft, bank, t).item() == pytest.approx(
        -(0.5 * log_p[0] + 0.5 * log_p[1]).item(), rel=1e-6)
    # giving part of the target to a neighbour lowers the pull towards the song itself
    assert bank_loss(z, soft, bank, t) > bank_loss(z, hard, bank, t)


def test_debiased_contrast_without_prior_is_the_plain_contrast():
    z = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    songs = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])                  # one partner each, as two views
    assert debiased_contrastive_loss(z, songs, 0.1, 0.0).item() == pytest.approx(
        contrastive_loss(z, songs, 0.1).item(), rel=1e-5)


def test_debiased_contrast_known_answer_forgives_a_close_other_song():
    # songs 0 and 1 sound alike (cosine 0.8 between them), song 2 does not (cosine 0)
    c = 0.8
    z = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [c, math.sqrt(1 - c * c), 0.0],
                      [c, math.sqrt(1 - c * c), 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    songs = torch.tensor([0, 0, 1, 1, 2, 2])
    t, prior = 0.5, 0.2
    e = math.exp

    def window(neighbour_cosines):          # its partner at cosine 1, four negatives
        negative_mean = sum(e(s / t) for s in neighbour_cosines) / 4
        estimate = max((negative_mean - prior * e(1 / t)) / (1 - prior), e(-1 / t))
        return -math.log(e(1 / t) / (e(1 / t) + 4 * estimate))

    expected = (4 * window([c, c, 0, 0]) + 2 * window([0, 0, 0, 0])) / 6
    debiased = debiased_contrastive_loss(z, songs, t, prior)
    assert debiased.item() == pytest.approx(expected, rel=1e-5)
    assert debiased < contrastive_loss(z, songs, t)                 # the look-alike song costs less


def test_debiased_contrast_without_negatives_is_zero_and_differentiable():
    z = torch.randn(2, 4, requires_grad=True)
    loss = debiased_contrastive_loss(z, torch.tensor([0, 0]), 0.1, 0.1)
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None


def test_vicreg_known_answer():
    # two dimensions over 4 rows: the first spread with std 2 (no hinge), the second constant
    # (std 0: hinge 1 - sqrt(1e-4) = 0.99); the views differ by 0.5 in the second dimension
    z = torch.tensor([[-3.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    z2 = z + torch.tensor([0.0, 0.5])
    std = math.sqrt(20 / 3)                                   # of -3, -1, 1, 3 (unbiased)
    variance = (max(0.0, 1 - std) + (1 - math.sqrt(1e-4))) / 2    # the same in both views
    invariance = 0.25 / 2                                     # 0.5 squared, in half the numbers
    expected = invariance + variance + 0.04 * 0.0             # constant second dimension: no covariance
    assert vicreg_loss(z, z2).item() == pytest.approx(expected, rel=1e-5)


def test_vicreg_punishes_correlated_dimensions_and_collapse():
    base = torch.tensor([[-3.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [3.0, -1.0]]) * 2
    correlated = torch.stack([base[:, 0], base[:, 0]], 1)     # both dimensions the same
    assert vicreg_loss(correlated, correlated) > vicreg_loss(base, base)
    collapsed = torch.zeros(4, 2)
    assert vicreg_loss(collapsed, collapsed).item() == pytest.approx(1 - math.sqrt(1e-4), rel=1e-5)
