"""Paper protocol: per-image overlap metrics, NaN when undefined, summarised as mean +- 1.96 SE.

Empty-class rule (stated here once; tables and the model card quote ``EMPTY_CLASS_RULE``): a class
(infection, background, GGO, consolidation) is scored on an image only when the image's truth holds
it. There F1, IoU and recall are always defined, so every model is averaged over the same images;
precision is NaN where the prediction holds none of the class. On an image whose truth lacks the class,
the overlap metrics are NaN and ``fp_area`` (the fraction of the image's pixels predicted as that class:
false-positive area) is reported instead. NaN values are skipped when averaging (the paper, V.C).

Two "overall" numbers, never mixed up:
- ``Overall`` (``paper_overall``): the paper's Table III definition, the mean of the three class means
  (e.g. (0.43 + 0.46 + 1.0) / 3); a summary-level number, set beside the paper.
- ``image_mean``: per image, the mean over the classes present in its truth; one value per image, so it
  is what paired tests use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ssinfnet.core.labels import CLASS_NAMES

#: Name of the binary (lesion vs not) class in the single-stage protocol.
INFECTION = "infection"
#: The paper's Overall: mean of the three class means (a summary, not a per-image column).
OVERALL = "Overall"
#: Per-image mean over the classes present in the truth (the per-image column that paired tests use).
IMAGE_MEAN = "image_mean"
#: Per-image fraction of pixels predicted as a class on images whose truth lacks it.
FP_AREA = "fp_area"
#: Version tag of the rule above, recorded in every evaluation summary.
SCORING_RULE = "present-only/1"
EMPTY_CLASS_RULE = (
    "A class is scored only on images whose truth holds it (F1, IoU and recall are then defined for every "
    "model; precision is n/a where nothing of the class is predicted); on images without it, the "
    "false-positive area (fraction of pixels predicted as the class) is reported instead."
)
#: The rule of evaluations written before SCORING_RULE existed (their summaries carry no "scoring_rule").
LEGACY_RULE = (
    "Scored with the earlier rule: a class counts on an image when its truth or its prediction holds it "
    "(NaN only when both are empty), so models can be averaged over different images; paired tests use the "
    "images where both models have a value."
)


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


def class_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """One class on one image under the empty-class rule: overlap metrics where the truth holds the
    class (``fp_area`` NaN), else NaN overlap metrics and the predicted fraction as ``fp_area``."""
    truth = np.asarray(truth, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    if truth.any():
        return {**binary_scores(truth, prediction), FP_AREA: float("nan")}
    return {**{name: float("nan") for name in METRIC_NAMES}, FP_AREA: float(prediction.mean())}


def multiclass_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-class scores of label maps (0 background, 1 GGO, 2 consolidation) plus "image_mean"."""
    scores = {
        name: class_scores(truth == label, prediction == label) for label, name in enumerate(CLASS_NAMES)
    }
    scores[IMAGE_MEAN] = {
        metric: _nanmean([scores[name][metric] for name in CLASS_NAMES]) for metric in METRIC_NAMES
    }
    return scores


def paper_overall(class_means: dict[str, float]) -> float:
    """The paper's Overall: the mean of the background, GGO and consolidation means (NaN if one is)."""
    values = [float(class_means[name]) for name in CLASS_NAMES]
    return float("nan") if any(math.isnan(v) for v in values) else sum(values) / len(values)


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
