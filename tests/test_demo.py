"""`ssinfnet demo`: a shortened run checks the plumbing; one full run checks the promised Dice."""

import csv
import json

import pytest

from ssinfnet.cli import main
from ssinfnet.inference.predictor import load_pipeline

# 5 slices a subject: 44 mm apart, within what segment accepts of a volume (the demo segments one).
SHORT = [
    "cohort.n_subjects=5", "cohort.size=64", "cohort.slices_per_subject=5", "data.size=64",
    "model.width=8", "model.rfb_channels=8", "multi_model.width=8", "multi_model.rfb_channels=8", "coach.width=8",
    "pretrain.epochs=3", "pretrain.warmup_epochs=1", "pretrain.coach_epochs=1", "pretrain.inpaint_epochs=1",
    "pretrain.val_images=2", "pretrain.examples=2", "single.epochs=2", "multi.epochs=2",
]


@pytest.mark.slow
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
    evaluation = json.loads((out / "evaluation" / "summary.json").read_text())
    assert evaluation["kind"] == "evaluation" and evaluation["prediction"] == "product"
    assert evaluation["metrics"]["infection"]["f1"]["mean"] == summary["dice"]["lesion (infection) Dice"]
    rows = list(csv.DictReader((out / "evaluation" / "per_image.csv").open()))
    held = [float(r["consolidation.f1"]) for r in rows if r["consolidation.fp_area"] in ("", "nan")]
    assert summary["metrics"]["consolidation"]["f1_where_present"]["n"] == len(held) < len(rows)
    assert summary["dice"]["consolidation Dice, slices with it"] == pytest.approx(sum(held) / len(held))
    report = (out / "report.html").read_text()
    assert str(out / "report.html") in printed and "evaluation" in report and "multi" in report
    subject = json.loads((out / "cohort" / "truth.json").read_text())["cohort"]["subjects_by_split"]["test"][0]
    overlay = out / summary["overlay"]
    assert overlay.is_file() and overlay.parent.parent == out / "segment" / subject and str(overlay) in printed
    assert (out / "segment" / subject / "labels.nii.gz").is_file()
    assert main(args) == 2  # never overwrites an earlier demo


@pytest.mark.slow
@pytest.mark.timeout(900)  # the suite's own 15-minute limit: the demo (under 5 min on 2 cores) on one thread
def test_full_demo_meets_its_dice(tmp_path):
    """The real demo (under 5 minutes on 2 cores, benchmarks/bench_demo.py): lesion Dice >= 0.8 and
    consolidation Dice >= 0.3 on the generated test slices that hold it."""
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["dice"]["lesion (infection) Dice"] >= 0.8
    assert summary["dice"]["consolidation Dice, slices with it"] >= 0.3
