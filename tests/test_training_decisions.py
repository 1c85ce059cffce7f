"""Decisions the training stage takes, pinned on hand-made maps: the validation threshold is the one
with the highest Dice, the multi stage is scored on its lesion classes only (never background), the
multi stage's prior is the single network's probability, and gradient clipping bounds every update."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from ssinfnet.models import build_model
from ssinfnet.training import distributed, loop
from ssinfnet.training.loop import optimise
from ssinfnet.training.objectives import (
    THRESHOLDS, CoachedInpaintingObjective, Draw, PriorMaker, SegmentationObjective, multi_validation,
    single_validation,
)

CPU = loop.Runtime(distributed.Context(0, 1, torch.device("cpu")))


def train_step(objective, batch):
    """One optimisation step as the loop takes it (epoch 0, at its start)."""
    return loop.training_step(objective, objective.modules, batch, 0, 0.0)


def lesion_square(size=16):
    mask = np.zeros((size, size), np.int64)
    mask[4:12, 4:12] = 1
    return mask


# --- single stage: the threshold chosen on validation ----------------------------------------------

def test_validation_threshold_is_the_one_with_the_highest_dice():
    # Lesion pixels at 0.62, background at 0.38 and a rim of background at 0.5: thresholds 0.55 and
    # 0.6 give Dice 1; lower ones take in the rim or all background, higher ones find nothing.
    mask = lesion_square()
    prob = np.where(mask > 0, 0.62, 0.38).astype(np.float32)
    prob[2, :] = 0.5
    result = single_validation([prob, prob], [mask, 2 * mask])  # GGO or consolidation: both infection
    assert result["threshold"] in (0.55, 0.6)
    assert result["val_dice"] == pytest.approx(1.0) and result["score"] == result["val_dice"]
    assert result["val_dice_at_0.5"] == pytest.approx(2 * 64 / (2 * 64 + 16))  # the rim counted
    assert set(THRESHOLDS) >= {0.05, 0.5, 0.55, 0.6, 0.95}


def test_validation_threshold_prefers_higher_dice_whatever_its_position():
    # Dice rises with the threshold here (background at 0.8 is above most thresholds).
    mask = lesion_square()
    prob = np.where(mask > 0, 0.9, 0.8).astype(np.float32)
    result = single_validation([prob], [mask])
    assert result["threshold"] in (0.85, 0.9) and result["val_dice"] == pytest.approx(1.0)


# --- multi stage: scored on GGO and consolidation, never on background ------------------------------

def class_probs(labels: np.ndarray) -> np.ndarray:
    """(3, H, W) probabilities whose argmax is ``labels``."""
    probs = np.full((3, *labels.shape), 0.1, np.float32)
    for c in range(3):
        probs[c][labels == c] = 0.8
    return probs


def test_multi_stage_score_is_the_mean_dice_of_the_two_lesion_classes():
    truth = np.zeros((16, 16), np.int64)
    truth[2:8, 2:8] = 1   # GGO, predicted exactly
    truth[10:14, 10:14] = 2  # consolidation, predicted as background
    predicted = truth.copy()
    predicted[truth == 2] = 0
    result = multi_validation([class_probs(predicted)], [truth])
    assert result["val_dice_GGO"] == pytest.approx(1.0)
    assert result["val_dice_consolidation"] == pytest.approx(0.0)
    assert result["val_dice_background"] > 0.9  # background is scored (reported) ...
    assert result["score"] == pytest.approx(0.5)  # ... but not part of the score


def test_multi_stage_score_ignores_a_perfect_background():
    truth = np.zeros((16, 16), np.int64)
    truth[4:12, 4:12] = 1
    predicted = np.zeros_like(truth)  # nothing found: background Dice is still high
    result = multi_validation([class_probs(predicted)], [truth])
    assert result["val_dice_background"] > 0.5
    assert result["score"] == pytest.approx(0.0)


# --- the prior: the single network's infection probability --------------------------------------

class Ramp(nn.Module):
    """A hand-made single stage: logit = 8 * (x - 0.5) per pixel."""

    in_channels, num_classes, main_output = 1, 1, "out"

    def forward(self, x):
        return {"out": 8.0 * (x[:, :1] - 0.5)}


def test_prior_is_the_single_networks_probability():
    image = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(2, 1, 1, 1)
    prior = PriorMaker(Ramp(), CPU)(image)
    assert torch.allclose(prior, torch.sigmoid(8.0 * (image - 0.5)))
    both = PriorMaker(Ramp(), CPU).with_prior(image)
    assert both.shape == (2, 2, 8, 8) and torch.equal(both[:, :1], image) and torch.equal(both[:, 1:], prior)
    assert torch.equal(PriorMaker(None, CPU)(image), torch.zeros_like(image))  # no single model yet: "nothing found"


def test_multi_stage_training_sees_the_prior_channel():
    seen = []

    class Recorder(nn.Module):
        in_channels, num_classes, main_output = 2, 3, "out"

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x):
            seen.append(x.detach().clone())
            return {"out": self.scale * x[:, :1].repeat(1, 3, 1, 1)}

    section = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 2}
    objective = SegmentationObjective(Recorder(), None, None, section, CPU, prior=PriorMaker(Ramp(), CPU))
    image = torch.linspace(0, 1, 128).reshape(2, 1, 8, 8)
    train_step(objective, {"image": image, "mask": torch.zeros(2, 8, 8, dtype=torch.long)})
    assert torch.allclose(seen[0][:, 1:], torch.sigmoid(8.0 * (image - 0.5)))


# --- gradient clipping -----------------------------------------------------------------------------

def test_optimise_clips_the_gradient_norm():
    weights = nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([weights], lr=1.0)
    optimise(optimizer, (weights * torch.tensor([300.0, 400.0, 0.0])).sum(), grad_clip=1.0)
    assert torch.allclose(weights.detach(), torch.tensor([-0.6, -0.8, 0.0]), atol=1e-5)  # norm 500 -> 1
    optimise(optimizer, (weights * torch.tensor([0.3, 0.4, 0.0])).sum(), grad_clip=1.0)
    assert torch.allclose(weights.detach(), torch.tensor([-0.9, -1.2, 0.0]), atol=1e-5)  # norm 0.5: untouched
    optimise(optimizer, (weights * torch.tensor([300.0, 400.0, 0.0])).sum(), grad_clip=None)
    assert torch.allclose(weights.detach(), torch.tensor([-300.9, -401.2, 0.0]), atol=1e-3)


def update_norm(model: nn.Module, step) -> float:
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    step()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return float((after - before).norm())


class Slices(Dataset):
    def __init__(self, n=4):
        self.images = torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i]}


@pytest.mark.parametrize("grad_clip", [1e-3, None])
def test_supervised_steps_honour_the_stage_grad_clip(grad_clip):
    torch.manual_seed(0)
    model = build_model("unet", width=4)
    section = {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 2,
               "grad_clip": grad_clip}
    objective = SegmentationObjective(model, None, None, section, CPU)
    batch = {"image": torch.rand(2, 1, 32, 32), "mask": (torch.rand(2, 32, 32) > 0.5).long()}
    norm = update_norm(model, lambda: train_step(objective, batch))
    assert norm <= 1e-3 * 1.0001 if grad_clip else norm > 1e-2  # lr 1: the update is the clipped gradient


@pytest.mark.parametrize("grad_clip", [1e-3, None])
def test_pretraining_steps_honour_the_pretrain_grad_clip(grad_clip):
    torch.manual_seed(0)
    section = dict(warmup_epochs=1, coach_epochs=1, inpaint_epochs=1, batch_size=2, lr=1.0, momentum=0.0,
                   weight_decay=0.0, grad_clip=grad_clip, erase_fraction=0.25, block=8, kept_weight=0.01,
                   coach_lr=1e-3, examples=1)
    inpainter = build_model("unet", width=4).use_heads("reconstruction")
    coach = build_model("coach", width=8, erase_fraction=0.25)
    objective = CoachedInpaintingObjective(inpainter, coach, Slices(), Slices(2), section, CPU, 0, None)
    batch = {"image": torch.rand(2, 1, 32, 32)}
    norm = update_norm(inpainter, lambda: train_step(objective, batch))  # epoch 0: warm-up, lr x1
    assert norm <= 1e-3 * 1.0001 if grad_clip else norm > 1e-2


# --- hard-negative mining: the lesion-free slices the network gets most wrong now ------------------

class Brightness(nn.Module):
    """Infection logit 20 * (pixel - 0.5): the brighter a slice, the more lesion it seems to hold."""

    in_channels, num_classes, main_output = 1, 1, "out"

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return {"out": 20.0 * (x - self.offset)}


class Flat(Dataset):
    """Lesion-free slice i filled with ``values[i]``."""

    def __init__(self, values):
        self.values = list(values)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, i):
        return {"image": torch.full((1, 8, 8), float(self.values[i])),
                "mask": torch.zeros(8, 8, dtype=torch.long), "weight": 0.5, "index": i}


def mining_objective(mined_from, per_epoch=3, seed=4):
    values = np.linspace(0.0, 1.0, 12)
    # The training view is reversed (standing in for augmentation): mining must score the probe.
    draws = [Draw(Flat(values[::-1]), per_epoch, mined_from, Flat(values))]
    section = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 4}
    return SegmentationObjective(Brightness(), Flat([0.2]), Flat([0.2]), section, CPU, drawn=draws, seed=seed)


def drawn_indices(objective, epoch):
    part = objective.dataset(epoch).datasets[1]
    return list(part.indices)


def test_mining_keeps_the_candidates_with_the_highest_lesion_probability():
    objective = mining_objective(mined_from=8)
    candidates = objective.random_draw(epoch=2, index=0, count=8)
    placeholder = drawn_indices(objective, 2)  # sized before the epoch begins: random, the same count
    assert placeholder == candidates[:3]
    objective.begin_epoch(2)
    mined = drawn_indices(objective, 2)
    # Slice i has brightness i / 11, so the three brightest candidates are the three highest indices.
    assert mined == sorted(candidates, reverse=True)[:3]
    assert objective.mining["mined_lesion_probability"] > objective.mining["candidate_lesion_probability"]
    assert drawn_indices(objective, 3) == objective.random_draw(3, 0, 3)  # mined for epoch 2 only


def test_without_mining_the_draw_is_random_and_begin_epoch_changes_nothing():
    objective = mining_objective(mined_from=0)
    before = drawn_indices(objective, 1)
    objective.begin_epoch(1)
    assert drawn_indices(objective, 1) == before == objective.random_draw(1, 0, 3)
    assert objective.mining == {}


def test_a_checkpoint_inside_an_epoch_keeps_the_mined_slices():
    objective = mining_objective(mined_from=8)
    objective.begin_epoch(5)
    state = objective.epoch_state()
    resumed = mining_objective(mined_from=8)
    with torch.no_grad():
        resumed.model.offset.fill_(2.0)  # weights that would mine others: nothing is scored again
    resumed.set_epoch_state(state)
    resumed.begin_epoch(5)
    assert drawn_indices(resumed, 5) == drawn_indices(objective, 5)
