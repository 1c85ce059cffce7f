"""`ssinfnet demo`: a shortened run checks the plumbing; one full run checks the promised Dice."""

import json

import pytest

from ssinfnet.cli import main
from ssinfnet.inference.predictor import load_pipeline

SHORT = [
    "cohort.n_subjects=5", "cohort.size=64", "cohort.slices_per_subject=4", "data.size=64",
    "model.width=8", "model.rfb_channels=8", "multi_model.width=8", "multi_model.rfb_channels=8", "coach.width=8",
    "pretrain.epochs=3", "pretrain.warmup_epochs=1", "pretrain.coach_epochs=1", "pretrain.inpaint_epochs=1",
    "pretrain.val_images=2", "pretrain.examples=2", "single.epochs=2", "multi.epochs=2",
]


def test_short_demo_runs_every_step_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--no-progress"] + [a for s in SHORT for a in ("--set", s)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "lesion (infection) Dice" in printed and "GGO Dice" in printed
    for run in ("pretrain_single", "single", "pretrain_multi", "multi"):
        assert (out / run / "model.safetensors").is_file(), run
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["dice"]["lesion (infection) Dice"] <= 1.0
    index = (out / "cohort" / "semiseg" / "slice_index.csv").read_text().splitlines()
    assert summary["test_slices"] == sum(line.endswith(",TestingSet") for line in index) > 0
    assert json.loads((out / "multi" / "summary.json").read_text())["prior_from"] == str(out / "single")
    assert load_pipeline(out / "pipeline").multi is not None
    assert main(args) == 2  # never overwrites an earlier demo


@pytest.mark.slow
def test_full_demo_meets_its_dice(tmp_path):
    """The real demo (about 5 minutes on 2 cores): lesion Dice >= 0.8 on the generated test slices."""
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["dice"]["lesion (infection) Dice"] >= 0.8
