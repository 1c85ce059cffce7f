"""Coach-guided inpainting: schedule, learning-rate steps, and a coach that learns what is hard."""

import pytest
import torch
from torch.utils.data import Dataset

from ssinfnet.models import build_model
from ssinfnet.training import distributed, loop
from ssinfnet.training.objectives import CoachedInpaintingObjective, PretrainSchedule, round_lr
from ssinfnet.training.runs import RunDir

CPU = distributed.Context(0, 1, torch.device("cpu"))


def test_schedule_warmup_then_alternating_rounds():
    schedule = PretrainSchedule(warmup_epochs=3, coach_epochs=2, inpaint_epochs=1)
    phases = [schedule(e)[:2] for e in range(9)]
    assert phases == [("warmup", 0)] * 3 + [("coach", 1)] * 2 + [("inpaint", 1)] + [("coach", 2)] * 2 + [("inpaint", 2)]
    assert schedule(5) == ("inpaint", 1, 5, 1)
    with pytest.raises(ValueError):
        PretrainSchedule(0, 1, 1)


def test_round_lr_follows_the_paper_steps():
    assert [round_lr(0.1, f) for f in (0.0, 0.39, 0.4, 0.79, 0.8, 0.89, 0.9, 0.99)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4])


class TexturedImages(Dataset):
    """64x64 images: a smooth ramp (easy to inpaint) plus two 16x16 cells of random noise (impossible
    to inpaint from context) at random places. A coach that learns must erase the noise cells."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        ramp = torch.linspace(0.2, 0.6, 64).expand(64, 64)
        self.images = []
        for _ in range(n):
            image = ramp.clone()
            for cell in torch.randperm(16, generator=g)[:2].tolist():
                r, c = divmod(cell, 4)
                image[r * 16 : r * 16 + 16, c * 16 : c * 16 + 16] = torch.rand(16, 16, generator=g)
            self.images.append(image[None])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i]}


def test_one_coach_round_makes_masks_harder_than_random(tmp_path):
    torch.manual_seed(0)
    section = dict(
        warmup_epochs=3, coach_epochs=3, inpaint_epochs=1, batch_size=8, lr=0.05, momentum=0.9,
        weight_decay=5e-4, grad_clip=1.0, erase_fraction=0.125, block=16, kept_weight=0.01,
        coach_lr=1e-3,  # the paper's 1e-5 needs thousands of steps; the test has a few dozen
        examples=2,
    )
    inpainter = build_model("infnet", width=8, rfb_channels=8).use_heads("reconstruction")
    coach = build_model("coach", width=8, erase_fraction=section["erase_fraction"])
    objective = CoachedInpaintingObjective(
        inpainter, coach, TexturedImages(48, seed=1), TexturedImages(16, seed=2), section, loop.Runtime(CPU), 0,
        None,
    )
    run = RunDir(tmp_path)
    loop.fit(objective, run, CPU, epochs=3, seed=0, progress=False)  # warm-up only
    before = objective.validation_losses()
    loop.fit(objective, run, CPU, epochs=6, seed=0, resume=True, progress=False)  # + one coach round
    after = objective.validation_losses()
    # Same erased fraction (16 px cells both), but the coach's cells are now harder to rebuild.
    assert after["val_rec_random"] == pytest.approx(before["val_rec_random"])  # inpainter frozen in the round
    assert after["val_rec_coach"] > before["val_rec_coach"]
    assert after["val_rec_coach"] > 1.3 * after["val_rec_random"]
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == ["round000_warmup.png", "round001_coach.png"]


def test_keep_epochs_keeps_the_inpainter_at_those_epochs_as_finished_runs(tmp_path):
    """``pretrain.keep_epochs``: the weights before training (0) and after epoch 2 of 3, each a folder that
    ``train --init`` takes; the last kept epoch is the final model only when it is the last epoch."""
    import json

    from safetensors.torch import load_file

    from ssinfnet.cli import main
    from ssinfnet.core.runs import finished_model, kept_epoch
    from ssinfnet.data.demo_cohort import make_demo_cohort
    from ssinfnet.errors import InputError
    from ssinfnet.training.config import load_config

    tiny = ["data.size=32", "model={name: unet, width: 4}", "coach.width=4", "pretrain.epochs=3",
            "pretrain.warmup_epochs=1", "pretrain.coach_epochs=1", "pretrain.inpaint_epochs=1",
            "pretrain.val_images=2", "pretrain.examples=1", "pretrain.block=8"]
    with pytest.raises(InputError, match="pretrain.keep_epochs.*after the last one"):
        load_config("demo", [*tiny, "pretrain.keep_epochs=[0, 4]"])
    cohort = make_demo_cohort(tmp_path / "cohort", n_subjects=5, size=32, slices_per_subject=3)
    run = tmp_path / "pre"
    args = ["pretrain", "--data", str(cohort / "unlabeled"), "--out", str(run), "--preset", "demo", "--no-progress"]
    assert main([*args, *[a for s in [*tiny, "pretrain.keep_epochs=[0, 2]"] for a in ("--set", s)]]) == 0
    kept = sorted(p.name for p in (run / "epochs").iterdir())
    assert kept == ["epoch-0000", "epoch-0002"]
    weights = {e: load_file(str(finished_model(kept_epoch(run, e)))) for e in (0, 2)}
    final = load_file(str(run / "model.safetensors"))
    name = next(iter(final))
    assert not torch.equal(weights[0][name], weights[2][name]) and not torch.equal(weights[2][name], final[name])
    assert json.loads((kept_epoch(run, 2) / "summary.json").read_text())["epoch"] == 2
    train = ["train", "single", "--data", str(cohort / "semiseg"), "--out", str(tmp_path / "ft"), "--preset", "demo",
             "--init", str(kept_epoch(run, 2)), "--no-progress", "--set", "single.epochs=1",
             *[a for s in tiny[:2] for a in ("--set", s)]]
    assert main(train) == 0
    assert json.loads((tmp_path / "ft" / "init_transfer.json").read_text())["copied"]
