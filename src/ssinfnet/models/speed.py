"""The device helper and the speed options of the one code path: bf16 autocast (CPU and GPU) and
channels_last memory format.

On CPUs with AVX-512-BF16/AMX, oneDNN runs bf16 convolutions in channels_last much faster than fp32;
see ``benchmarks/bench_models.py`` and ``results/benchmarks/models.json`` for measured numbers.
"""

from __future__ import annotations

import contextlib
import re

import torch
from torch import nn


#: Device names a config or a command line may give.
DEVICE_NAMES = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device ``name`` asks for: ``auto`` (or None) is CUDA when this machine has it, else the CPU;
    ``cpu``, ``mps``, ``cuda``, ``cuda:N`` are themselves (a ``torch.device`` is taken as it is).
    ``ValueError`` (its message says what is wrong) for another name or CUDA on a machine without it:
    the one device check of training, inference and ``segment``."""
    if isinstance(name, torch.device):
        return name
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not DEVICE_NAMES.fullmatch(name):
        raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("no CUDA device on this machine (use auto or cpu)")
    return torch.device(name)


def autocast_context(device: str | torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when asked (AMP on GPU, oneDNN bf16 on CPU), else a no-op.

    bf16 keeps fp32's exponent range, so no loss scaling is needed on either device.
    """
    device = torch.device(device)
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def to_channels_last(model: nn.Module) -> nn.Module:
    return model.to(memory_format=torch.channels_last)


def channels_last_input(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
