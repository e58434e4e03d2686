"""Training on several processes: which process this is, and what the processes share.

``torchrun --nproc-per-node N -m reform train`` starts N copies of ReFORM and gives each
its place in the environment (RANK, WORLD_SIZE, LOCAL_RANK).  :func:`session` turns that
into a :class:`Group` (gloo between CPU processes, NCCL between GPUs); without those
variables it is a group of one, whose every method does nothing, so a training run in
one process never touches ``torch.distributed``.

The processes split every optimizer step between them and add up to exactly the step
one process would take (docs/method.md, "Training on several processes"): they need to
share batch-norm statistics, the other processes' embeddings for the song contrast,
the memory bank's updates, and the epoch's loss.  The helpers below are those exchanges.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .device import resolve
from .errors import ConfigError, TrainError

def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} in the environment is not a whole number",
                          hint="start several processes with `torchrun --nproc-per-node N -m reform train`") from None


def launched() -> bool:
    """Whether this process is one of several started by torchrun (WORLD_SIZE above 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def main_process() -> bool:
    """Whether this process is rank 0 (or alone): the one that writes."""
    return _env_int("RANK", 0) == 0


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes, and their exchanges.

    rank : 0..world-1; rank 0 alone writes checkpoints, metrics and the model
    world : number of processes
    local_rank, local_world : the same on this machine (which GPU, how many CPU cores)
    device : where this process trains
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def _comm(self) -> torch.device:
        """Where collective tensors live: NCCL moves GPU tensors only, gloo CPU ones."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (any picklable value)."""
        if self.world == 1:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0, device=self._comm if self._comm.type == "cuda" else None)
        return box[0]

    def broadcast_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's values of ``t`` on every process (bit for bit the same afterwards)."""
        if self.world == 1:
            return t
        buf = t.detach().to(self._comm).contiguous()
        dist.broadcast(buf, src=0)
        return buf.to(t.device)

    def sum(self, values: list[float]) -> list[float]:
        """Each value added over the processes (float64, the same result everywhere)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self._comm)
        dist.all_reduce(t)
        return t.tolist()

    def gather_rows(self, x: torch.Tensor, total: int) -> torch.Tensor:
        """The rows every process holds of one batch of ``total`` rows, in the batch's order.

        Process r holds rows r, r + world, r + 2 world, ... (:meth:`BatchPlan.shard
        <reform.dataset.BatchPlan.shard>`); x : (n_r, ...) -> (total, ...).  This
        process's rows keep their gradient, the others' arrive without one: a loss of the
        whole batch then gives this process the exact gradient of its own rows, and the
        gradient average over processes is that loss's gradient divided by ``world``.
        """
        if self.world == 1:
            return x
        per = -(-total // self.world)                                       # rows of the fullest process
        pad = torch.zeros((per - len(x), *x.shape[1:]), dtype=x.dtype, device=x.device)
        mine = torch.cat([x, pad])                                          # (per, ...)
        parts = [torch.empty_like(mine, device=self._comm) for _ in range(self.world)]
        dist.all_gather(parts, mine.detach().to(self._comm))
        parts = [p.to(x.device) for p in parts]
        parts[self.rank] = mine
        return torch.stack(parts, 1).flatten(0, 1)[:total]                 # row i*world + r

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every process's ``x`` (the same shape on all), stacked in rank order: (world, ...)."""
        if self.world == 1:
            return x[None]
        parts = [torch.empty_like(x, device=self._comm) for _ in range(self.world)]
        dist.all_gather(parts, x.detach().to(self._comm).contiguous())
        return torch.stack([p.to(x.device) for p in parts])

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model as the training step calls it: itself alone, or inside DistributedDataParallel
        (which averages the gradients over the processes during backward)."""
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def sync_batchnorm(self, model: nn.Module) -> nn.Module:
        """The model with batch norm computed over the whole step, all processes together (in
        place).  torch's SyncBatchNorm on GPUs; on CPUs, where torch's refuses to run, the
        same statistics through :class:`CPUSyncBatchNorm`."""
        if self.world == 1:
            return model
        if self.device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return CPUSyncBatchNorm.convert(model)

    @contextlib.contextmanager
    def accumulating(self, model: nn.Module, last: bool) -> Iterator[None]:
        """Backward without averaging over the processes, except on a step's ``last`` part."""
        if last or not isinstance(model, nn.parallel.DistributedDataParallel):
            yield
        else:
            with model.no_sync():
                yield


class _Sum(torch.autograd.Function):
    """A tensor added over the processes; its gradient is added over them too (every process's
    loss depends on the sum)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the batch of every process (gloo, CPU).

    The same parameters and buffers as BatchNorm1d/2d (state dicts load either way).  In
    training the per-channel sums of x and x^2 are added over the processes (in float64,
    with gradient: the sum's backward adds the gradients back), then mean and biased
    variance normalise, and the unbiased variance feeds the running estimate, as in
    torch's batch norm.  In evaluation it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2 dimensions, got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        c, x32 = x.shape[1], x.float()
        count = torch.tensor([x.numel() / c], dtype=torch.float64, device=x.device)
        local = torch.cat([x32.sum(dims).double(), x32.square().sum(dims).double(), count])  # (2C + 1,)
        stats = _Sum.apply(local)                                          # added over the processes
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.square()).clamp(min=0)            # biased, as batch norm
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.float(), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / (n - 1).clamp(min=1)).float(), alpha=m)
        y = (x32 - mean.float().view(shape)) * torch.rsqrt(var + self.eps).float().view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Every batch norm inside ``module`` replaced by this one, holding the very same
        parameters and buffers (an optimizer made before keeps training them)."""
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, cls):
            synced = cls(module.num_features, module.eps, module.momentum, module.affine,
                         module.track_running_stats)
            for name, p in module.named_parameters(recurse=False):
                setattr(synced, name, p)
            for name, b in module.named_buffers(recurse=False):
                setattr(synced, name, b)
            synced.train(module.training)
            return synced
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[Group]:
    """The group of this run: the torchrun processes (joined here, left at the end), or one.

    Each process trains on its own GPU (LOCAL_RANK) with NCCL, or on the CPU with gloo.
    A process group that the caller already made is used as it is and left open.
    """
    if not launched():
        yield Group(device=resolve(device))
        return
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local, local_world = _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1)
    place = resolve(device)
    if place.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"process {rank} wants GPU {local}, this machine shows "
                              f"{torch.cuda.device_count()}",
                              hint="start at most one process per GPU (--nproc-per-node)")
        place = torch.device("cuda", local)
        torch.cuda.set_device(place)
    joined_here = not dist.is_initialized()
    if joined_here:
        try:
            dist.init_process_group("nccl" if place.type == "cuda" else "gloo")
        except (ValueError, RuntimeError) as exc:
            raise TrainError(f"process {rank} of {world} could not reach the others ({exc})",
                             hint="start the processes with `torchrun --nproc-per-node N -m reform train`, "
                                  "which sets MASTER_ADDR and MASTER_PORT") from exc
    ended = False
    try:
        yield Group(rank, world, local, local_world, place)
        ended = True
    finally:
        if joined_here:
            _leave(ended)


def _leave(ended: bool) -> None:
    """Close this process's connections to the others, in an order that cannot crash.

    A process that ended its work waits for the others first: none then leaves while a peer
    still writes its files or may still send.  DistributedDataParallel's reference cycles
    keep the process group alive past ``destroy_process_group``; collected only when the
    interpreter shuts down, gloo's threads then die with std::terminate (SIGABRT, seen about
    once in 15 two-process runs of tests/test_distributed.py).  Collecting them here lets the
    group's last reference go while Python still runs.
    """
    if ended:
        dist.barrier()
    gc.collect()
    dist.destroy_process_group()
