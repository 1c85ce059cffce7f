"""Reading evaluations and comparisons written before the empty-class rule, paired means and Holm
p-values existed (no "scoring_rule" key), so that their tables can be regenerated without the runs.

What such files hold: per model and metric the mean, 95% CI and n; per test the number of pairs, the
mean paired difference and the raw p-values. Their per-image values are not in them. So:

- their ``Overall`` group is the per-image mean (renamed ``image_mean``); the paper's Overall (mean of
  the three class means) is computed from the class means;
- a model's mean on the shared images is exact where it can be derived: when its n equals the pairs
  (nothing dropped), and for F1 and IoU otherwise: under the old rule an image counts for one model and
  not the other only when the class is absent from the truth and only the first model predicts it, where
  its F1 and IoU are 0, so the sum is unchanged and the paired mean is n * mean / pairs. Precision lacks
  that property: its paired means stay n/a (the difference and n are stored);
- the CI of the mean difference follows from the stored t-test p-value (|t| = t_{n-1}^-1(1 - p/2),
  SE = |difference| / |t|); n/a when p is 1 or the difference 0;
- Holm-adjusted p-values are computed from the stored raw p-values.
``check_paired_means`` verifies the derivation against the stored differences.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from scipy import stats

from ssinfnet.core.metrics import IMAGE_MEAN, LEGACY, OVERALL

#: Metrics whose value is 0 wherever a class is absent from the truth but predicted.
ZERO_WHEN_ABSENT = {"f1", "iou"}


def is_legacy(data: dict[str, Any]) -> bool:
    return "scoring_rule" not in data


def upgrade_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A legacy evaluation summary with ``image_mean`` and the paper's ``Overall``, and no machine paths."""
    from ssinfnet.evaluation.evaluate import add_paper_overall

    if not is_legacy(summary):
        return summary
    out = copy.deepcopy(summary)
    metrics = out.get("metrics", {})
    if OVERALL in metrics:
        metrics[IMAGE_MEAN] = metrics.pop(OVERALL)
    add_paper_overall(metrics, out.get("images", 0))
    out["scoring_rule"] = LEGACY
    return strip_paths(out)


def strip_paths(record: Any) -> Any:
    """Every absolute path string in a (nested) record replaced by its last component."""
    if isinstance(record, dict):
        return {k: strip_paths(v) for k, v in record.items()}
    if isinstance(record, list):
        return [strip_paths(v) for v in record]
    if isinstance(record, str) and record.startswith("/"):
        return Path(record).name
    return record


def upgrade_comparison(data: dict[str, Any], planned: str | None = None):
    """A legacy comparison.json as a :class:`Comparison` with paired means, CIs and Holm p-values."""
    from ssinfnet.evaluation.compare import Comparison, adjust, insert_paper_overall

    models, images = data["models"], data["images"]
    rows, identical, means = [], [], {}
    for old in data["rows"]:
        row = copy.deepcopy(old)
        if row["group"] == OVERALL:
            row["group"] = IMAGE_MEAN
        column = f"{row['group']}.{row['metric']}"
        means[column] = {name: summary["mean"] for name, summary in row["models"].items()}
        summaries = list(row["models"].values())
        if all(s == summaries[0] for s in summaries) and all(
                t["mean_difference"] == 0 for t in row["tests"].values()):
            identical.append(column)
            continue
        reference = row["models"][models[0]]
        for name, test in row["tests"].items():
            test["reference_mean"] = paired_mean(reference, test["pairs"], row["metric"])
            test["mean"] = paired_mean(row["models"][name], test["pairs"], row["metric"])
            test["difference_ci95"] = difference_ci95(test["mean_difference"], test["t_p"], test["pairs"])
        rows.append(row)
    comparison = Comparison(models=models, paths=[Path(p).name for p in data["evaluations"]], images=images,
                            rows=insert_paper_overall(rows, means, models, images), planned=planned,
                            scoring_rule=LEGACY, identical=identical)
    adjust(comparison)
    return comparison


def paired_mean(summary: dict[str, Any], pairs: int, metric: str) -> float:
    """A model's mean on the ``pairs`` shared images, where the stored summary determines it."""
    n, mean = summary["n"], summary["mean"]
    if n == pairs:
        return mean
    if metric in ZERO_WHEN_ABSENT and pairs > 0:
        return n * mean / pairs
    return float("nan")


def difference_ci95(difference: float, t_p: float, pairs: int) -> float:
    """95% CI half-width of a mean paired difference, from its two-sided paired t-test p-value."""
    if pairs < 2 or math.isnan(t_p) or t_p >= 1.0 or difference == 0 or math.isnan(difference):
        return float("nan")
    t = stats.t.isf(t_p / 2, pairs - 1)
    return float(stats.t.ppf(0.975, pairs - 1) * abs(difference) / t)


def check_paired_means(comparison, tolerance: float = 1e-9) -> list[str]:
    """Rows whose derived paired means disagree with the stored mean difference (empty when all agree)."""
    problems = []
    for row in comparison.rows:
        for name, test in row["tests"].items():
            if math.isnan(test.get("reference_mean", float("nan"))) or math.isnan(test.get("mean", float("nan"))):
                continue
            if abs(test["mean"] - test["reference_mean"] - test["mean_difference"]) > tolerance:
                problems.append(f"{row['group']}.{row['metric']} {name}")
    return problems
