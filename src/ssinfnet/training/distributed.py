"""Data-parallel training under ``torchrun``: the same command on 1 or N processes.

``torchrun`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; without them everything runs in one process.
Backend: nccl when the process has a GPU, gloo on CPU. Only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ssinfnet.models.speed import resolve_device


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """Join the process group when started by torchrun (idempotent); pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context(0, 1, resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), chosen)


def wrap(model: nn.Module, ctx: Context) -> nn.Module:
    """DDP wrapper on several processes (gradients averaged across ranks), the model itself otherwise."""
    if not ctx.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def mean_across_ranks(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """Average logged numbers over ranks so rank 0's log describes the whole batch."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, tensor.tolist())}


def sync_buffers(model: nn.Module, ctx: Context) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP averages gradients, so parameters stay equal, but each rank updates its running statistics
    from its own batches; without this the ranks would end with different models.
    """
    if ctx.distributed:
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer, src=0)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown_current() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
