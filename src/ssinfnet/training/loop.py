"""The one training loop: epochs of batches for any :class:`Objective`, with checkpoints and resume.

The loop owns time (epochs, steps, data order, progress bar, checkpoints, Ctrl-C) and the mechanics
of a step: batches moved to the device, networks wrapped in DDP across processes, the backward pass,
gradient clipping and the optimiser step. Objectives own what a step computes (a loss, as a
:class:`Step`); their networks run through a :class:`Runtime` (bf16 autocast, channels_last inputs,
device batches for validation). Determinism: every epoch starts by seeding python/numpy/torch from (run seed,
epoch, rank) and draws its batch order from the same seed, so an epoch's randomness does not depend
on what ran before it. A run killed at any point (SIGKILL included) and resumed from its last
end-of-epoch checkpoint therefore ends with the same numbers as an uninterrupted run on the same
machine. Ctrl-C is deferred to the end of the current step (an optimiser step is never cut in
two): the loop then saves a mid-epoch checkpoint (weights, optimisers, global and augmentation RNG
states, step, partial loss sums) and the resumed epoch continues with the next batch, so Ctrl-C +
``--resume`` also ends bit-identical to an uninterrupted run (with ``num_workers: 0``; worker
processes' augmentation streams cannot be saved, so with workers the cut epoch's augmentations
differ). A second Ctrl-C stops at once without saving: ``--resume`` then continues from the last
checkpoint. Same thread count required for bit-identity: ``run.json`` records it.
"""

from __future__ import annotations

import functools
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, get_worker_info
from tqdm import tqdm

from ssinfnet.models.speed import autocast_context, channels_last_input
from ssinfnet.training import distributed
from ssinfnet.training.runs import (
    RunDir, derived_seed, rng_state, seed_everything, set_rng_state, set_streams_state, streams_state,
)


class TrainingInterrupted(Exception):
    """Ctrl-C during training. ``saved``: the state after ``step`` steps of ``epoch`` (0-based) was
    checkpointed; otherwise (a second Ctrl-C) ``--resume`` continues from the previous checkpoint."""

    def __init__(self, run: RunDir, epoch: int, step: int, saved: bool = True):
        self.run, self.epoch, self.step, self.saved = run, epoch, step, saved
        where = f"epoch {epoch + 1}, step {step}" if step else f"the end of epoch {epoch}"
        done = "checkpoint saved" if saved else "stopped at once, not saved (the previous checkpoint is kept)"
        super().__init__(f"interrupted at {where}; {done}; continue with --resume {run.path}")


class DeferredInterrupt:
    """Context manager turning Ctrl-C (SIGINT) into a request that the loop honours at the next step
    boundary; a second Ctrl-C raises KeyboardInterrupt at once. Outside the main thread (where no
    signal handler can be set) it does nothing."""

    def __init__(self):
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> "DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nssinfnet: Ctrl-C: stopping after this step with a checkpoint (Ctrl-C again: stop now, unsaved)",
              file=sys.stderr, flush=True)

    def stop(self, ctx: distributed.Context) -> bool:
        """Whether to stop here; every rank gets the same answer (each may have seen the signal at
        another step), so that all of them stop at the same step."""
        if not ctx.distributed:
            return self.requested
        return distributed.mean_across_ranks({"stop": float(self.requested)}, ctx)["stop"] > 0


@dataclass(frozen=True)
class Runtime:
    """How an objective's networks run: on ``ctx.device``, under bf16 autocast when ``bf16``, with
    channels_last inputs when ``channels_last`` (the one place each of these is applied)."""

    ctx: distributed.Context
    bf16: bool = False
    channels_last: bool = False

    def forward(self, net: nn.Module, x: torch.Tensor, **kwargs) -> Any:
        """``net(x, **kwargs)`` under this runtime's autocast."""
        with autocast_context(self.ctx.device, self.bf16):
            return net(x, **kwargs)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A network input batch in the configured memory format."""
        return channels_last_input(x) if self.channels_last else x

    def batches(self, dataset: Dataset, batch_size: int) -> Iterator[dict[str, Any]]:
        """``dataset`` in order, batch by batch, on the device (validation and examples)."""
        for batch in DataLoader(dataset, batch_size=batch_size):
            yield to_device(batch, self.ctx.device)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (other values as they are)."""
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


@dataclass
class Step:
    """What one training step asks of the loop: minimise ``loss`` with the objective's optimiser
    ``optimizer`` (its name in ``optimizers``), the gradient norm of that optimiser's parameters
    clipped to ``grad_clip`` (None: no clipping); the loss is logged as ``name``."""

    loss: torch.Tensor
    optimizer: str = "optimizer"
    grad_clip: float | None = None
    name: str = "loss"


def optimise(optimizer: Any, loss: torch.Tensor, grad_clip: float | None) -> None:
    """Backward pass, gradient clipping (norm of all the optimiser's parameters), optimiser step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    optimizer.step()


def wrap_modules(objective: "Objective", ctx: distributed.Context) -> dict[str, nn.Module]:
    """The objective's modules as a training step runs them: DDP-wrapped across processes (gradients
    averaged over ranks), the modules themselves in one process."""
    return {name: distributed.wrap(module, ctx) for name, module in objective.modules.items()}


def training_step(objective: "Objective", nets: dict[str, nn.Module], batch: dict[str, Any], epoch: int,
                  progress: float) -> dict[str, float]:
    """One optimisation step of ``objective`` on a device batch; the logged loss."""
    step = objective.train_step(batch, nets, epoch, progress)
    optimise(objective.optimizers[step.optimizer], step.loss, step.grad_clip)
    return {step.name: float(step.loss.detach())}


class Objective(Protocol):
    """What the loop trains. ``modules``/``optimizers`` are checkpointed by name."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, Any]
    batch_size: int
    augment: Any
    """The training augmentation (with ``reseed(seed)``), a tuple of them, or None. The loop reseeds
    each every epoch and checkpoints its random state mid-epoch: with ``state()``/``set_state()``
    when it has them, else every numpy/torch/python generator reachable from its attributes."""

    def dataset(self, epoch: int) -> Dataset:
        """Training data of ``epoch`` (may differ by phase). Optional beside it: ``begin_epoch(epoch)``,
        called before an epoch trains (hard-example mining), and ``epoch_state()`` /
        ``set_epoch_state(state)``, what a checkpoint cut inside an epoch keeps of that."""

    def phase(self, epoch: int) -> str:
        """Short name of what ``epoch`` trains (shown in logs and metrics)."""

    def train_step(self, batch: dict[str, torch.Tensor], nets: dict[str, nn.Module], epoch: int,
                   progress: float) -> Step:
        """The loss of one step on ``batch`` (on the device), computed with ``nets`` (``modules`` as
        the loop trains them, see :func:`wrap_modules`); the loop then optimises it. ``progress`` in
        [0, 1) is the position inside the current epoch."""

    def end_epoch(self, epoch: int, run: RunDir) -> dict[str, float]:
        """Validation numbers of the finished epoch (main process only). ``score``: higher is better."""

    def save_best(self, run: RunDir) -> None:
        """Export the current model as the run's best (main process only)."""


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, ctx: distributed.Context) -> list[list[int]]:
    """This rank's batches of ``epoch``: one shuffled order shared by all ranks, dealt round-robin.

    The order is padded by repeating its start so every rank gets as many batches (DDP needs equal
    steps); a final batch of one sample is dropped because BatchNorm cannot train on it.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, epoch))).tolist()
    per_rank = math.ceil(n / ctx.world_size)
    order = (order * (ctx.world_size + 1))[: per_rank * ctx.world_size]
    mine = order[ctx.rank :: ctx.world_size]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def augmentations(objective: Objective) -> list[Any]:
    """The objective's augmentation streams (``augment``: None, one, or a tuple/list of them)."""
    augment = getattr(objective, "augment", None)
    if augment is None:
        return []
    return [a for a in augment if a is not None] if isinstance(augment, (list, tuple)) else [augment]


def reseed_augmentations(streams: list[Any], seed: int, epoch: int, rank: int) -> None:
    """Restart every augmentation stream per epoch, like the global generators (the first one keeps
    the seed it had when there was only one)."""
    for index, augment in enumerate(streams):
        parts = (seed, epoch, rank, 2) if index == 0 else (seed, epoch, rank, 2, index)
        augment.reseed(derived_seed(*parts) % 2**31)


def augmentation_state(streams: list[Any]) -> list[Any]:
    return [a.state() if hasattr(a, "state") else streams_state(a) for a in streams]


def set_augmentation_state(streams: list[Any], states: list[Any]) -> None:
    if len(states) != len(streams):
        raise ValueError(f"checkpoint holds {len(states)} augmentation states, the run has {len(streams)}")
    for augment, state in zip(streams, states):
        augment.set_state(state) if hasattr(augment, "set_state") else set_streams_state(augment, state)


def checkpoint_state(
    objective: Objective, epoch: int, step: int, history: list, best: float | None, partial: dict | None = None
) -> dict[str, Any]:
    """Everything a resumed run needs; ``partial`` holds the loss sums of an epoch cut at ``step``."""
    return {
        "epoch": epoch,
        "step": step,
        "partial": partial or {},
        "best": best,
        "history": history,
        "rng": rng_state(),
        "augment": augmentation_state(augmentations(objective)),
        "modules": {name: distributed.unwrap(m).state_dict() for name, m in objective.modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in objective.optimizers.items()},
        **({"objective": objective.epoch_state()} if hasattr(objective, "epoch_state") else {}),
    }


def restore_state(objective: Objective, state: dict[str, Any]) -> None:
    for name, module in objective.modules.items():
        distributed.unwrap(module).load_state_dict(state["modules"][name])
    for name, optimizer in objective.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    if "objective" in state and hasattr(objective, "set_epoch_state"):
        objective.set_epoch_state(state["objective"])


def fit(
    objective: Objective,
    run: RunDir,
    ctx: distributed.Context,
    epochs: int,
    seed: int,
    resume: bool = False,
    num_workers: int = 0,
    progress: bool = True,
    stop_at: float | None = None,
) -> list[dict[str, Any]]:
    """Train ``objective`` for ``epochs`` epochs in all; returns the per-epoch metric rows.

    ``stop_at``: end early after the first epoch whose validation score reaches it (that epoch is then
    the best so far, so the exported model is the first one good enough: time-to-quality runs).
    """
    start_epoch, start_step, history, best = 0, 0, [], None
    state = run.load("last") if resume else None
    if state is not None:
        restore_state(objective, state)
        start_epoch, start_step, history, best = state["epoch"], state["step"], state["history"], state["best"]
    sizes = {epoch: len(epoch_batches(len(objective.dataset(epoch)), objective.batch_size, seed, epoch, ctx))
             for epoch in range(start_epoch, epochs)}
    bar = tqdm(
        total=sum(sizes.values()) - start_step, disable=not (progress and ctx.is_main),
        file=sys.stderr, unit="step", dynamic_ncols=True,
    )
    streams = augmentations(objective)
    nets = wrap_modules(objective, ctx)
    with DeferredInterrupt() as interrupt:
        try:
            for epoch in range(start_epoch, epochs):
                if reached(best, stop_at, ctx):
                    break  # also on resume: a run that already reached its target stays finished
                # Augmentation keeps its own random streams: restart them per epoch like the global ones.
                reseed_augmentations(streams, seed, epoch, ctx.rank)
                if state is not None and epoch == start_epoch and start_step > 0:
                    # Continue an epoch cut by Ctrl-C exactly where it stopped.
                    set_rng_state(state["rng"])
                    if "augment" in state:  # (checkpoints written before it was saved lack it)
                        set_augmentation_state(streams, state["augment"])
                else:
                    seed_everything(derived_seed(seed, epoch, ctx.rank))
                history, best = train_and_score(
                    objective, nets, run, ctx, epoch, start_step, state, seed, num_workers, bar, history, best,
                    interrupt,
                )
                start_step = 0
                if interrupt.stop(ctx) and epoch + 1 < epochs:
                    raise TrainingInterrupted(run, epoch + 1, 0)
        finally:
            bar.close()
    return history


def train_and_score(
    objective, nets, run, ctx, epoch, start_step, state, seed, num_workers, bar, history, best, interrupt
) -> tuple[list[dict[str, Any]], float | None]:
    """One epoch: train, validate, checkpoint ("best" when it is the best so far, and "last")."""
    started = time.perf_counter()
    partial = state["partial"] if state is not None and epoch == state["epoch"] else {}
    train_metrics = run_epoch(
        objective, nets, run, ctx, epoch, start_step, partial, seed, num_workers, bar, history, best, interrupt
    )
    for module in objective.modules.values():
        distributed.sync_buffers(module, ctx)
    row = {"epoch": epoch + 1, "phase": objective.phase(epoch), **train_metrics}
    if ctx.is_main:
        row.update(objective.end_epoch(epoch, run))
        row["seconds"] = round(time.perf_counter() - started, 3)
        score = row.get("score")
        if score is not None and (best is None or score > best):
            best = float(score)
            objective.save_best(run)
            run.save("best", checkpoint_state(objective, epoch + 1, 0, history + [row], best))
    history = history + [row]
    run.save("last", checkpoint_state(objective, epoch + 1, 0, history, best))
    run.write_metrics(history)
    distributed.barrier(ctx)
    return history, best


def reached(best: float | None, stop_at: float | None, ctx: distributed.Context) -> bool:
    """Whether the best validation score (known on the main process only) has reached ``stop_at``;
    every rank gets the same answer so that all of them stop at the same epoch."""
    if stop_at is None:
        return False
    hit = float(ctx.is_main and best is not None and best >= stop_at)
    return distributed.mean_across_ranks({"hit": hit}, ctx)["hit"] > 0


def run_epoch(
    objective, nets, run, ctx, epoch, start_step, partial, seed, num_workers, bar, history, best, interrupt=None
) -> dict[str, float]:
    """Train one epoch from ``start_step`` (``partial``: loss sums of the steps before it).

    A Ctrl-C (``interrupt``) is honoured after the step it arrived in: the checkpoint then holds the
    state after ``step + 1`` whole steps. A KeyboardInterrupt raised inside a step (a second Ctrl-C)
    saves nothing: that step may have half-updated the weights.
    """
    if hasattr(objective, "begin_epoch"):
        objective.begin_epoch(epoch)
    dataset = objective.dataset(epoch)
    batches = epoch_batches(len(dataset), objective.batch_size, seed, epoch, ctx)
    loader = DataLoader(
        dataset, batch_sampler=batches[start_step:], num_workers=num_workers,
        worker_init_fn=functools.partial(init_worker, augmentations(objective)),
        generator=torch.Generator().manual_seed(derived_seed(seed, epoch, ctx.rank, 1)),
    )
    for module in objective.modules.values():
        module.train()
    totals: dict[str, float] = dict(partial)
    step = start_step
    try:
        for step, batch in enumerate(loader, start=start_step):
            values = training_step(objective, nets, to_device(batch, ctx.device), epoch, step / len(batches))
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, phase=objective.phase(epoch), **{k: f"{v:.4f}" for k, v in values.items()})
            if interrupt is not None and interrupt.stop(ctx):
                run.save("last", checkpoint_state(objective, epoch, step + 1, history, best, totals))
                raise TrainingInterrupted(run, epoch, step + 1)
    except KeyboardInterrupt:
        raise TrainingInterrupted(run, epoch, step, saved=False) from None
    count = max(1, len(batches))
    means = {f"train_{k}": v / count for k, v in totals.items()}
    return distributed.mean_across_ranks(means, ctx)


def init_worker(streams: list[Any], worker_id: int) -> None:
    """DataLoader worker hook: Ctrl-C is the main process's to handle (it stops at a step boundary),
    and each worker gets its own augmentation streams, derived from the loader's seed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for index, augment in enumerate(streams):
        augment.reseed(int((get_worker_info().seed + index) % 2**31))
