"""Scoring in-memory predictions, writing an evaluation folder, and comparing two of them."""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from ssinfnet.data.sample import Sample, SampleMeta
from ssinfnet.errors import InputError
from ssinfnet.evaluation.compare import compare, markdown_table, paired_tests, write_comparison
from ssinfnet.evaluation.evaluate import Scorer, score_images, score_predictions, write_evaluation
from ssinfnet.evaluation.gallery import pick, read_gallery
from ssinfnet.core.metrics import binary_scores, multiclass_scores

SHAPE = (20, 28)


def make_samples(n=6, with_masks=True):
    """Slices with a GGO block and (on odd slices) a consolidation block; the last slice is healthy."""
    samples = []
    for i in range(n):
        mask = np.zeros(SHAPE, np.int64)
        if i < n - 1:
            mask[3:10, 4:12 + i] = 1
            if i % 2:
                mask[12:17, 15:22] = 2
        image = np.linspace(0, 1, SHAPE[0] * SHAPE[1], dtype=np.float32).reshape(SHAPE)
        meta = SampleMeta(source=f"/data/s{i}.png", id=f"s{i}", group=f"p{i // 2}", original_size=SHAPE,
                          label="COVID" if i < n - 1 else "NonCOVID")
        samples.append(Sample(image=image, mask=mask if with_masks else None, meta=meta))
    return samples


def noisy_predictions(samples, seed, quality):
    """Probability maps that separate lesion from background better as ``quality`` grows, and label
    maps derived from them (the true class where the probability passes 0.5)."""
    rng = np.random.default_rng(seed)
    probabilities, labels = [], []
    for sample in samples:
        truth = sample.mask > 0
        prob = np.clip(0.5 + quality * (truth - 0.5) + rng.normal(0, 0.3, SHAPE), 0, 1).astype(np.float32)
        probabilities.append(prob)
        labels.append(np.where(prob >= 0.5, sample.mask.clip(min=1), 0))
    return probabilities, labels


def test_single_stage_scores_match_the_metric_functions():
    samples = make_samples()
    probabilities, _ = noisy_predictions(samples, seed=0, quality=0.6)
    evaluation = score_images(samples, probabilities, threshold=0.4)
    assert evaluation.task == "single" and len(evaluation.rows) == len(samples)
    row = evaluation.rows[2]
    expected = binary_scores(samples[2].mask > 0, probabilities[2] >= 0.4)
    assert row["infection.f1"] == pytest.approx(expected["f1"])
    assert row["lesion_fraction"] == pytest.approx(np.mean(probabilities[2] >= 0.4))
    assert {"infnet.dice", "infnet.s_alpha", "infnet.e_phi", "infnet.mae"} <= set(row)
    assert "GGO.f1" not in row
    # The healthy slice with lesion predicted on it is a miss (empty-class rule): F1 0, recall undefined,
    # and its false-positive area beside.
    healthy = evaluation.rows[-1]
    assert np.mean(probabilities[-1] >= 0.4) > 0
    assert math.isnan(healthy["infection.recall"]) and healthy["infection.f1"] == 0.0
    assert healthy["infection.fp_area"] == pytest.approx(np.mean(probabilities[-1] >= 0.4))
    summary = evaluation.summary()
    assert summary["metrics"]["infection"]["recall"]["n"] == len(samples) - 1
    assert summary["metrics"]["infection"]["f1"]["n"] == len(samples)
    assert summary["metrics"]["infection"]["fp_area"]["n"] == 1
    assert summary["metrics"]["infection"]["f1"]["mean"] == pytest.approx(
        np.sum([r["infection.f1"] for r in evaluation.rows[:-1]]) / len(samples))
    assert set(evaluation.curves) == {"pixel", "slice"}
    assert 0.5 < evaluation.curves["pixel"].auc <= 1.0


def test_predictions_are_scored_as_they_arrive():
    """A generator of (probability, labels) pairs: each pair is scored before the next one is made, and the
    result is the one of the whole lists (rows, curves, gallery)."""
    samples = make_samples()
    probabilities, labels = noisy_predictions(samples, seed=3, quality=0.6)
    scorer = Scorer(samples, threshold=0.5, multi=True)
    made = []

    def stream():
        for index, pair in enumerate(zip(probabilities, labels)):
            assert len(scorer.rows) == index  # the previous prediction was scored before this one was made
            made.append(index)
            yield pair

    for prob, label_map in stream():
        scorer.add(prob, label_map)
    streamed = scorer.finish()
    whole = score_images(samples, probabilities, labels, threshold=0.5)
    assert json.dumps(streamed.rows) == json.dumps(whole.rows) and made == list(range(len(samples)))
    assert streamed.curves["pixel"].auc == whole.curves["pixel"].auc
    assert [(g.id, g.rank) for g in streamed.gallery] == [(g.id, g.rank) for g in whole.gallery]
    assert all((a.prediction == b.prediction).all() for a, b in zip(streamed.gallery, whole.gallery))
    generated = score_predictions(samples, iter(list(zip(probabilities, labels))), multi=True, threshold=0.5)
    assert json.dumps(generated.summary()) == json.dumps(whole.summary())


def test_one_prediction_per_sample_is_required():
    samples = make_samples(3)
    probabilities, _ = noisy_predictions(samples, seed=0, quality=0.6)
    with pytest.raises(ValueError, match="one prediction per sample"):
        score_images(samples, probabilities[:2])
    with pytest.raises(ValueError, match="one prediction per sample"):
        score_images(samples, probabilities + probabilities[:1])


def test_two_stage_adds_classes_and_overall():
    samples = make_samples()
    probabilities, labels = noisy_predictions(samples, seed=1, quality=0.7)
    evaluation = score_images(samples, probabilities, labels, threshold=0.5)
    row = evaluation.rows[1]
    expected = multiclass_scores(samples[1].mask, labels[1])
    for group in ("background", "GGO", "consolidation", "image_mean"):
        assert row[f"{group}.iou"] == pytest.approx(expected[group]["iou"])
    assert evaluation.gallery and evaluation.gallery[0].rank == "best"
    assert max(item.truth.max() for item in evaluation.gallery) == 2  # multi-class truth kept for overlays


def test_detection_from_slice_labels_without_masks():
    samples = make_samples(with_masks=False)
    # Predicted lesion fraction: large on COVID slices, zero on the NonCOVID one -> AUC 1.
    probabilities = [np.full(SHAPE, 0.9 if s.meta.label == "COVID" else 0.1, np.float32) for s in samples]
    evaluation = score_images(samples, probabilities, positive_label="COVID")
    assert evaluation.curves["detection"].auc == pytest.approx(1.0)
    assert evaluation.curves["detection"].positives == len(samples) - 1
    with pytest.raises(InputError, match="no slice is labeled"):
        score_images(samples, probabilities, positive_label="Pneumonia")
    with pytest.raises(InputError, match="no masks"):
        score_images(samples, probabilities)


def test_predictions_must_be_at_the_original_size():
    samples = make_samples(n=2)
    with pytest.raises(ValueError, match="original size"):
        score_images(samples, [np.zeros((10, 10), np.float32)] * 2)


def test_gallery_pick_best_median_worst_without_repeats():
    rows = [{"f": v} for v in (0.5, float("nan"), 0.9, 0.1, 0.7, 0.3)]
    picked = pick(rows, "f", per_rank=1)
    assert picked == [("best", 2), ("median", 0), ("worst", 3)]
    assert len(pick(rows[:2], "f", per_rank=2)) == 1  # one scored row: shown once


def write_two_evaluations(tmp_path):
    samples = make_samples()
    folders = []
    for name, quality in (("baseline", 0.5), ("better", 0.8)):
        probabilities, labels = noisy_predictions(samples, seed=2, quality=quality)
        evaluation = score_images(samples, probabilities, labels, threshold=0.5)
        provenance = {"threshold_source": "validation", "model": {"name": name}, "git_commit": None,
                      "data": {"path": "/data", "files": 12, "sha256": "0" * 64}}
        folders.append(write_evaluation(tmp_path / name, evaluation, provenance))
    return folders


def test_write_evaluation_folder(tmp_path):
    folder = write_two_evaluations(tmp_path)[0]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["kind"] == "evaluation" and summary["threshold_source"] == "validation"
    assert summary["metrics"]["image_mean"]["f1"]["n"] == 6
    with open(folder / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[-1]["infection.recall"] == ""  # NaN written as an empty cell
    assert set(json.loads((folder / "roc.json").read_text())) == {"pixel", "slice"}
    task, items = read_gallery(folder)
    assert task == "multi" and items and items[0].image.shape == SHAPE
    with pytest.raises(InputError, match="already exists"):
        write_evaluation(folder, score_images(make_samples(2), [np.zeros(SHAPE)] * 2), {})


def test_paired_tests_by_hand():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([2.0, 3.0, 5.0, 4.0])
    result = paired_tests(a, b)
    # Differences 1, 1, 2, 0: mean 1, sd sqrt(2/3), t = 1 / (sd / 2), 3 degrees of freedom.
    t = 1 / (math.sqrt(2 / 3) / 2)
    assert result["t_p"] == pytest.approx(2 * stats.t.sf(t, 3))
    assert result["mean_difference"] == pytest.approx(1.0)
    assert result["pairs"] == 4
    assert paired_tests(a, a.copy())["wilcoxon_p"] == 1.0
    with_nan = paired_tests(np.array([1.0, np.nan, 2.0]), np.array([1.5, 3.0, np.nan]))
    assert with_nan["pairs"] == 1 and math.isnan(with_nan["t_p"])


def test_compare_two_evaluations(tmp_path):
    baseline, better = write_two_evaluations(tmp_path)
    comparison = compare([baseline, better])
    assert comparison.models == ["baseline", "better"] and comparison.images == 6
    assert [r["group"] for r in comparison.rows[:4]] == ["GGO"] * 4  # the paper's Table III order
    row = next(r for r in comparison.rows if r["group"] == "image_mean" and r["metric"] == "f1")
    assert row["models"]["better"]["mean"] > row["models"]["baseline"]["mean"]
    # The same p-value as scipy's paired t-test on the two CSV columns.
    import pandas as pd

    a = pd.read_csv(baseline / "per_image.csv")["image_mean.f1"]
    b = pd.read_csv(better / "per_image.csv")["image_mean.f1"]
    assert row["tests"]["better"]["t_p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    table = markdown_table(comparison)
    assert "| Overall | f1 |" in table and "| image_mean | f1 |" in table and "Wilcoxon" in table
    out = write_comparison(tmp_path / "cmp", comparison)
    assert {p.name for p in out.iterdir()} == {"comparison.json", "comparison.csv", "comparison.md"}


def test_compare_refuses_different_image_sets(tmp_path):
    baseline, _ = write_two_evaluations(tmp_path)
    samples = make_samples(n=4)
    probabilities, _ = noisy_predictions(samples, seed=3, quality=0.5)
    other = write_evaluation(tmp_path / "other", score_images(samples, probabilities), {})
    with pytest.raises(InputError, match="image set differs"):
        compare([baseline, other])


def test_data_fingerprint_follows_file_contents(tmp_path):
    from ssinfnet.core.provenance import content_fingerprint

    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(b"mask one")
    (tmp_path / "b.png").write_bytes(b"image")
    first = content_fingerprint(tmp_path)
    assert first["files"] == 2 and first == content_fingerprint(tmp_path)
    (tmp_path / "masks" / "a.png").write_bytes(b"mask two")  # same name and size, other content
    assert content_fingerprint(tmp_path)["sha256"] != first["sha256"]
