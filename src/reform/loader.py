"""Training batches as tensors on the model's device, read in background workers when it helps.

On the CPU the model step is a hundred times slower than reading windows
(bench/train.py), so batches are read in the training process.  On a GPU the
step is fast enough that reading must overlap it: worker processes read planned
batches (:class:`reform.dataset.BatchPlan`) from the memory-mapped store while the
GPU trains.  A batch carries its windows as the store keeps them (float16 dB): workers hand
them over in shared memory, the DataLoader's own thread pins them, they cross to the card
with non-blocking copies and the card normalises them, so the training process only moves
half the bytes that normalised float32 would take (bench/train.py compares the two).
A batch depends only on its plan, so the result is the same with any number of
workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from .ahead import read_ahead
from .augment import Rows
from .dataset import Batch, BatchPlan, Normaliser, Windows


@dataclass
class Step:
    """A batch as tensors on the device: windows channels-last, masks, song indices, an
    optional second view of the same songs and, per view, windows of other songs to mix in;
    then the batch's seed and, when several processes share it, which rows of it this one
    holds and its part of the step's loss."""

    x: torch.Tensor
    mask: torch.Tensor
    songs: torch.Tensor
    x2: torch.Tensor | None = None
    mask2: torch.Tensor | None = None
    backgrounds: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()
    seed: tuple[int, ...] = ()
    rows: Rows | None = None
    share: float = 1.0

    @classmethod
    def of(cls, batch: Batch, scale: tuple[torch.Tensor, torch.Tensor],
           device: torch.device = torch.device("cpu")) -> Step:
        """The batch on ``device``, its windows normalised there with ``scale`` (the
        normaliser's mean and std on the device, from :func:`device_scale`): the stored
        float16 crosses to a GPU, half the bytes of float32, and the card does the arithmetic."""
        gpu = device.type == "cuda"
        mean, std = scale

        def move(a: np.ndarray | torch.Tensor | None) -> torch.Tensor | None:
            if a is None:
                return None
            t = torch.as_tensor(a)
            if not gpu:
                return t
            return (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)

        def view(x: np.ndarray | torch.Tensor | None,
                 mask: np.ndarray | torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            """Windows (B, T, M) float16 as stored -> (B, 1, M, T) float32 normalised, channels-last,
            zero on padding; and their masks."""
            if x is None:
                return None, None
            mask = move(mask)
            x = move(x).float().sub_(mean).div_(std).masked_fill_(mask.view(len(mask), -1, 1) == 0, 0.0)
            return x.transpose(1, 2).unsqueeze(1).contiguous(memory_format=torch.channels_last), mask

        (x, mask), (x2, mask2) = view(batch.x, batch.mask), view(batch.x2, batch.mask2)
        return cls(x, mask, move(batch.songs), x2, mask2, tuple(view(*b) for b in batch.backgrounds),
                   batch.seed, Rows(batch.total or len(batch.x), batch.rows), batch.share)

    def __len__(self) -> int:
        return len(self.x)


def device_scale(normaliser: Normaliser, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normaliser's mean and std as float32 tensors on ``device``, made once per loop: a
    copy from pageable memory for every batch would make the CPU wait for the card."""
    return tuple(torch.as_tensor(a, dtype=torch.float32, device=device) for a in (normaliser.mean, normaliser.std))


def _each_array(batch: Batch, fn: Callable) -> Batch:
    """The batch with ``fn`` applied to each of its arrays."""
    def apply(a):
        return None if a is None else fn(a)

    return replace(batch, x=apply(batch.x), mask=apply(batch.mask), songs=apply(batch.songs),
                   x2=apply(batch.x2), mask2=apply(batch.mask2),
                   backgrounds=tuple((apply(x), apply(m)) for x, m in batch.backgrounds))


def shared_batch(batch: Batch) -> Batch:
    """The batch's arrays as tensors, which a worker hands over in shared memory (numpy
    arrays would be pickled and copied through a pipe)."""
    return _each_array(batch, torch.from_numpy)


@dataclass
class _Handed:
    """A worker's batch as the DataLoader passes it on.  For a GPU the DataLoader's own
    thread calls :meth:`pin_memory`, so the batch arrives pinned and the training process
    only starts its copies to the card."""

    batch: Batch

    def pin_memory(self) -> _Handed:
        return _Handed(_each_array(self.batch, torch.Tensor.pin_memory))


def _as_is(handed: _Handed) -> _Handed:
    return handed


class _Planned(torch.utils.data.Dataset):
    def __init__(self, windows: Windows, plans: list[BatchPlan]):
        self.windows, self.plans = windows, plans

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> _Handed:
        return _Handed(shared_batch(self.windows.load(self.plans[i])))


def default_workers(device: torch.device) -> int:
    """No workers on the CPU (reading is not the bottleneck there), a few on a GPU."""
    import os

    return 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)


def _read_pinned(windows: Windows, plans: list[BatchPlan], pin: bool) -> Iterator[Batch]:
    for plan in plans:
        batch = shared_batch(windows.load(plan))
        yield _each_array(batch, torch.Tensor.pin_memory) if pin else batch


def steps(windows: Windows, plans: list[BatchPlan], device: torch.device,
          workers: int = 0, thread: bool = False) -> Iterator[Step]:
    """The planned batches, in plan order, as Steps on ``device``."""
    scale = device_scale(windows.normaliser, device)
    if thread:
        for batch in read_ahead(_read_pinned(windows, plans, device.type == "cuda"), 4, "reform-batches"):
            yield Step.of(batch, scale, device)
        return
    if workers == 0:
        for plan in plans:
            yield Step.of(windows.load(plan), scale, device)
        return
    loader = torch.utils.data.DataLoader(_Planned(windows, plans), batch_size=None, shuffle=False,
                                         num_workers=workers, collate_fn=_as_is,
                                         pin_memory=device.type == "cuda",
                                         prefetch_factor=4, persistent_workers=False)
    for handed in loader:
        yield Step.of(handed.batch, scale, device)
