"""Paper protocol: per-image overlap metrics, NaN when undefined, summarised as mean +- 1.96 SE.

Each metric is a ratio of confusion counts. When its denominator is zero (e.g. recall on a slice
without any lesion) the value is NaN, and NaN values are skipped when averaging, as the paper does
(section V.C). "Overall" in the multi-class protocol is, per image, the mean of the background,
GGO and consolidation values (NaN classes skipped), so that it can be compared image by image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ssinfnet.data.sample import CLASS_NAMES

#: Name of the binary (lesion vs not) class in the single-stage protocol.
INFECTION = "infection"
#: Name of the per-image average over the three classes in the multi-class protocol.
OVERALL = "Overall"


@dataclass(frozen=True)
class Counts:
    """Confusion counts of one binary mask pair (pixels)."""

    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(frozen=True)
class OverlapMetric:
    """A ratio of confusion counts; NaN when the denominator is zero."""

    name: str
    numerator: Callable[[Counts], int]
    denominator: Callable[[Counts], int]

    def __call__(self, counts: Counts) -> float:
        denominator = self.denominator(counts)
        return float("nan") if denominator == 0 else self.numerator(counts) / denominator


#: The paper's metrics (eqs. 8-11): F1 (= Dice), IoU, recall, precision.
PAPER_METRICS = (
    OverlapMetric("f1", lambda c: 2 * c.tp, lambda c: 2 * c.tp + c.fp + c.fn),
    OverlapMetric("iou", lambda c: c.tp, lambda c: c.tp + c.fp + c.fn),
    OverlapMetric("recall", lambda c: c.tp, lambda c: c.tp + c.fn),
    OverlapMetric("precision", lambda c: c.tp, lambda c: c.tp + c.fp),
)
METRIC_NAMES = tuple(metric.name for metric in PAPER_METRICS)


def confusion_counts(truth: np.ndarray, prediction: np.ndarray) -> Counts:
    """Counts of two boolean masks of the same shape."""
    truth = np.asarray(truth, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"mask shapes differ: truth {truth.shape}, prediction {prediction.shape}")
    tp = int(np.count_nonzero(truth & prediction))
    fp = int(np.count_nonzero(prediction)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return Counts(tp=tp, fp=fp, fn=fn, tn=truth.size - tp - fp - fn)


def binary_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Paper metrics of one binary prediction against one binary truth."""
    counts = confusion_counts(truth, prediction)
    return {metric.name: metric(counts) for metric in PAPER_METRICS}


def multiclass_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-class paper metrics of label maps (0 background, 1 GGO, 2 consolidation) plus "Overall"."""
    scores = {
        name: binary_scores(truth == label, prediction == label) for label, name in enumerate(CLASS_NAMES)
    }
    scores[OVERALL] = {
        metric: _nanmean([scores[name][metric] for name in CLASS_NAMES]) for metric in METRIC_NAMES
    }
    return scores


@dataclass(frozen=True)
class Summary:
    """Mean of the non-NaN values and the half-width of its 95% CI (1.96 standard errors)."""

    mean: float
    ci95: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "ci95": self.ci95, "n": self.n}


def mean_ci(values) -> Summary:
    """Mean +- 1.96 * SE over the non-NaN values (SE from the sample standard deviation)."""
    array = np.asarray(list(values), dtype=float)
    array = array[~np.isnan(array)]
    n = int(array.size)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0)
    if n == 1:
        return Summary(float(array[0]), float("nan"), 1)
    standard_error = float(np.std(array, ddof=1)) / math.sqrt(n)
    return Summary(float(array.mean()), 1.96 * standard_error, n)


def _nanmean(values: list[float]) -> float:
    kept = [value for value in values if not math.isnan(value)]
    return sum(kept) / len(kept) if kept else float("nan")
