"""Where the model runs: the CPU, or a CUDA GPU when torch sees one.

``auto`` picks CUDA when it is available, else the CPU.  bfloat16 autocast is used
on the CPU and on GPUs that support it; elsewhere the model runs in float32.
Checkpoints are always written with CPU tensors and loaded onto the CPU first, so
a model trained on one device runs on the other.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


def cuda_possible() -> bool:
    """False when this machine has no NVIDIA driver, checked without initialising CUDA."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def on_gpu(name: str) -> bool:
    """Whether ``name`` means a GPU here; imports torch only where a GPU driver exists."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda")
    return name != "cpu" and (name == "cuda" or cuda_possible()) and resolve(name).type == "cuda"


def resolve(name: str = "auto") -> torch.device:
    """The torch device for ``auto``, ``cpu`` or ``cuda`` (refused when no GPU is visible)."""
    import torch

    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if cuda_possible() and torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("no CUDA GPU is visible to torch",
                          hint="use --device cpu, or install the CUDA build of torch (see the README)")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """One line naming the device, for the commands to print."""
    import torch

    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda ({props.name}, {props.total_memory / 2 ** 30:.0f} GiB)"
    return f"cpu ({torch.get_num_threads()} threads)"


def bf16_supported(device: torch.device) -> bool:
    import torch

    return device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast where the device supports it and it is asked for, else nothing."""
    import torch

    if precision == "bfloat16" and bf16_supported(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
