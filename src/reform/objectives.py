"""What each training phase minimises: one step's forward passes and loss terms.

Pretraining (the note): every decoder rebuilds the window, the auxiliary ones
scaled.  Beyond the note, each selectable and measured in docs/method.md: the
input may be changed (gain, equalisation, pitch) and have stripes hidden while the
decoders rebuild the unhidden window, and a song-contrast term may pull two
windows of one song together and push other songs' windows away.

Clustering (the note): one song per batch, batch norm frozen, reconstruction plus
lambda times a clustering loss: the note's MSE to the batch mean, or the bank loss
against a memory bank of song vectors (:mod:`reform.bank`).

With several processes (:mod:`reform.distributed`) each returns the loss whose
gradient, averaged over the processes, is the gradient of the step's loss: its
batch's reconstruction weighs its ``share`` of the step, the song contrast is taken
over the embeddings of every process, and the bank takes every process's updates.
The terms it reports are those of its own batch.
"""

from __future__ import annotations

import numpy as np
import torch

from .augment import Rows, augment, generator, hide_stripes, mix_background
from .bank import MemoryBank
from .config import TrainConfig
from .dataset import Normaliser
from .device import autocast
from .distributed import Group
from .loader import Step, device_scale
from .losses import (aux_weights, bank_loss, cluster_loss, contrastive_loss, debiased_contrastive_loss,
                     masked_mse, pretrain_loss, vicreg_loss)
from .model import ClusterAutoencoder, PretrainAutoencoder


class _Inputs:
    """Turns a step's clean windows into the model's input and the reconstruction target."""

    def __init__(self, cfg: TrainConfig, normaliser: Normaliser, device: torch.device):
        self.augment = cfg.augment
        self.mean, self.std = device_scale(normaliser, device)

    def __call__(self, x: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, rows: Rows | None = None,
                 background: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(input with stripes hidden, target without them), both (B, 1, M, T); ``background``:
        (windows, masks) of other songs to mix in first."""
        if background is not None:
            x = mix_background(x, mask, *background, self.mean, self.std, self.augment, gen, rows)
        target = augment(x, mask, self.std, self.augment, gen, rows)
        return hide_stripes(target, self.augment, gen, rows), target


class PretrainObjective:
    """Reconstruction at every decoder, plus ``contrast_weight`` x song contrast of two views."""

    def __init__(self, cfg: TrainConfig, n_aux: int, normaliser: Normaliser,
                 device: torch.device = torch.device("cpu"), group: Group | None = None,
                 albums: np.ndarray | None = None):
        self.cfg, self.device = cfg, device
        # per song, its album's id (dataset.album_ids), which the album share of the contrast reads
        self.albums = torch.from_numpy(albums).to(device) if albums is not None and cfg.album_share > 0 else None
        self.group = group or Group(device=device)
        self.weights = aux_weights(cfg.aux_weight, n_aux)
        self.inputs = _Inputs(cfg, normaliser, device)
        self.views = 2 if cfg.contrast_weight > 0 else 1
        self.backgrounds = cfg.mix > 0   # the plans must read other songs' windows to mix in

    def __call__(self, model: PretrainAutoencoder, step: Step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gen = generator(step.seed)
        background = step.backgrounds or (None, None)
        x_in, target = self.inputs(step.x, step.mask, gen, step.rows, background[0])
        x2_in = self.inputs(step.x2, step.mask2, gen, step.rows, background[1])[0] if self.views == 2 else None
        with autocast(self.device, self.cfg.precision):
            out = model(x_in, x2_in)
        total, terms = pretrain_loss(out, target, step.mask, self.weights)
        scale = self.group.world * step.share
        loss = total * scale if scale != 1 else total
        if self.views == 2:
            contrast = self._contrast(*out.views, step)
            total = total + self.cfg.contrast_weight * contrast
            loss = loss + (self.group.world * self.cfg.contrast_weight) * contrast
            terms["contrast"] = contrast.detach()
            terms["total"] = total.detach()
        return loss, terms

    def _contrast(self, z: torch.Tensor, z2: torch.Tensor, step: Step) -> torch.Tensor:
        """The two views' term over the whole batch, the windows of every process as in one
        process (the gradient reaches this process's rows): the song contrast, whose negatives
        are all those windows, or VICReg."""
        total = step.rows.total if step.rows else len(z)
        gather = self.group.gather_rows
        if self.cfg.contrast_loss == "vicreg":
            return vicreg_loss(gather(z, total), gather(z2, total))
        both, songs = torch.cat([gather(z, total), gather(z2, total)]), gather(step.songs, total).repeat(2)
        if self.cfg.contrast_prior > 0:
            return debiased_contrastive_loss(both, songs, self.cfg.temperature, self.cfg.contrast_prior)
        albums = self.albums[songs] if self.albums is not None else None
        return contrastive_loss(both, songs, self.cfg.temperature, albums, self.cfg.album_share)

    def after_step(self) -> None:
        """Nothing to refresh after a pretraining step."""


class ClusterObjective:
    """Reconstruction + ``cluster_weight`` x (the note's loss, or the bank loss)."""

    def __init__(self, cfg: TrainConfig, normaliser: Normaliser, bank: MemoryBank | None = None,
                 device: torch.device = torch.device("cpu"), group: Group | None = None):
        if cfg.cluster_loss == "bank" and bank is None:
            raise ValueError("the bank loss needs a memory bank")
        self.cfg, self.bank, self.device = cfg, bank, device
        self.group = group or Group(device=device)
        self.inputs = _Inputs(cfg, normaliser, device)
        self._pending: list[tuple[int, torch.Tensor]] = []   # (song, its batch's embeddings)

    def __call__(self, model: ClusterAutoencoder, step: Step) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x_in, target = self.inputs(step.x, step.mask, generator(step.seed))
        with autocast(self.device, self.cfg.precision):
            out = model(x_in)
        recon = masked_mse(out.reconstruction, target, step.mask)
        if self.bank is None:
            cluster = cluster_loss(out.embedding, unit=self.cfg.cluster_space == "unit")
        else:
            song = step.song                 # from the host: reading step.songs would wait for a GPU
            targets = self.bank.targets(song, self.cfg.bank_neighbours, self.cfg.bank_soft,
                                        self.cfg.bank_neighbourhood == "mutual")
            cluster = bank_loss(out.embedding, targets, self.bank.vectors, self.cfg.temperature)
            self._pending.append((song, out.embedding.detach()))
        total = recon + self.cfg.cluster_weight * cluster
        scale = self.group.world * step.share
        return total * scale if scale != 1 else total, \
            {"main": recon.detach(), "cluster": cluster.detach(), "total": total.detach()}

    def after_step(self) -> None:
        """Refresh the bank vectors of the step's songs, every process's in the step's order
        (after the optimizer step: the bank must not change while the step's graph needs it)."""
        if self.bank is None or not self._pending:
            return
        songs = [s for s, _ in self._pending]
        fresh = torch.stack([self.bank.fresh(e) for _, e in self._pending])      # (k, D)
        self._pending = []
        if self.group.world > 1:   # one process alone needs no exchange, and no wait for its GPU
            songs = self.group.gather(torch.tensor(songs, device=fresh.device)).flatten().tolist()
            fresh = self.group.gather(fresh).flatten(0, 1)
        for song, vector in zip(songs, fresh, strict=True):
            self.bank.move(song, vector, self.cfg.bank_momentum)


@torch.no_grad()
def fill_bank(model: torch.nn.Module, song_windows, precision: str,
              device: torch.device = torch.device("cpu")) -> MemoryBank:
    """A bank from the current model: the mean direction of a few windows of every song.

    song_windows : iterable of (song index, (n, 1, M, T) windows), in song order.
    """
    was_training = model.training
    model.eval()
    vectors = []
    for _, x in song_windows:
        x = torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            z = model.encoder(x)[-1]
        vectors.append(torch.nn.functional.normalize(z.float(), dim=1).mean(0))
    model.train(was_training)
    return MemoryBank(torch.stack(vectors))
