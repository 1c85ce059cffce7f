"""What one training step computes: segmentation (single, multi), inpainting, coach.

Each objective owns its networks and optimisers and follows :class:`ssinfnet.training.loop.Objective`:
a training step returns its loss (:class:`~ssinfnet.training.loop.Step`); the loop owns epochs, data
order, checkpoints, resume, device batches, DDP and the optimiser step; networks run through the
objective's :class:`~ssinfnet.training.loop.Runtime` (autocast, memory format). Losses come from
:func:`ssinfnet.training.losses.build_loss`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, Dataset, Subset

from ssinfnet.core.labels import CLASS_NAMES
from ssinfnet.core.metrics import SCORING_RULE, mean_class_f1
from ssinfnet.core.runs import MODEL, SUMMARY, kept_epoch
from ssinfnet.fileio import write_json
from ssinfnet.models import random_block_mask, save_model
from ssinfnet.training import losses
from ssinfnet.training.examples import save_grid
from ssinfnet.training.lookahead import Lookahead
from ssinfnet.training.loop import Runtime, Step
from ssinfnet.training.runs import derived_seed

#: Thresholds tried on validation for the single stage's infection probability.
THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())


def make_optimizer(params, section: dict[str, Any]):
    """Adam or SGD from a config section (``optimizer``, ``lr``, ``momentum``, ``weight_decay``),
    wrapped in Lookahead when ``lookahead`` is set (``{k, alpha}``)."""
    kind = section["optimizer"]
    if kind == "adam":
        optimizer = torch.optim.Adam(params, lr=section["lr"], weight_decay=section["weight_decay"])
    elif kind == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=section["lr"], momentum=section["momentum"], weight_decay=section["weight_decay"]
        )
    else:
        raise ValueError(f"optimizer must be adam or sgd, not {kind!r}")
    lookahead = section.get("lookahead")
    return Lookahead(optimizer, **lookahead) if lookahead else optimizer


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class PriorMaker:
    """The multi stage's second input channel: infection probability from the trained single stage.

    Never the ground truth (the public Inf-Net release used GT here, which leaks). Without a single
    model (multi-network pretraining before any single run exists) the prior is all zeros, i.e.
    "no lesion found yet": the network then learns to inpaint the CT alone.
    """

    def __init__(self, single: nn.Module | None, runtime: Runtime):
        self.single = single.eval() if single is not None else None
        self.runtime = runtime
        if self.single is not None:
            self.single.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.single is None:
            return torch.zeros_like(image[:, :1])
        logits = self.runtime.forward(self.single, image[:, :1])[self.single.main_output]
        return torch.sigmoid(logits.float())

    def with_prior(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([image, self(image)], dim=1)


class Draw(NamedTuple):
    """Items that join each epoch's training data by a fresh seeded draw of ``per_epoch`` (negatives,
    pseudo-labelled slices). ``mined_from`` > 0 mines hard examples among that many random ones
    (:meth:`SegmentationObjective.begin_epoch`), scored on ``probe``: the same items unaugmented."""

    data: Dataset
    per_epoch: int
    mined_from: int = 0
    probe: Dataset | None = None


class SegmentationObjective:
    """Supervised single stage (infection) or multi stage (bg / GGO / consolidation on CT + prior)."""

    def __init__(
        self,
        model: nn.Module,
        train: Dataset,
        val: Dataset,
        section: dict[str, Any],
        runtime: Runtime,
        prior: PriorMaker | None = None,
        augment=None,
        export_extra: dict[str, Any] | None = None,
        drawn: Sequence[Draw | tuple[Dataset, int]] = (),
        seed: int = 0,
    ):
        self.multi = prior is not None
        self.model = model
        self.modules = {"model": model}
        self.optimizers = {"optimizer": make_optimizer(model.parameters(), section)}
        self.train_data, self.val_data = train, val
        self.section, self.runtime, self.prior = section, runtime, prior
        self.batch_size = int(section["batch_size"])
        self.loss = losses.build_loss("multi" if self.multi else "single", section)
        self.augment = augment
        self.export_extra = export_extra or {}
        self.validation: dict[str, Any] = {}
        self.drawn = [Draw(*draw) for draw in drawn if draw[1] > 0 and len(draw[0])]
        self.seed = seed
        self.mined_epoch: int | None = None
        self.mined: dict[int, list[int]] = {}  # index in ``drawn`` -> the items mined for ``mined_epoch``
        self.mining: dict[str, float] = {}

    def random_draw(self, epoch: int, index: int, count: int) -> list[int]:
        """A seeded random ``count`` of ``drawn[index]`` for ``epoch`` (the same on resume and on every rank)."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, 2 + index))
        return torch.randperm(len(self.drawn[index].data), generator=generator)[:count].tolist()

    def dataset(self, epoch: int) -> Dataset:
        """The labeled slices plus ``per_epoch`` items of each draw: mined ones once :meth:`begin_epoch`
        ran for ``epoch``; before that (the loop sizes every epoch up front) random ones, same count."""
        if not self.drawn:
            return self.train_data
        parts = [self.train_data]
        for index, draw in enumerate(self.drawn):
            mined = self.mined.get(index) if self.mined_epoch == epoch else None
            parts.append(Subset(draw.data, mined if mined is not None else self.random_draw(epoch, index, draw.per_epoch)))
        return ConcatDataset(parts)

    def begin_epoch(self, epoch: int) -> None:
        """Hard-example mining, before the epoch trains: of each draw with ``mined_from``, score that many
        random items (unaugmented) by their mean lesion probability under the current weights and keep
        the ``per_epoch`` highest. Every rank holds the same weights, so every rank keeps the same items."""
        if self.mined_epoch == epoch:
            return  # restored from a checkpoint cut inside this epoch: keep what it trained on
        mined, mining = {}, {}
        for index, draw in enumerate(self.drawn):
            if not draw.mined_from:
                continue
            candidates = self.random_draw(epoch, index, draw.mined_from)
            probs, _ = self.predict(Subset(draw.probe, candidates))
            scores = np.array([float((1.0 - p[0]).mean() if self.multi else p.mean()) for p in probs])
            keep = np.argsort(-scores, kind="stable")[:draw.per_epoch]
            mined[index] = [candidates[i] for i in keep]
            mining = {"mined_lesion_probability": float(scores[keep].mean()),
                      "candidate_lesion_probability": float(scores.mean())}
        self.mined_epoch, self.mined, self.mining = epoch, mined, mining

    def epoch_state(self) -> dict[str, Any]:
        """What a checkpoint cut inside an epoch needs to train that epoch on the same items."""
        return {"mined_epoch": self.mined_epoch, "mined": self.mined, "mining": self.mining}

    def set_epoch_state(self, state: dict[str, Any]) -> None:
        self.mined_epoch, self.mining = state["mined_epoch"], state["mining"]
        self.mined = {int(index): list(items) for index, items in state["mined"].items()}

    def phase(self, epoch: int) -> str:
        return "multi" if self.multi else "single"

    def inputs(self, image: torch.Tensor) -> torch.Tensor:
        return self.runtime.inputs(self.prior.with_prior(image) if self.multi else image)

    def train_step(self, batch, nets, epoch: int, progress: float) -> Step:
        outputs = self.runtime.forward(nets["model"], self.inputs(batch["image"]))
        return Step(self.loss(outputs, batch["mask"], batch.get("weight")), grad_clip=self.section.get("grad_clip"))

    @torch.no_grad()
    def predict(self, data: Dataset) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Probabilities ((H, W) infection, or (3, H, W) classes) and masks of ``data``, in order."""
        self.model.eval()
        probs, masks = [], []
        for batch in self.runtime.batches(data, self.batch_size):
            logits = self.runtime.forward(self.model, self.inputs(batch["image"]))[self.model.main_output].float()
            prob = torch.softmax(logits, 1) if self.multi else torch.sigmoid(logits[:, 0])
            probs.extend(prob.cpu().numpy())
            masks.extend(batch["mask"].cpu().numpy())
        self.model.train()
        return probs, masks

    def end_epoch(self, epoch: int, run) -> dict[str, float]:
        probs, masks = self.predict(self.val_data)
        if self.multi:
            self.validation = multi_validation(probs, masks)
        else:
            self.validation = single_validation(probs, masks)
        return {**{k: v for k, v in self.validation.items() if isinstance(v, float)}, **self.mining}

    def save_best(self, run) -> None:
        save_model(self.model, run.model_path, extra={**self.export_extra, "validation": self.validation})


def mean_dice(probs: list[np.ndarray], masks: list[np.ndarray], threshold: float) -> float:
    """Mean per-image infection Dice of ``probs`` at ``threshold`` under the empty-class rule
    (``core.metrics.class_scores``; NaN when no slice is scored)."""
    return float(mean_class_f1((m > 0 for m in masks), (p >= threshold for p in probs)))


def single_validation(probs: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, Any]:
    """Mean per-image Dice at each threshold; the best threshold is the one the run exports."""
    dice = {t: mean_dice(probs, masks, t) for t in THRESHOLDS}
    dice = {t: (-1.0 if np.isnan(d) else d) for t, d in dice.items()}
    best = max(dice, key=dice.get)
    return {"val_dice": dice[best], "val_dice_at_0.5": dice[0.5], "threshold": float(best), "score": dice[best],
            "scoring_rule": SCORING_RULE}


def multi_validation(probs: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, Any]:
    """Per-class mean per-image Dice of the argmax labels under the empty-class rule
    (``core.metrics.class_scores``); score = mean of the two lesion classes."""
    return label_validation([p.argmax(0) for p in probs], masks)


def label_validation(labels: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, Any]:
    """:func:`multi_validation` of label maps (0 background, 1 GGO, 2 consolidation), e.g. segment's."""
    result: dict[str, Any] = {}
    for index, name in enumerate(CLASS_NAMES):
        result[f"val_dice_{name}"] = float(mean_class_f1((m == index for m in masks), (l == index for l in labels)))
    lesion = [result[f"val_dice_{name}"] for name in CLASS_NAMES[1:]]
    result["score"] = float(np.nanmean(lesion)) if not np.all(np.isnan(lesion)) else -1.0
    result["scoring_rule"] = SCORING_RULE
    return result


def round_lr(base: float, fraction: float) -> float:
    """The paper's step schedule inside one round: x1, then x0.1 at 40%, x0.01 at 80%, x0.001 at 90%."""
    if fraction < 0.4:
        return base
    if fraction < 0.8:
        return base * 0.1
    if fraction < 0.9:
        return base * 0.01
    return base * 0.001


class PretrainSchedule:
    """Which phase an epoch of self-supervised pretraining belongs to.

    ``warmup`` epochs of random block masks (round 0), then rounds r = 1, 2, ... of ``coach`` epochs
    (the coach learns to erase what the frozen inpainter rebuilds worst) followed by ``inpaint``
    epochs (the inpainter learns on the coach's masks). The inpainter's learning rate restarts its
    step schedule in every round it trains.
    """

    def __init__(self, warmup_epochs: int, coach_epochs: int, inpaint_epochs: int):
        if coach_epochs < 1 or inpaint_epochs < 1 or warmup_epochs < 1:
            raise ValueError("pretraining needs at least one warm-up, coach and inpainting epoch per round")
        self.warmup, self.coach, self.inpaint = warmup_epochs, coach_epochs, inpaint_epochs

    def __call__(self, epoch: int) -> tuple[str, int, int, int]:
        """(phase, round, first epoch of the phase, phase length) of ``epoch``."""
        if epoch < self.warmup:
            return "warmup", 0, 0, self.warmup
        cycle = self.coach + self.inpaint
        round_index, within = divmod(epoch - self.warmup, cycle)
        start = self.warmup + round_index * cycle
        if within < self.coach:
            return "coach", round_index + 1, start, self.coach
        return "inpaint", round_index + 1, start + self.coach, self.inpaint


class CoachedInpaintingObjective:
    """Self-supervised pretraining: an inpainter (reconstruction heads) against a coach (section 3).

    The inpainter sees ``x * keep`` and rebuilds ``x`` (all channels: CT, and the prior for the multi
    network); its loss is the squared error on erased pixels + ``kept_weight`` x that on kept pixels.
    The coach sees the CT channel and is trained with ``1 - L_rec`` of the frozen inpainter on its
    soft masks (maximising the inpainter's error at a fixed erased fraction).
    """

    def __init__(
        self, inpainter, coach, pool: Dataset, val: Dataset, section, runtime: Runtime, seed,
        prior: PriorMaker | None, augment=None,
    ):
        """``prior``: None for the single network; for the multi network, what makes its second channel."""
        self.inpainter, self.coach = inpainter, coach
        self.modules = {"inpainter": inpainter, "coach": coach}
        self.optimizers = {
            "inpainter": torch.optim.SGD(
                inpainter.parameters(), lr=section["lr"], momentum=section["momentum"],
                weight_decay=section["weight_decay"],
            ),
            "coach": torch.optim.Adam(coach.parameters(), lr=section["coach_lr"]),
        }
        self.schedule = PretrainSchedule(section["warmup_epochs"], section["coach_epochs"], section["inpaint_epochs"])
        self.pool, self.val = pool, val
        self.section, self.runtime, self.seed, self.prior = section, runtime, seed, prior
        self.augment = augment
        self.batch_size = int(section["batch_size"])

    def dataset(self, epoch: int) -> Dataset:
        return self.pool

    def phase(self, epoch: int) -> str:
        return self.schedule(epoch)[0]

    def inputs(self, batch) -> torch.Tensor:
        image = batch["image"]
        return self.runtime.inputs(image if self.prior is None else self.prior.with_prior(image))

    def reconstruction(self, net, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction loss over every side output of ``net`` on ``x * keep``."""
        outputs = self.runtime.forward(net, x * keep)
        terms = [losses.reconstruction_loss(out, x, keep, self.section["kept_weight"]) for out in outputs.values()]
        return torch.stack(terms).mean()

    def random_mask(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        keep = random_block_mask(x.shape, self.section["block"], self.section["erase_fraction"], generator)
        return keep.to(x.device)

    @torch.no_grad()
    def coach_mask(self, x: torch.Tensor) -> torch.Tensor:
        self.coach.eval()
        keep = self.runtime.forward(self.coach, x[:, :1], hard=True)
        self.coach.train()
        return keep.float()

    def train_step(self, batch, nets, epoch: int, progress: float) -> Step:
        x = self.inputs(batch)
        phase, _, start, length = self.schedule(epoch)
        if phase == "coach":
            # The coach's soft masks, in fp32, through the frozen inpainter: gradients reach the coach
            # only. Unfreezing before the loop's backward pass is safe: the graph is built already.
            self.inpainter.eval().requires_grad_(False)
            keep = nets["coach"](x[:, :1]).float()
            rec = self.reconstruction(self.inpainter, x, keep)
            self.inpainter.train().requires_grad_(True)
            return Step(1.0 - rec, "coach", name="coach_loss")
        keep = self.random_mask(x) if phase == "warmup" else self.coach_mask(x)
        set_lr(self.optimizers["inpainter"], round_lr(self.section["lr"], (epoch - start + progress) / length))
        rec = self.reconstruction(nets["inpainter"], x, keep)
        return Step(rec, "inpainter", self.section.get("grad_clip"), "rec_loss")

    @torch.no_grad()
    def validation_losses(self) -> dict[str, float]:
        """Reconstruction error on held-out images under fixed random masks and under coach masks."""
        self.inpainter.eval()
        generator = torch.Generator().manual_seed(self.seed)
        random_losses, coach_losses = [], []
        for batch in self.runtime.batches(self.val, self.batch_size):
            x = self.inputs(batch)
            random_losses.append(float(self.reconstruction(self.inpainter, x, self.random_mask(x, generator))))
            coach_losses.append(float(self.reconstruction(self.inpainter, x, self.coach_mask(x))))
        self.inpainter.train()
        return {"val_rec_random": float(np.mean(random_losses)), "val_rec_coach": float(np.mean(coach_losses))}

    def end_epoch(self, epoch: int, run) -> dict[str, float]:
        metrics = self.validation_losses()
        phase, round_index, start, length = self.schedule(epoch)
        if epoch == start + length - 1:
            self.save_examples(run, f"round{round_index:03d}_{phase}.png")
        self.keep(run, epoch + 1)
        return metrics

    def keep(self, run, epochs_done: int) -> None:
        """Keep the inpainter after ``epochs_done`` epochs when ``keep_epochs`` lists it (see
        ``core.runs.kept_epoch``); its summary, written last, marks it complete."""
        if epochs_done not in self.section.get("keep_epochs", ()) or not run.writer:
            return
        folder = kept_epoch(run.path, epochs_done)
        extra = {"stage": "pretrain", "run": run.path.name, "epoch": epochs_done}
        save_model(self.inpainter, folder / MODEL, extra=extra)
        write_json(folder / SUMMARY, extra)

    def save_best(self, run) -> None:
        """Pretraining has no validation score: the run exports its final inpainter (see pretrain.py)."""

    @torch.no_grad()
    def save_examples(self, run, name: str) -> None:
        """PNG grid, one row per validation image: CT | coach mask | masked CT | reconstruction | random mask."""
        self.inpainter.eval()
        x = self.inputs(next(self.runtime.batches(self.val, int(self.section["examples"]))))
        keep = self.coach_mask(x)
        rebuilt = self.runtime.forward(self.inpainter, x * keep)[self.inpainter.main_output].float()
        random_keep = self.random_mask(x, torch.Generator().manual_seed(self.seed))
        self.inpainter.train()
        rows = [[x[i, 0], keep[i, 0], (x * keep)[i, 0], rebuilt[i, 0], random_keep[i, 0]] for i in range(len(x))]
        if run.writer:
            save_grid(rows, run.path / "examples" / name)
