"""Training batches as tensors on the model's device, read in background workers when it helps.

On the CPU the model step is a hundred times slower than reading windows
(bench/train.py), so batches are read in the training process.  On a GPU the
step is fast enough that reading must overlap it: worker processes read planned
batches (:class:`reform.dataset.BatchPlan`) from the memory-mapped store while the
GPU trains.  A batch carries its windows as the store keeps them (float16 dB): workers hand
them over in shared memory, they cross to the card through pinned memory with non-blocking
copies, and the card normalises them, so the training process only moves half the bytes
that normalised float32 would take (bench/train.py compares the two).
A batch depends only on its plan, so the result is the same with any number of
workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

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
            return t.pin_memory().to(device, non_blocking=True) if gpu else t

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


def _as_is(batch: Batch) -> Batch:
    return batch


def shared_batch(batch: Batch) -> Batch:
    """The batch's arrays as tensors, which a worker hands over in shared memory (numpy
    arrays would be pickled and copied through a pipe)."""
    def tensor(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.from_numpy(a)

    return replace(batch, x=tensor(batch.x), mask=tensor(batch.mask), songs=tensor(batch.songs),
                   x2=tensor(batch.x2), mask2=tensor(batch.mask2),
                   backgrounds=tuple((tensor(x), tensor(m)) for x, m in batch.backgrounds))


class _Planned(torch.utils.data.Dataset):
    def __init__(self, windows: Windows, plans: list[BatchPlan]):
        self.windows, self.plans = windows, plans

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, i: int) -> Batch:
        return shared_batch(self.windows.load(self.plans[i]))


def default_workers(device: torch.device) -> int:
    """No workers on the CPU (reading is not the bottleneck there), a few on a GPU."""
    import os

    return 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)


def steps(windows: Windows, plans: list[BatchPlan], device: torch.device,
          workers: int = 0) -> Iterator[Step]:
    """The planned batches, in plan order, as Steps on ``device``."""
    scale = device_scale(windows.normaliser, device)
    if workers == 0:
        for plan in plans:
            yield Step.of(windows.load(plan), scale, device)
        return
    loader = torch.utils.data.DataLoader(_Planned(windows, plans), batch_size=None, shuffle=False,
                                         num_workers=workers, collate_fn=_as_is,
                                         prefetch_factor=4, persistent_workers=False)
    for batch in loader:
        yield Step.of(batch, scale, device)
