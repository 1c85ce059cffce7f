"""Starting or resuming a run: process group, run folder, seeds, config, provenance."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssinfnet.errors import InputError
from ssinfnet.models.speed import to_channels_last
from ssinfnet.training import distributed
from ssinfnet.core.runs import finished_model
from ssinfnet.training.runs import RunDir, seed_everything

#: Inputs that name another run whose model this run reads: it must be a finished run.
RUN_INPUTS = ("init", "prior_from")


@dataclass
class Session:
    kind: str
    run: RunDir
    config: dict[str, Any]
    inputs: dict[str, Any]
    """What the run was started from (data paths, --init, --prior-from): resume needs nothing else."""
    ctx: distributed.Context
    resume: bool

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    def begin(self, data: dict[str, Any]) -> None:
        """Write config.json and run.json of a new run (``data``: fingerprints of what it read)."""
        if not self.resume:
            self.run.start(self.kind, self.config, {"inputs": self.inputs, "data": data,
                                                    "world_size": self.ctx.world_size})
        distributed.barrier(self.ctx)

    def prepare(self, model: nn.Module, channels_last: bool | None = None) -> nn.Module:
        """Move to this process's device, in channels_last when configured (or when ``channels_last``)."""
        model = model.to(self.ctx.device)
        if channels_last is None:
            channels_last = bool(self.config.get("channels_last"))
        return to_channels_last(model) if channels_last else model


def open_session(kind: str, out: str | Path, config: dict[str, Any] | None, inputs: dict[str, Any] | None) -> Session:
    """A new run (``config`` and ``inputs`` given) or a resumed one (both None: read from ``out``)."""
    resume = config is None
    run = RunDir(out)
    if resume:
        config = run.config()
        info = run.info()
        if info["kind"] != kind:
            raise InputError(f"is a {info['kind']} run, cannot resume it as {kind}", out)
        inputs = info["inputs"]
        warn_on_other_thread_count(info, out)
    for key in RUN_INPUTS if not resume else ("prior_from",):  # a resumed run does not read --init again
        if inputs.get(key):
            finished_model(inputs[key])  # before anything is written
    ctx = distributed.setup(config["device"])
    run.writer = ctx.is_main
    if not resume:
        run.require_new()
    # Every rank checks before rank 0 writes config.json in begin(); else a slower rank finds it there.
    distributed.barrier(ctx)
    # Seed before building networks so that initial weights are reproducible from the config.
    seed_everything(int(config["seed"]))
    torch.set_float32_matmul_precision("high")
    return Session(kind, run, config, inputs, ctx, resume)


def warn_on_other_thread_count(info: dict[str, Any], out: str | Path) -> None:
    """CPU kernels split their sums by thread: a run resumed with another thread count is not
    bit-identical to an uninterrupted one (it still trains correctly)."""
    recorded, now = info.get("torch_threads"), torch.get_num_threads()
    if recorded is not None and recorded != now and os.environ.get("RANK", "0") == "0":
        print(f"ssinfnet: warning: {out}: trained with {recorded} torch threads, resumed with {now}: results "
              f"will differ slightly from an uninterrupted run (set OMP_NUM_THREADS={recorded} to match)",
              file=sys.stderr)
