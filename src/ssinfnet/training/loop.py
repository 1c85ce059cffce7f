"""The one training loop: epochs of batches for any :class:`Objective`, with checkpoints and resume.

The loop owns time (epochs, steps, data order, progress bar, checkpoints, Ctrl-C); objectives own
what a step computes. Determinism: every epoch starts by seeding python/numpy/torch from (run seed,
epoch, rank) and draws its batch order from the same seed, so an epoch's randomness does not depend
on what ran before it. A run killed at any point (SIGKILL included) and resumed from its last
end-of-epoch checkpoint therefore ends with the same numbers as an uninterrupted run on the same
machine. Ctrl-C saves a mid-epoch checkpoint (weights, optimisers, RNG states, step, partial loss
sums) and the resumed epoch skips the batches already done; its augmentation stream restarts from the
epoch's seed, so that one epoch sees different augmentations than an uninterrupted run would.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, get_worker_info
from tqdm import tqdm

from ssinfnet.training import distributed
from ssinfnet.training.runs import RunDir, derived_seed, rng_state, seed_everything, set_rng_state


class TrainingInterrupted(Exception):
    """Ctrl-C during training; the state was checkpointed so ``--resume`` continues from it."""

    def __init__(self, run: RunDir, epoch: int, step: int):
        self.run, self.epoch, self.step = run, epoch, step
        super().__init__(f"interrupted at epoch {epoch + 1}, step {step}; checkpoint saved, continue with --resume {run.path}")


class Objective(Protocol):
    """What the loop trains. ``modules``/``optimizers`` are checkpointed by name."""

    modules: dict[str, nn.Module]
    optimizers: dict[str, Any]
    batch_size: int
    augment: Any
    """The training augmentation (with ``reseed(seed)``) or None; the loop reseeds it every epoch."""

    def dataset(self, epoch: int) -> Dataset:
        """Training data of ``epoch`` (may differ by phase)."""

    def phase(self, epoch: int) -> str:
        """Short name of what ``epoch`` trains (shown in logs and metrics)."""

    def train_step(self, batch: dict[str, torch.Tensor], epoch: int, progress: float) -> dict[str, float]:
        """One optimisation step; ``progress`` in [0, 1) is the position inside the current epoch."""

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
        "modules": {name: distributed.unwrap(m).state_dict() for name, m in objective.modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in objective.optimizers.items()},
    }


def restore_state(objective: Objective, state: dict[str, Any]) -> None:
    for name, module in objective.modules.items():
        distributed.unwrap(module).load_state_dict(state["modules"][name])
    for name, optimizer in objective.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])


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
    try:
        for epoch in range(start_epoch, epochs):
            if reached(best, stop_at, ctx):
                break  # also on resume: a run that already reached its target stays finished
            if state is not None and epoch == start_epoch and start_step > 0:
                set_rng_state(state["rng"])  # continue an epoch cut by Ctrl-C exactly where it stopped
            else:
                seed_everything(derived_seed(seed, epoch, ctx.rank))
            if objective.augment is not None:
                # Augmentation keeps its own random stream: restart it per epoch like the global ones.
                objective.augment.reseed(derived_seed(seed, epoch, ctx.rank, 2) % 2**31)
            started = time.perf_counter()
            partial = state["partial"] if state is not None and epoch == start_epoch else {}
            train_metrics = run_epoch(
                objective, run, ctx, epoch, start_step, partial, seed, num_workers, bar, history, best
            )
            start_step = 0
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
            history.append(row)
            run.save("last", checkpoint_state(objective, epoch + 1, 0, history, best))
            run.write_metrics(history)
            distributed.barrier(ctx)
    finally:
        bar.close()
    return history


def reached(best: float | None, stop_at: float | None, ctx: distributed.Context) -> bool:
    """Whether the best validation score (known on the main process only) has reached ``stop_at``;
    every rank gets the same answer so that all of them stop at the same epoch."""
    if stop_at is None:
        return False
    hit = float(ctx.is_main and best is not None and best >= stop_at)
    return distributed.mean_across_ranks({"hit": hit}, ctx)["hit"] > 0


def run_epoch(
    objective, run, ctx, epoch, start_step, partial, seed, num_workers, bar, history, best
) -> dict[str, float]:
    """Train one epoch from ``start_step`` (``partial``: loss sums of the steps before it)."""
    dataset = objective.dataset(epoch)
    batches = epoch_batches(len(dataset), objective.batch_size, seed, epoch, ctx)
    reseed = functools.partial(reseed_worker, objective.augment) if objective.augment is not None else None
    loader = DataLoader(
        dataset, batch_sampler=batches[start_step:], num_workers=num_workers, worker_init_fn=reseed,
        generator=torch.Generator().manual_seed(derived_seed(seed, epoch, ctx.rank, 1)),
    )
    for module in objective.modules.values():
        module.train()
    totals: dict[str, float] = dict(partial)
    step = start_step
    try:
        for step, batch in enumerate(loader, start=start_step):
            values = objective.train_step(batch, epoch, step / len(batches))
            for key, value in values.items():
                totals[key] = totals.get(key, 0.0) + value
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, phase=objective.phase(epoch), **{k: f"{v:.4f}" for k, v in values.items()})
        step = len(batches)
    except KeyboardInterrupt:
        run.save("last", checkpoint_state(objective, epoch, step, history, best, totals))
        raise TrainingInterrupted(run, epoch, step) from None
    count = max(1, len(batches))
    means = {f"train_{k}": v / count for k, v in totals.items()}
    return distributed.mean_across_ranks(means, ctx)


def reseed_worker(augment, worker_id: int) -> None:
    """DataLoader worker hook: each worker its own augmentation stream, derived from the loader's seed."""
    augment.reseed(int(get_worker_info().seed % 2**31))
