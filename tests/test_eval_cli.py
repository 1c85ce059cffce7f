"""`ssinfnet evaluate / compare / report` end to end: tiny untrained networks saved as training runs,
a paired PNG dataset on disk, one thread, a few seconds."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ssinfnet.cli import main
from ssinfnet.errors import InputError
from ssinfnet.models.registry import build_model
from ssinfnet.models.weights import save_model

SIZE = 32


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    data = root / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        shape = (36 + 4 * i, 40)  # sizes differ: predictions must come back at each image's size
        mask = np.zeros(shape, np.uint8)
        if i < 3:  # the last slice is healthy, so slice-level ROC is defined
            mask[5:15, 6:20] = 1
            mask[20:28, 22:34] = 2 if i % 2 else 0
        image = np.clip(60 + 120 * (mask > 0) + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(data / "images" / f"slice{i}.png")
        Image.fromarray(mask).save(data / "masks" / f"slice{i}.png")
    torch.manual_seed(0)
    for name, model_name, threshold in (("single_run", "unet", 0.3), ("multi_run", "multi_unet", None)):
        run = root / name
        run.mkdir()
        save_model(build_model(model_name, width=4), run / "model.safetensors")
        (run / "config.json").write_text(json.dumps({"data": {"size": SIZE}}))
        # The shape `ssinfnet train` writes: summary.json marks a finished run; the single stage's
        # validation record holds the chosen threshold.
        validation = {"val_dice": 0.1} if threshold is None else {"val_dice": 0.1, "threshold": threshold}
        (run / "summary.json").write_text(json.dumps({"stage": "single" if threshold else "multi", "best_epoch": 3,
                                                      "validation": validation}))
        if threshold is not None:
            (run / "metrics.jsonl").write_text(
                "".join(json.dumps({"epoch": e, "phase": "train", "loss": 1 / e, "val_dice": 0.05 * e}) + "\n"
                        for e in range(1, 4)))
    return root


def test_evaluate_compare_report(workspace, capsys):
    data, single, multi = workspace / "data", workspace / "single_run", workspace / "multi_run"
    first, second = workspace / "eval_a", workspace / "eval_b"
    assert main(["evaluate", "--data", str(data), "--single", str(single), "--multi", str(multi),
                 "--out", str(first)]) == 0
    assert main(["evaluate", "--data", str(data), "--single", str(single), "--multi", str(multi),
                 "--threshold", "0.6", "--no-progress", "--out", str(second)]) == 0
    a = json.loads((first / "summary.json").read_text())
    b = json.loads((second / "summary.json").read_text())
    assert (a["threshold"], a["threshold_source"]) == (0.3, "validation")
    assert (b["threshold"], b["threshold_source"]) == (0.6, "command line")
    assert a["task"] == "multi" and a["images"] == 4
    assert a["model"]["single"]["config"]["width"] == 4 and a["model"]["size"] == SIZE
    assert a["data"]["files"] == 8 and a["data"]["sha256"] == b["data"]["sha256"]
    assert set(a["metrics"]) >= {"background", "GGO", "consolidation", "Overall", "infection", "infnet"}

    comparison = workspace / "cmp"
    assert main(["compare", str(first), str(second), "--out", str(comparison)]) == 0
    assert "| Overall | f1 |" in capsys.readouterr().out
    report = workspace / "report.html"
    assert main(["report", str(first), str(second), str(comparison), str(single), "--out", str(report)]) == 0
    page = report.read_text()
    for heading in ("Evaluation: eval_a", "Comparison", "ROC curves", "Best, median and worst slices",
                    "Training run: single_run"):
        assert heading in page
    # Pixel and slice ROC, two galleries, training curves.
    assert page.count("data:image/png;base64,") == 5


def test_evaluate_refuses_a_folder_without_a_model(workspace):
    proc = subprocess.run(
        [sys.executable, "-m", "ssinfnet", "evaluate", "--data", str(workspace / "data"),
         "--single", str(workspace / "data"), "--out", str(workspace / "never")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "model.safetensors" in proc.stderr
    assert not (workspace / "never").exists()


@pytest.mark.realdata
def test_evaluate_on_the_real_test_split(shared_data, workspace, tmp_path):
    """The 48 COVID-SemiSeg test slices (sizes vary): every prediction is scored at its image's size."""
    out = tmp_path / "real"
    assert main(["evaluate", "--data", str(shared_data / "covid-semiseg"), "--single",
                 str(workspace / "single_run"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 48 and summary["data"]["split"] == "test"
    assert summary["metrics"]["infection"]["f1"]["n"] == 48
    assert 0.0 <= summary["auc"]["pixel"] <= 1.0


def test_threshold_and_size_come_from_the_model_record(tmp_path):
    from ssinfnet.evaluation.predict import load_model_under_test

    weights = tmp_path / "single.safetensors"
    save_model(build_model("unet", width=4), weights, extra={"size": 48, "validation": {"threshold": 0.35}})
    model = load_model_under_test(single=weights)
    assert (model.pipeline.threshold, model.threshold_source, model.pipeline.size) == (0.35, "validation", 48)
    bare = tmp_path / "bare.safetensors"
    save_model(build_model("unet", width=4), bare)
    model = load_model_under_test(single=bare, size=32)
    assert (model.pipeline.threshold, model.threshold_source) == (0.5, "default")
    with pytest.raises(InputError, match="input size"):
        load_model_under_test(single=bare)
    with pytest.raises(InputError, match="either"):
        load_model_under_test(single=weights, pipeline=tmp_path)
