"""Metric values checked against hand-computed expectations and a published reference implementation."""

import math

import numpy as np
import pytest

from ssinfnet.evaluation.infnet_metrics import (
    infnet_dice,
    enhanced_alignment,
    infnet_scores,
    structure_measure,
    threshold_curves,
    to_levels,
)
from ssinfnet.core.metrics import (
    BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, IMAGE_MEAN, binary_scores, ci_record, class_scores, confusion_counts,
    mean_ci, multiclass_scores, paper_overall,
)
from ssinfnet.evaluation.roc import PIXEL_BINS, PixelRoc, roc, score_bins

nan = float("nan")


def assert_scores(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value), key


def test_confusion_counts():
    counts = confusion_counts(np.array([[1, 1, 0], [0, 0, 0]]), np.array([[1, 0, 1], [0, 0, 0]]))
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (1, 1, 1, 3)


@pytest.mark.parametrize(
    "truth, prediction, expected",
    [
        # tp 1, fp 1, fn 1: F1 = 2/4, IoU = 1/3.
        ([1, 1, 0, 0], [1, 0, 1, 0], {"f1": 0.5, "iou": 1 / 3, "recall": 0.5, "precision": 0.5}),
        # Empty truth, something predicted: recall undefined, the rest 0.
        ([0, 0, 0, 0], [1, 1, 0, 0], {"f1": 0.0, "iou": 0.0, "recall": nan, "precision": 0.0}),
        # Lesion missed entirely: precision undefined.
        ([0, 1, 1, 0], [0, 0, 0, 0], {"f1": 0.0, "iou": 0.0, "recall": 0.0, "precision": nan}),
        # Both empty: every denominator is zero.
        ([0, 0, 0, 0], [0, 0, 0, 0], {"f1": nan, "iou": nan, "recall": nan, "precision": nan}),
    ],
)
def test_binary_scores(truth, prediction, expected):
    assert_scores(binary_scores(np.array(truth), np.array(prediction)), expected)


def test_multiclass_scores_and_image_mean():
    truth = np.array([[0, 1, 1], [2, 2, 0]])
    prediction = np.array([[0, 1, 2], [2, 0, 0]])
    scores = multiclass_scores(truth, prediction)
    present = {"fp_area": nan}  # every class is in the truth: no false-positive area
    assert_scores(scores["background"], {"f1": 0.8, "iou": 2 / 3, "recall": 1.0, "precision": 2 / 3, **present})
    assert_scores(scores["GGO"], {"f1": 2 / 3, "iou": 0.5, "recall": 0.5, "precision": 1.0, **present})
    assert_scores(scores["consolidation"], {"f1": 0.5, "iou": 1 / 3, "recall": 0.5, "precision": 0.5, **present})
    assert scores[IMAGE_MEAN]["f1"] == pytest.approx((0.8 + 2 / 3 + 0.5) / 3)
    assert scores[IMAGE_MEAN]["precision"] == pytest.approx((2 / 3 + 1.0 + 0.5) / 3)


def test_image_mean_counts_a_predicted_class_the_truth_lacks_as_a_miss_and_skips_one_both_lack():
    truth = np.array([[0, 1], [1, 1]])
    prediction = np.array([[0, 1], [0, 2]])  # one consolidation pixel predicted where the truth has none
    scores = multiclass_scores(truth, prediction)
    assert_scores(scores["consolidation"], {"f1": 0.0, "iou": 0.0, "recall": nan, "precision": 0.0, "fp_area": 0.25})
    # background: tp 1, fp 1 -> 2/3; GGO: tp 1, fn 2 -> 2/4; consolidation: a miss, 0.
    assert scores[IMAGE_MEAN]["f1"] == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    both_lack = multiclass_scores(truth, np.array([[0, 1], [0, 1]]))  # no consolidation in truth or prediction
    assert_scores(both_lack["consolidation"], {"f1": nan, "iou": nan, "recall": nan, "precision": nan, "fp_area": 0.0})
    assert both_lack[IMAGE_MEAN]["f1"] == pytest.approx((2 / 3 + 0.8) / 2)  # GGO: tp 2, fn 1 -> 4/5


@pytest.mark.parametrize(
    "truth, prediction, expected",
    [
        # Both empty: the class is undefined on the image; nothing predicted, so no false-positive area.
        ([0, 0, 0, 0], [0, 0, 0, 0], {"f1": nan, "iou": nan, "recall": nan, "precision": nan, "fp_area": 0.0}),
        # Truth empty, one pixel predicted: a miss, F1 = IoU = precision = 0; fp_area 1/4.
        ([0, 0, 0, 0], [1, 0, 0, 0], {"f1": 0.0, "iou": 0.0, "recall": nan, "precision": 0.0, "fp_area": 0.25}),
        # Lesion missed entirely: F1 0, precision undefined, no false-positive area (the truth holds it).
        ([0, 1, 1, 0], [0, 0, 0, 0], {"f1": 0.0, "iou": 0.0, "recall": 0.0, "precision": nan, "fp_area": nan}),
        # tp 1, fp 1, fn 1.
        ([1, 1, 0, 0], [1, 0, 1, 0], {"f1": 0.5, "iou": 1 / 3, "recall": 0.5, "precision": 0.5, "fp_area": nan}),
    ],
)
def test_empty_class_rule_by_hand(truth, prediction, expected):
    assert_scores(class_scores(np.array(truth), np.array(prediction)), expected)


def test_the_rule_is_tagged_and_old_tags_keep_their_own_text():
    from ssinfnet.core.metrics import (
        EMPTY_CLASS_RULE, LEGACY_RULE, PRESENT_ONLY_RULE, SCORING_RULE, rule_text, summary_note,
    )

    assert SCORING_RULE == "paper/2" and rule_text(SCORING_RULE) == EMPTY_CLASS_RULE
    assert rule_text("present-only/1") == PRESENT_ONLY_RULE != EMPTY_CLASS_RULE
    assert rule_text(None) == rule_text("legacy") == LEGACY_RULE
    assert "does not know (other/9)" in rule_text("other/9")
    assert summary_note({"scoring_rule": "present-only/1"}) == PRESENT_ONLY_RULE  # old summaries: no CI record
    clustered_note = summary_note({"scoring_rule": SCORING_RULE, "ci": {
        "method": "cluster bootstrap", "clusters": 3, "images": 6, "resamples": 2000}})
    assert clustered_note.startswith(EMPTY_CLASS_RULE) and "cluster bootstrap over 3 groups" in clustered_note


def test_paper_overall_is_the_mean_of_the_class_means_on_three_hand_made_images():
    """The paper's Table III Overall: mean of the three class means, not the mean of per-image means."""
    from ssinfnet.evaluation.evaluate import score_images
    from ssinfnet.data.sample import Sample, SampleMeta

    truths = [np.array([[0, 1], [1, 2]]), np.array([[0, 0], [1, 1]]), np.array([[0, 0], [0, 2]])]
    predictions = [np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 1]]), np.array([[0, 0], [0, 2]])]
    # F1 per image: background 1, 1, 1 (image 2: tp 1, fn 1 -> 2/3); GGO 4/5, 4/5, absent;
    # consolidation 0, absent, 1.
    background = [1.0, 2 / 3, 1.0]
    ggo = [0.8, 0.8]
    consolidation = [0.0, 1.0]
    samples = [Sample(image=np.zeros((2, 2), np.float32), mask=t,
                      meta=SampleMeta(source=f"{i}.png", id=str(i), group=str(i), original_size=(2, 2)))
               for i, t in enumerate(truths)]
    probabilities = [(p > 0).astype(np.float32) for p in predictions]
    summary = score_images(samples, probabilities, predictions, threshold=0.5).summary()["metrics"]
    class_means = {"background": np.mean(background), "GGO": np.mean(ggo), "consolidation": np.mean(consolidation)}
    for name, mean in class_means.items():
        assert summary[name]["f1"]["mean"] == pytest.approx(mean), name
    expected = (np.mean(background) + np.mean(ggo) + np.mean(consolidation)) / 3
    assert summary["Overall"]["f1"]["mean"] == pytest.approx(expected)
    assert paper_overall(class_means) == pytest.approx(expected)
    per_image = np.mean([np.mean([1.0, 0.8, 0.0]), np.mean([2 / 3, 0.8]), np.mean([1.0, 1.0])])
    assert summary["image_mean"]["f1"]["mean"] == pytest.approx(per_image)
    assert abs(expected - per_image) > 0.01  # the two definitions differ on this example
    assert summary["consolidation"]["fp_area"]["n"] == 1  # image 1 has no consolidation: area reported


def test_mean_ci_skips_nan():
    summary = mean_ci([1.0, 2.0, 3.0, nan])
    assert summary.n == 3
    assert summary.mean == pytest.approx(2.0)
    assert summary.ci95 == pytest.approx(1.96 * 1.0 / math.sqrt(3))
    assert (summary.ci_low, summary.ci_high) == pytest.approx((2 - summary.ci95, 2 + summary.ci95))
    assert mean_ci([nan]).n == 0 and math.isnan(mean_ci([]).mean)


def test_singleton_groups_keep_the_normal_interval():
    values = [0.2, 0.5, nan, 0.9]
    assert mean_ci(values, ["a", "b", "c", "d"]) == mean_ci(values)
    assert "clusters" not in mean_ci(values, ["a", "b", "c", "d"]).as_dict()
    assert ci_record(["a", "b", "c"]) == {"method": "normal", "unit": "image", "images": 3,
                                          "interval": "mean ± 1.96 SE"}


def test_cluster_bootstrap_of_two_groups_by_hand():
    """Group A holds two images scoring 0, group B one scoring 1 (a fourth image, in C, has no value).
    Resampling two groups gives AA (mean 0, probability 1/4), AB (1/3, 1/2) or BB (1, 1/4): the 2.5th
    and 97.5th percentiles of 2000 resamples are 0 and 1, whatever the seed, while the per-image normal
    interval would be 1/3 +- 1.96 * 0.577 / sqrt(3)."""
    summary = mean_ci([0.0, 0.0, 1.0, nan], ["A", "A", "B", "C"])
    assert (summary.mean, summary.n, summary.clusters) == (pytest.approx(1 / 3), 3, 2)
    assert (summary.ci_low, summary.ci_high, summary.ci95) == (0.0, 1.0, 0.5)
    assert summary.as_dict()["clusters"] == 2
    assert ci_record(["A", "A", "B", "C"]) == {
        "method": "cluster bootstrap", "unit": "group", "clusters": 3, "images": 4,
        "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "interval": "percentile 2.5-97.5"}
    one_group = mean_ci([0.2, 0.4], ["A", "A"])  # one cluster: no interval
    assert one_group.mean == pytest.approx(0.3) and math.isnan(one_group.ci_low) and math.isnan(one_group.ci95)


def brute_force_cluster_ci(values, groups):
    """The cluster bootstrap written out: the same seeded draws of group indices (groups in sorted order),
    each resample's images listed one by one and averaged, then the percentile interval."""
    values, groups = np.asarray(values, float), np.asarray(groups)
    names = sorted(set(groups[~np.isnan(values)]))
    members = {name: [v for v, g in zip(values, groups) if g == name and not np.isnan(v)] for name in names}
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(names), size=(BOOTSTRAP_RESAMPLES, len(names)))
    means = []
    for draw in draws:
        images = [v for index in draw for v in members[names[index]]]
        means.append(sum(images) / len(images))
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_cluster_bootstrap_matches_a_brute_force_computation():
    rng = np.random.default_rng(5)
    groups = [f"scan{rng.integers(0, 9)}" for _ in range(40)]
    values = rng.random(40)
    values[[3, 17]] = nan
    summary = mean_ci(values, groups)
    low, high = brute_force_cluster_ci(values, groups)
    assert (summary.ci_low, summary.ci_high) == pytest.approx((low, high), abs=1e-12)
    assert summary.mean == pytest.approx(np.nanmean(values)) and summary.n == 38
    assert low < summary.mean < high and summary.ci95 == pytest.approx((high - low) / 2)


def test_infnet_threshold_averaged_scores_by_hand():
    truth = np.array([[1, 1, 0, 0]])
    # Levels 255, 128, 128, 0: thresholds j = 0..126 keep only the first pixel (Dice 2/3),
    # j = 127..254 keep three (Dice 4/5, specificity 1/2), j = 255 keeps all four (Dice 2/3, spec 0).
    scores = infnet_scores(np.array([[1.0, 0.5, 0.5, 0.0]]), truth)
    assert scores["dice"] == pytest.approx((128 * 2 / 3 + 128 * 0.8) / 256)
    assert scores["sensitivity"] == pytest.approx((127 * 0.5 + 129 * 1.0) / 256)
    assert scores["specificity"] == pytest.approx((127 * 1.0 + 128 * 0.5) / 256)
    assert scores["mae"] == pytest.approx(0.25)
    assert infnet_dice(np.array([[1.0, 0.5, 0.5, 0.0]]), truth) == scores["dice"]


def test_infnet_dice_is_zero_without_lesion_as_in_the_matlab_code():
    curves = threshold_curves(to_levels(np.array([[0.2, 0.9, 0.1]])), np.zeros((1, 3), bool))
    assert not curves["dice"].any() and not curves["sensitivity"].any() and not curves["specificity"].any()


def test_to_levels_stretches_to_full_range_but_keeps_constant_maps():
    assert to_levels(np.array([0.2, 0.6])).tolist() == [0, 255]
    assert to_levels(np.array([0.5, 0.5])).tolist() == [128, 128]


def test_s_alpha_by_hand():
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    # Perfect map: object and region terms are 1.
    assert structure_measure(truth.astype(float), truth) == pytest.approx(1.0)
    # Empty map: object term = background share 3/4 (lesion term 0); region term: MATLAB's centroid
    # is (X, Y) = (round(1.5), round(1.5)) = (2, 2), so the lesion quadrant is all-lesion and the
    # other three all-background: each quadrant's SSIM is 0/0 -> 1. S = 0.5*0.75 + 0.5*1.
    assert structure_measure(np.zeros((4, 4)), truth) == pytest.approx(0.875)
    # Without lesion, S = 1 - mean prediction.
    assert structure_measure(np.full((4, 4), 0.25), np.zeros((4, 4), bool)) == pytest.approx(0.75)


def test_e_phi_by_hand():
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    # A constant prediction aligns with nothing: every pixel gets (0 + 1)^2 / 4; divided by N - 1.
    assert infnet_scores(np.zeros((4, 4)), truth)["e_phi"] == pytest.approx(16 * 0.25 / 15)
    # A perfect binary map: every pixel scores 1, so 16 / 15 (the MATLAB code divides by N - 1).
    assert float(enhanced_alignment(4, 0, 0, 12)) == pytest.approx(16 / 15)
    # Without lesion: the matrix is 1 - prediction, so the count of true negatives.
    assert float(enhanced_alignment(0, 3, 0, 13)) == pytest.approx(13 / 15)


def test_infnet_scores_reproduce_py_sod_metrics():
    # Reference values from py_sod_metrics 1.6.2 (lartpang/PySODMetrics: Smeasure, Emeasure curve
    # mean, MAE) on this fixed map saved as 8-bit levels.
    truth = np.zeros((12, 16), bool)
    truth[3:9, 4:12] = True
    truth[9, 4] = True
    index = np.arange(12 * 16).reshape(12, 16)
    probability = (index % 7) / 6 * 0.5 + 0.5 * truth
    scores = infnet_scores(probability, truth)
    assert scores["s_alpha"] == pytest.approx(0.7658696323630207, abs=1e-12)
    assert scores["e_phi"] == pytest.approx(0.606462114284084, abs=1e-12)
    assert scores["mae"] == pytest.approx(0.2472426470588235, abs=1e-12)


def test_roc_auc_by_hand():
    result = roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert result.auc == pytest.approx(0.75)
    assert (result.positives, result.negatives) == (2, 2)
    assert result.fpr[0] == 0 and result.tpr[-1] == 1
    assert roc([1, 1], [0.2, 0.3]) is None


def pooled_roc(truths, probabilities):
    pixels = PixelRoc()
    for truth, probability in zip(truths, probabilities):
        pixels.add(truth, probability)
    return pixels.result()


def test_pixel_roc_pools_images():
    truths = [np.array([[0, 1]]), np.array([[2, 0]])]
    probabilities = [np.array([[0.1, 0.9]]), np.array([[0.8, 0.2]])]
    assert pooled_roc(truths, probabilities).auc == pytest.approx(1.0)
    assert pooled_roc([np.zeros((2, 2))], [np.ones((2, 2))]) is None


def test_score_bins_keep_the_order_of_scores_down_to_float_saturation():
    scores = np.sort(np.concatenate([
        [-0.0, 0.0, 1e-38, 1e-9, 0.49999997, 0.5, 0.50000006, 1 - 6e-8, 1.0],
        np.random.default_rng(1).random(10000)])).astype(np.float32)
    bins = score_bins(scores)
    assert bins.min() >= 0 and bins.max() < PIXEL_BINS and (np.diff(bins) >= 0).all()
    assert len(set(score_bins(np.float32([1e-9, 1e-8, 1 - 1e-6, 1 - 1e-7])))) == 4  # confident maps stay apart


@pytest.mark.parametrize("sharpness", [0.3, 1.0, 4.0, 10.0])
def test_pixel_roc_matches_the_exact_auc(sharpness):
    """Histogram AUC against scikit-learn's exact one on random maps, from soft to saturated probabilities."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(int(sharpness * 10))
    truths = [rng.random((64, 64)) < 0.15 for _ in range(12)]
    probabilities = [(1 / (1 + np.exp(-sharpness * (3 * rng.normal(size=t.shape) + 2 * t)))).astype(np.float32)
                     for t in truths]
    exact = roc_auc_score(np.concatenate([t.ravel() for t in truths]),
                          np.concatenate([p.ravel() for p in probabilities]).astype(np.float64))
    curve = pooled_roc(truths, probabilities)
    assert curve.auc == pytest.approx(exact, abs=1e-4)
    assert curve.fpr[0] == curve.tpr[0] == 0 and curve.fpr[-1] == curve.tpr[-1] == 1


def crafted_samples(truths):
    from ssinfnet.data.sample import Sample, SampleMeta

    return [Sample(image=np.zeros(t.shape, np.float32), mask=t,
                   meta=SampleMeta(source=f"{i}.png", id=str(i), group=str(i), original_size=t.shape))
            for i, t in enumerate(truths)]


def test_training_validation_scores_the_single_stage_as_evaluation_does():
    """One rule in both places: on a crafted batch, training's validation Dice equals evaluation's mean
    infection F1, and both equal the hand value of the paper's rule (present-only would give 0.75, counting
    an image both lack as 1 would give 0.625)."""
    from ssinfnet.evaluation.evaluate import score_images
    from ssinfnet.training.objectives import mean_dice, single_validation

    truths = [np.array([[1, 1, 0, 0], [1, 1, 0, 0]]),  # tp 2, fp 2, fn 2 -> F1 1/2
              np.zeros((2, 4), np.int64),                # nothing to find, one pixel predicted -> a miss, 0
              np.zeros((2, 4), np.int64),                # nothing to find, nothing predicted -> undefined
              np.array([[0, 0, 0, 2], [0, 0, 0, 2]])]    # found exactly -> 1
    predicted = [np.array([[1, 0, 1, 0], [1, 0, 1, 0]]), np.array([[0, 0, 0, 0], [0, 1, 0, 0]]),
                 np.zeros((2, 4)), np.array([[0, 0, 0, 1], [0, 0, 0, 1]])]
    probs = [np.where(p > 0, 0.9, 0.1).astype(np.float32) for p in predicted]
    evaluated = score_images(crafted_samples(truths), probs, threshold=0.5).summary()["metrics"]["infection"]["f1"]
    assert evaluated["mean"] == pytest.approx(0.5) and evaluated["n"] == 3
    assert mean_dice(probs, truths, 0.5) == evaluated["mean"]
    assert single_validation(probs, truths)["val_dice_at_0.5"] == evaluated["mean"]
    assert single_validation(probs, truths)["scoring_rule"] == "paper/2"


def test_training_validation_scores_the_classes_as_evaluation_does():
    """The multi stage: training's per-class validation Dice equals evaluation's class means on the same
    label maps (image 1 predicts consolidation its truth lacks: a miss; image 2 lacks GGO and consolidation in
    both: undefined there)."""
    from ssinfnet.evaluation.evaluate import score_images
    from ssinfnet.training.objectives import multi_validation

    truths = [np.array([[0, 1], [1, 2]]), np.array([[0, 0], [1, 1]]), np.zeros((2, 2), np.int64)]
    labels = [np.array([[0, 1], [2, 2]]), np.array([[2, 0], [1, 1]]), np.zeros((2, 2), np.int64)]
    # Per image F1: GGO 2/3, 1, NaN; consolidation 2/3, 0, NaN; background 1, 2/3, 1.
    expected = {"GGO": 5 / 6, "consolidation": 1 / 3, "background": 8 / 9}
    class_probs = [np.stack([np.where(l == c, 0.8, 0.1) for c in range(3)]).astype(np.float32) for l in labels]
    infection = [1 - p[0] for p in class_probs]
    metrics = score_images(crafted_samples(truths), infection, labels, threshold=0.5).summary()["metrics"]
    validation = multi_validation(class_probs, truths)
    for name, value in expected.items():
        assert metrics[name]["f1"]["mean"] == pytest.approx(value), name
        assert validation[f"val_dice_{name}"] == metrics[name]["f1"]["mean"], name
    assert validation["score"] == pytest.approx((5 / 6 + 1 / 3) / 2)
