"""Cross-validation (issue 15): fold runs, out-of-fold scoring, fold ensembles with flip TTA, pseudo-labels.

Hand-made networks pin the ensemble's arithmetic; a tiny generated cohort runs the verbs end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ssinfnet.cli import main
from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.data.pool import split_pool
from ssinfnet.data.readers import read_paired_folder, read_semiseg
from ssinfnet.data.splits import kfold
from ssinfnet.errors import InputError
from ssinfnet.inference.predictor import Pipeline, load_pipeline, save_pipeline
from ssinfnet.models import build_model
from ssinfnet.models.ensemble import Ensemble
from ssinfnet.workflows.crossval import crossval


class Ramp(nn.Module):
    """A "network" whose logit is ``scale`` x the column position (not mirror-symmetric)."""

    in_channels, num_classes, main_output, head_mode = 1, 1, "out", "segmentation"

    def __init__(self, scale: float):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x):
        columns = torch.linspace(-1, 1, x.shape[-1]).expand_as(x[:, :1])
        return {"out": self.scale * columns}


def test_ensemble_averages_probabilities_not_logits():
    x = torch.zeros(1, 1, 4, 6)
    a, b = Ramp(1.0), Ramp(3.0)
    expected = (torch.sigmoid(a(x)["out"]) + torch.sigmoid(b(x)["out"])) / 2
    got = torch.sigmoid(Ensemble([a, b])(x)["out"])
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, torch.sigmoid((a(x)["out"] + b(x)["out"]) / 2), atol=1e-3)


def test_flip_tta_mirrors_the_prediction_back():
    x = torch.zeros(1, 1, 4, 6)
    ramp = Ramp(2.0)
    # An odd map (a ramp through 0) and its mirrored-back mirror image cancel: the mean is 0.5.
    assert torch.allclose(torch.sigmoid(Ensemble([ramp], flip=True)(x)["out"]), torch.full_like(x, 0.5), atol=1e-5)
    assert not torch.allclose(torch.sigmoid(Ensemble([ramp])(x)["out"]), torch.full_like(x, 0.5), atol=1e-2)


def test_ensemble_refuses_members_that_do_not_match():
    with pytest.raises(ValueError, match="same channels"):
        Ensemble([build_model("unet", width=4), build_model("multi_unet", width=4)])
    canonical = build_model("unet", width=4)
    canonical.input_contrast = "canonical"
    with pytest.raises(ValueError, match="input contrasts"):
        Ensemble([build_model("unet", width=4), canonical])


def test_ensemble_pipeline_round_trip_and_single_files(tmp_path):
    torch.manual_seed(0)
    members = [build_model("unet", width=4) for _ in range(3)]
    pipeline = Pipeline(Ensemble(members, flip=True), size=32, threshold=0.4, device="cpu")
    save_pipeline(tmp_path / "ens", pipeline)
    info = json.loads((tmp_path / "ens" / "pipeline.json").read_text())
    assert info["networks"]["single"] == {"files": [f"single-{i}.safetensors" for i in range(3)], "flip": True}
    loaded = load_pipeline(tmp_path / "ens", device="cpu")
    assert isinstance(loaded.single, Ensemble) and loaded.single.flip and len(loaded.single.members) == 3
    image = np.random.default_rng(0).random((40, 36), dtype=np.float32)
    expected = next(pipeline.predict([image])).infection_prob
    assert np.allclose(next(loaded.predict([image])).infection_prob, expected, atol=1e-5)
    # A one-network pipeline keeps the plain layout (and folders without "networks" still load).
    save_pipeline(tmp_path / "one", Pipeline(members[0], size=32, device="cpu"))
    info = json.loads((tmp_path / "one" / "pipeline.json").read_text())
    del info["networks"]
    (tmp_path / "one" / "pipeline.json").write_text(json.dumps(info))
    assert not isinstance(load_pipeline(tmp_path / "one").single, Ensemble)


TINY = ["data.size=32", "single.epochs=1", "single.batch_size=4", "multi.epochs=1", "multi.batch_size=4",
        "data.folds=3", "model={name: unet, width: 4}", "multi_model={name: multi_unet, width: 4}"]


def sets(*extra):
    return ["--preset", "demo", "--no-progress"] + [a for s in [*TINY, *extra] for a in ("--set", s)]


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    """A tiny cohort and its 3 single-stage fold runs."""
    root = tmp_path_factory.mktemp("cv")
    cohort = make_demo_cohort(root / "cohort", n_subjects=10, seed=0, size=48, slices_per_subject=3)
    runs = []
    for k in range(3):
        runs.append(root / f"single-f{k}")
        assert main(["train", "single", "--data", str(cohort / "semiseg"), "--out", str(runs[-1]),
                     *sets(f"data.fold={k}")]) == 0
    return cohort, runs


def test_fold_runs_validate_on_their_fold_and_crossval_sees_every_slice_once(folds, tmp_path):
    cohort, runs = folds
    samples = read_semiseg(cohort / "semiseg", "train")
    expected = kfold(samples, 3, 0)
    for k, run in enumerate(runs):
        summary = json.loads((run / "summary.json").read_text())
        assert summary["fold"] == k and summary["val_slices"] == len(expected[k][1])
    result = crossval(runs)
    assert result["slices"] == len(samples) and result["folds_done"] == [0, 1, 2] and "warning" not in result
    assert result["scoring_rule"] == result["plain"]["scoring_rule"] == "paper/2"  # the rule evaluate scores with
    assert result["threshold"] == (result["flip"] if result["flip_tta"] else result["plain"])["threshold"]
    assert "only folds [0, 1]" in crossval(runs[:2])["warning"]
    with pytest.raises(InputError, match="second run of fold 0"):
        crossval([runs[0], runs[0]])


def test_crossval_scores_exports_at_the_clean_threshold(folds, tmp_path, monkeypatch, capsys):
    """An export that changes nothing loses nothing; every loss is clean minus the export's score; the
    export with the largest loss is named; an unknown one is refused."""
    from ssinfnet.data import augment

    _, runs = folds
    monkeypatch.setitem(augment.FIXED_EXPORTS, "unchanged", lambda x, m: (x, m))
    monkeypatch.setitem(augment.FIXED_EXPORTS, "blank", lambda x, m: (np.zeros_like(x), m))
    clean = crossval(runs)
    out = tmp_path / "cv.json"
    assert main(["crossval", *map(str, runs), "--exports", "unchanged", "blank", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    for view in ("plain", "flip"):
        assert result[view]["score"] == pytest.approx(clean[view]["score"])
        exports = result[view]["exports"]
        assert exports["unchanged"]["score"] == pytest.approx(clean[view]["score"], abs=1e-6)
        assert exports["unchanged"]["loss"] == pytest.approx(0.0, abs=1e-6)
        assert exports["blank"]["loss"] == pytest.approx(clean[view]["score"] - exports["blank"]["score"])
    chosen = result["flip" if result["flip_tta"] else "plain"]["exports"]
    worst = max(chosen, key=lambda name: chosen[name]["loss"])
    assert result["worst_export"] == worst and result["worst_export_loss"] == chosen[worst]["loss"]
    assert f"worst export {worst}" in printed
    with pytest.raises(InputError, match="unknown export 'sepia'"):
        crossval(runs, ["sepia"])


def test_an_exports_single_stage_score_uses_the_clean_threshold():
    from ssinfnet.workflows.crossval import _export_score

    mask = np.zeros((4, 4), np.int64)
    mask[:, :2] = 1
    prob = np.where(mask > 0, 0.6, 0.1)  # right at 0.5, all wrong at 0.7
    assert _export_score("single", [prob], [mask], {"threshold": 0.5, "score": 1.0}) == {"score": 1.0, "loss": 0.0}
    assert _export_score("single", [prob], [mask], {"threshold": 0.7, "score": 0.9}) == {"score": 0.0, "loss": 0.9}


def test_fold_must_exist_before_anything_is_written(folds, tmp_path):
    cohort, _ = folds
    assert main(["train", "single", "--data", str(cohort / "semiseg"), "--out", str(tmp_path / "bad"),
                 *sets("data.fold=3")]) == 2
    assert not (tmp_path / "bad").exists()


def test_export_of_an_ensemble_needs_an_out_of_fold_threshold(folds, tmp_path):
    _, runs = folds
    args = ["export", "--single", *map(str, runs), "--out", str(tmp_path / "ens")]
    assert main(args) == 2 and not (tmp_path / "ens").exists()
    assert main(["crossval", *map(str, runs), "--out", str(tmp_path / "cv.json")]) == 0
    assert main([*args, "--threshold-from", str(tmp_path / "cv.json"), "--flip-tta"]) == 0
    pipeline = load_pipeline(tmp_path / "ens")
    assert len(pipeline.single.members) == 3 and pipeline.single.flip
    assert pipeline.threshold == json.loads((tmp_path / "cv.json").read_text())["flip"]["threshold"]
    card = (tmp_path / "ens" / "MODEL_CARD.md").read_text()
    assert "average of 3 fold models (folds 0, 1, 2)" in card and "flip test-time augmentation" in card


def test_pseudo_labels_come_from_covid_training_pool_slices_and_train(folds, tmp_path):
    cohort, runs = folds
    pool = cohort / "unlabeled"
    assert main(["train", "multi", "--data", str(cohort / "semiseg"), "--prior-from", str(runs[0]),
                 "--out", str(tmp_path / "multi"), *sets("data.fold=0")]) == 0
    assert main(["export", "--single", str(runs[0]), "--multi", str(tmp_path / "multi"),
                 "--out", str(tmp_path / "model")]) == 0
    assert main(["pseudolabel", str(pool), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "pseudo"),
                 "--count", "50", "--heldout-fraction", "0.5", "--no-progress"]) == 0
    info = json.loads((tmp_path / "pseudo" / "pseudolabels.json").read_text())
    train, heldout = split_pool(pool, 0.5)
    allowed = {p.path.name for p in train if p.label == "COVID"}
    assert info["count"] == len(allowed) == info["candidates"] and set(info["files"]) <= allowed  # all there are
    assert heldout and not set(info["files"]) & {p.path.name for p in heldout}
    samples = read_paired_folder(tmp_path / "pseudo")
    assert len(samples) == len(allowed) and all(set(np.unique(s.mask)) <= {0, 1, 2} for s in samples)
    run = tmp_path / "semi"
    assert main(["train", "single", "--data", str(cohort / "semiseg"), "--pseudo", str(tmp_path / "pseudo"),
                 "--out", str(run), *sets("data.fold=0")]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pseudo_slices"] == len(allowed)
    assert summary["train_slices"] == json.loads((runs[0] / "summary.json").read_text())["train_slices"]


def test_extra_clahe_share_applies_clahe_and_zero_keeps_the_old_stream():
    from ssinfnet.data.augment import ExportAugmentation, clahe

    image = np.random.default_rng(1).random((32, 32), dtype=np.float32)
    mask = np.zeros((32, 32), dtype=np.int64)
    always = ExportAugmentation(0, probability=0.0, clahe_probability=1.0)
    out, _ = always(image, mask)
    assert not np.allclose(out, image) and np.isclose(out.mean(), clahe(image, 5.0).mean(), atol=0.1)
    plain, zero = ExportAugmentation(3), ExportAugmentation(3, clahe_probability=0.0)
    for _ in range(5):
        assert np.array_equal(plain(image, mask)[0], zero(image, mask)[0])


def test_crossval_chooses_on_what_segment_gives(folds, monkeypatch):
    """The out-of-fold probabilities are segment's: predicted through predict_scan, 0 outside its lung mask."""
    from ssinfnet.core.runs import finished_model
    from ssinfnet.evaluation.infnet_metrics import infnet_dice
    from ssinfnet.inference.segment import image_scan, predict_scan
    from ssinfnet.models import load_model
    from ssinfnet.training import objectives
    from ssinfnet.training.inputs import read_labeled
    from ssinfnet.training.supervised import train_val_for

    cohort, runs = folds
    seen = []
    real = objectives.single_validation
    monkeypatch.setattr(objectives, "single_validation", lambda probs, masks: seen.append(probs) or real(probs, masks))
    result = crossval(runs[:1])
    config = json.loads((runs[0] / "config.json").read_text())
    _, val = train_val_for(read_labeled([str(cohort / "semiseg")]), config["data"], int(config["seed"]))
    pipeline = Pipeline(load_model(finished_model(runs[0])), size=32, bf16=bool(config.get("bf16")))
    plain = seen[0]  # the first view scored is the plain one
    assert len(plain) == len(val)
    for sample, prob in zip(val, plain):
        expected = predict_scan(pipeline, image_scan(sample.image, sample.meta.id, sample.meta.source),
                                probabilities="float32")
        np.testing.assert_array_equal(prob, expected.per_sample(expected.probabilities["infection"])[0])
        assert not prob[~expected.per_sample(expected.lung)[0]].any()
    # the Inf-Net-protocol endpoint scores these same maps against the masks
    assert result["plain"]["infnet_per_image"] == [infnet_dice(p, s.mask > 0) for p, s in zip(plain, val)]


def test_crossval_per_image_scores_average_to_the_score_with_a_ci(folds):
    _, runs = folds
    result = crossval(runs)
    chosen = result["flip" if result["flip_tta"] else "plain"]
    assert len(chosen["per_image"]) == result["slices"] == len(result["images"])
    assert np.nanmean(chosen["per_image"]) == pytest.approx(result["score"])
    assert result["ci"]["mean"] == pytest.approx(result["score"]) and result["ci"]["n"] <= result["slices"]
    assert result["ci"]["ci_low"] <= result["score"] <= result["ci"]["ci_high"]
    assert len(chosen["infnet_per_image"]) == result["slices"]
    assert np.mean(chosen["infnet_per_image"]) == pytest.approx(chosen["infnet_dice"])
