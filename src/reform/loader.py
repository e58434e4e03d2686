"""Training batches as tensors on the model's device, read one thread ahead of the step.

A batch is planned before it is read (:class:`reform.dataset.BatchPlan`), so the same
plans give the same batches whenever and wherever they are read.  A thread reads the
planned windows from the memory-mapped store as it keeps them (float16 dB, time-major)
while the model trains on the previous batch; for a GPU it also pins them, they cross
to the card with non-blocking copies, half the bytes of float32, and the card
normalises them.  Measured on an H200 (README): reading in worker processes, which this
replaced, lost 16 % of the loop to handing batches over between processes; the thread
trains as fast as a loop on one batch kept on the card.
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
    song: int = 0      # the first row's song (a clustering batch's one song), read on the host
    frames: float = 1.0   # its part of the planned batch's real frames (what its terms weigh in an epoch)

    @classmethod
    def of(cls, batch: Batch, scale: tuple[torch.Tensor, torch.Tensor],
           device: torch.device = torch.device("cpu")) -> Step:
        """The batch on ``device``, its windows normalised there with ``scale`` (the
        normaliser's mean and std on the device, from :func:`device_scale`): the stored
        float16 crosses to a GPU, half the bytes of float32, and the card does the arithmetic."""
        mean, std = scale

        def move(a: np.ndarray | torch.Tensor | None) -> torch.Tensor | None:
            """To ``device`` (nothing to do on the CPU); :func:`steps` has pinned a GPU's batches."""
            return None if a is None else torch.as_tensor(a).to(device, non_blocking=True)

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
                   batch.seed, Rows(batch.total or len(batch.x), batch.rows), batch.share, int(batch.songs[0]),
                   batch.frames)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def weight(self) -> float:
        """What this step's loss terms weigh in its epoch's mean: its windows, or where several
        processes share the batch, the batch's windows times this process's part of their real
        frames.  Each process's reconstruction terms are means over its own frames, and with
        songs shorter than a window the processes' frames differ: weighed by rows, the epoch's
        loss (which the plateau schedule reads) would change with the number of processes."""
        return self.rows.total * self.frames if self.rows is not None else float(len(self))


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


def _pinned(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).pin_memory()


def _read(windows: Windows, plans: list[BatchPlan], pin: bool) -> Iterator[Batch]:
    for plan in plans:
        batch = windows.load(plan)
        yield _each_array(batch, _pinned) if pin else batch


def steps(windows: Windows, plans: list[BatchPlan], device: torch.device) -> Iterator[Step]:
    """The planned batches, in plan order, as Steps on ``device``.

    One background thread reads them from the store (and pins them for a GPU) up to
    four batches ahead of the step; numpy, the page cache and the copies run without
    the GIL, so the thread costs the step next to nothing.
    """
    scale = device_scale(windows.normaliser, device)
    for batch in read_ahead(_read(windows, plans, device.type == "cuda"), 4, "reform-batches"):
        yield Step.of(batch, scale, device)
