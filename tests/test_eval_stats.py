"""Comparison statistics: paired means on the shared images, Holm families against statsmodels, and the
legacy derivation of paired means and CIs from stored summaries."""

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from test_eval_scoring import make_samples, noisy_predictions, write_two_evaluations

from ssinfnet.errors import InputError
from ssinfnet.evaluation.compare import (
    EXPLORATORY, PLANNED, compare, holm, markdown_table, paired_tests, summary_table,
)
from ssinfnet.evaluation.evaluate import score_images, write_evaluation
from ssinfnet.evaluation.legacy import check_paired_means, upgrade_comparison
from ssinfnet.core.metrics import mean_ci

nan = float("nan")


def test_paired_means_are_the_means_on_the_shared_images_and_differ_by_the_mean_difference():
    reference = np.array([0.2, 0.4, nan, 0.8, 0.5, 0.0])
    other = np.array([0.3, nan, 0.9, 0.9, 0.4, 0.0])
    shared = ~(np.isnan(reference) | np.isnan(other))
    test = paired_tests(reference, other)
    assert test["pairs"] == shared.sum() == 4
    assert test["reference_mean"] == pytest.approx(reference[shared].mean())
    assert test["mean"] == pytest.approx(other[shared].mean())
    differences = other[shared] - reference[shared]
    assert test["mean_difference"] == pytest.approx(differences.mean())
    assert test["mean"] - test["reference_mean"] == pytest.approx(test["mean_difference"])
    # Unpaired means would differ: the reference's own mean counts the 0.4 the other model lacks.
    assert np.nanmean(reference) != pytest.approx(test["reference_mean"])
    low, high = stats.ttest_rel(other[shared], reference[shared]).confidence_interval()
    assert test["difference_ci95"] == pytest.approx((high - low) / 2)


def test_holm_matches_statsmodels_and_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = holm([0.02, nan, 0.5, 0.001])
    assert math.isnan(adjusted[1])  # NaN stays out of the family
    assert [adjusted[i] for i in (0, 2, 3)] == pytest.approx(multipletests([0.02, 0.5, 0.001], method="holm")[1])


def three_evaluations(tmp_path):
    samples = make_samples()
    folders = []
    for seed, (name, quality) in enumerate((("ssinfnet", 0.6), ("sinfnet", 0.4), ("unet", 0.8))):
        probabilities, labels = noisy_predictions(samples, seed=seed, quality=quality)
        folders.append(write_evaluation(tmp_path / name, score_images(samples, probabilities, labels, 0.5), {}))
    return folders


def test_each_family_is_holm_adjusted_on_its_own_as_statsmodels_does(tmp_path):
    comparison = compare(three_evaluations(tmp_path), planned="sinfnet")
    assert comparison.family("sinfnet") == PLANNED and comparison.family("unet") == EXPLORATORY
    for family, name in ((PLANNED, "sinfnet"), (EXPLORATORY, "unet")):
        tests = [row["tests"][name] for row in comparison.rows if name in row["tests"]]
        assert tests and all(t["family"] == family for t in tests)
        for key in ("t_p", "wilcoxon_p"):
            kept = [t for t in tests if not math.isnan(t[key])]
            expected = multipletests([t[key] for t in kept], method="holm")[1]
            assert [t[f"{key}_holm"] for t in kept] == pytest.approx(expected)
            assert all(t[f"{key}_holm"] >= t[key] for t in kept)
    text = markdown_table(comparison)
    assert "(planned)" in text and "(exploratory)" in text and "Holm" in text
    header, rows = summary_table(comparison)
    assert [r[0] for r in rows] == ["ssinfnet", "sinfnet", "unet"] and rows[1][-1] == PLANNED


def test_without_a_planned_model_every_test_is_exploratory_and_a_wrong_name_is_refused(tmp_path):
    folders = three_evaluations(tmp_path)
    comparison = compare(folders)
    assert {t["family"] for row in comparison.rows for t in row["tests"].values()} == {EXPLORATORY}
    with pytest.raises(InputError, match="not one of the compared models"):
        compare(folders, planned="resnet")


def test_paper_overall_rows_are_the_mean_of_the_class_means_and_untested(tmp_path):
    comparison = compare(three_evaluations(tmp_path)[:2])
    rows = {(r["group"], r["metric"]): r for r in comparison.rows}
    overall = rows[("Overall", "f1")]
    assert overall["tests"] == {}
    for name in comparison.models:
        expected = np.mean([rows[(c, "f1")]["models"][name]["mean"] for c in ("background", "GGO", "consolidation")])
        assert overall["models"][name]["mean"] == pytest.approx(expected)


def legacy_f1(truth_present, predicted, values):
    """Per-image F1 under the old rule: the value where the truth holds the class, 0 where only the
    prediction does, NaN where neither does."""
    return np.where(truth_present, values, np.where(predicted, 0.0, nan))


def test_legacy_paired_means_and_ci_are_derived_exactly_from_stored_summaries():
    rng = np.random.default_rng(0)
    truth = np.array([True] * 8 + [False] * 4)
    values_a, values_b = rng.uniform(0.2, 0.9, 12), rng.uniform(0.2, 0.9, 12)
    a = legacy_f1(truth, np.array([True] * 8 + [True, False, False, False]), values_a)
    b = legacy_f1(truth, np.array([True] * 8 + [True, True, True, False]), values_b)
    test = paired_tests(a, b)  # what the old code stored: pairs, mean difference and p-values
    stored = {key: test[key] for key in ("pairs", "mean_difference", "t_p", "wilcoxon_p")}
    legacy = {"kind": "comparison", "reference": "a", "models": ["a", "b"], "evaluations": ["/m/a", "/m/b"],
              "images": 12, "rows": [{"group": "consolidation", "metric": "f1",
                                      "models": {"a": mean_ci(a).as_dict(), "b": mean_ci(b).as_dict()},
                                      "tests": {"b": stored}}]}
    comparison = upgrade_comparison(legacy, planned="b")
    derived = comparison.rows[0]["tests"]["b"]
    assert mean_ci(a).n != mean_ci(b).n  # the models were averaged over different images
    assert derived["reference_mean"] == pytest.approx(test["reference_mean"])
    assert derived["mean"] == pytest.approx(test["mean"])
    assert derived["difference_ci95"] == pytest.approx(test["difference_ci95"])
    assert check_paired_means(comparison) == []
    assert comparison.paths == ["a", "b"]  # no machine paths


def test_summary_and_compare_cis_are_cluster_bootstraps_over_the_groups(tmp_path):
    """make_samples puts slices s0..s5 in groups p0, p0, p1, p1, p2, p2: every CI resamples the three groups,
    as the brute-force computation does, and the records say so."""
    import pandas as pd
    from test_eval_metrics import brute_force_cluster_ci

    from ssinfnet.core.metrics import BOOTSTRAP_RESAMPLES

    baseline, better = write_two_evaluations(tmp_path)
    summary = json.loads((baseline / "summary.json").read_text())
    assert summary["ci"] == {"method": "cluster bootstrap", "unit": "group", "clusters": 3, "images": 6,
                             "resamples": BOOTSTRAP_RESAMPLES, "seed": 0, "interval": "percentile 2.5-97.5"}
    a, b = (pd.read_csv(folder / "per_image.csv") for folder in (baseline, better))
    groups = list(a["group"])
    f1 = summary["metrics"]["image_mean"]["f1"]
    assert (f1["ci_low"], f1["ci_high"]) == pytest.approx(brute_force_cluster_ci(a["image_mean.f1"], groups))
    assert f1["ci95"] == pytest.approx((f1["ci_high"] - f1["ci_low"]) / 2) and f1["clusters"] == 3
    assert f1["mean"] == pytest.approx(a["image_mean.f1"].mean()) and f1["n"] == 6

    comparison = compare([baseline, better])
    assert comparison.ci == summary["ci"]
    test = next(r for r in comparison.rows if (r["group"], r["metric"]) == ("image_mean", "f1"))["tests"]["better"]
    low, high = brute_force_cluster_ci(b["image_mean.f1"] - a["image_mean.f1"], groups)
    assert (test["difference_ci_low"], test["difference_ci_high"]) == pytest.approx((low, high))
    assert test["mean_difference"] == pytest.approx((b["image_mean.f1"] - a["image_mean.f1"]).mean())
    assert "cluster bootstrap over 3 groups" in markdown_table(comparison)
    assert f"[{low:+.3f}, {high:+.3f}]" in markdown_table(comparison)


def test_singleton_groups_keep_the_normal_and_paired_t_intervals():
    reference, other = np.array([0.2, 0.4, 0.5, 0.8]), np.array([0.3, 0.4, 0.9, 0.9])
    grouped = paired_tests(reference, other, ["a", "b", "c", "d"])
    assert grouped == paired_tests(reference, other)
    low, high = stats.ttest_rel(other, reference).confidence_interval()
    assert (grouped["difference_ci_low"], grouped["difference_ci_high"]) == pytest.approx((low, high))


def set_rule(folder, rule):
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    if rule is None:
        del summary["scoring_rule"]
    else:
        summary["scoring_rule"] = rule
    path.write_text(json.dumps(summary))


@pytest.mark.parametrize("old_rule", ["present-only/1", None])
def test_compare_refuses_evaluations_scored_under_different_rules(tmp_path, old_rule):
    baseline, better = write_two_evaluations(tmp_path)
    set_rule(baseline, old_rule)
    with pytest.raises(InputError, match=f"different empty-class rules \\(baseline: {old_rule or 'legacy'}, "
                                         "better: paper/2\\)"):
        compare([baseline, better])


def test_compare_of_two_present_only_evaluations_says_their_rule(tmp_path):
    from ssinfnet.core.metrics import PRESENT_ONLY_RULE

    folders = write_two_evaluations(tmp_path)
    for folder in folders:
        set_rule(folder, "present-only/1")
    comparison = compare(folders)
    assert comparison.scoring_rule == "present-only/1"
    assert PRESENT_ONLY_RULE in markdown_table(comparison)
