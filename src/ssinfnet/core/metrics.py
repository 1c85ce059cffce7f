"""Paper protocol: per-image overlap metrics, NaN when undefined, summarised as a mean with a 95% CI.

Empty-class rule (stated here once as ``EMPTY_CLASS_RULE``, tag ``SCORING_RULE``; tables, the report and
the model card quote it through ``rule_text``): the paper's. A class (infection, background, GGO,
consolidation) is undefined on an image only when its truth and the prediction both lack it: there its
F1, IoU, recall and precision are NaN and skipped when averaging (the paper, V.C). A prediction of the
class on an image whose truth lacks it is a miss (F1 = IoU = precision = 0, recall NaN). ``class_scores``
is the one definition: training validation (``training.objectives``), cross-validation
(``workflows.crossval``, through the validation functions) and evaluation all score with it. Beside the
headline it keeps the earlier present-only rule's own number as a named secondary column, ``fp_area``
(the fraction of the image's pixels predicted as the class, on images whose truth lacks it; NaN elsewhere).

Two "overall" numbers, never mixed up:
- ``Overall`` (``paper_overall``): the paper's Table III definition, the mean of the three class means
  (e.g. (0.43 + 0.46 + 1.0) / 3); a summary-level number, set beside the paper.
- ``image_mean``: per image, the mean over the classes defined on it; one value per image, so it is what
  paired tests use.

Confidence intervals (``mean_ci``): where images share a group (``SampleMeta.group``: a scan or patient),
a cluster bootstrap: the groups are resampled with replacement (``BOOTSTRAP_RESAMPLES`` times, seeded by
``BOOTSTRAP_SEED``), each resample's per-image mean taken, and the 2.5th and 97.5th percentiles are the
interval. Where every group holds one image, the normal interval mean +- 1.96 SE over the images (as
before groups were used). ``ci_record`` says which one a summary used; ``ci95`` is the half-width of the
interval either way (what "mean ± ci95" prints), ``ci_low`` / ``ci_high`` the interval itself.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ssinfnet.core.labels import CLASS_NAMES

#: Name of the binary (lesion vs not) class in the single-stage protocol.
INFECTION = "infection"
#: The paper's Overall: mean of the three class means (a summary, not a per-image column).
OVERALL = "Overall"
#: Per-image mean over the classes defined on the image (the per-image column that paired tests use).
IMAGE_MEAN = "image_mean"
#: Per-image fraction of pixels predicted as a class on images whose truth lacks it (secondary column).
FP_AREA = "fp_area"
#: Version tag of the rule above, recorded in every evaluation summary, validation record and crossval JSON.
SCORING_RULE = "paper/2"
EMPTY_CLASS_RULE = (
    "The paper's rule: a class is undefined on an image (NaN, skipped in means) only when its truth and the "
    "prediction both lack it; a prediction of the class on an image whose truth lacks it is a miss (F1 = IoU = "
    "precision = 0, recall n/a). fp_area (fraction of pixels predicted as the class on images whose truth lacks "
    "it) is reported beside; image_mean averages the classes defined on each image. Training validation, "
    "cross-validation and evaluation score with this rule."
)
#: The rule of evaluations tagged "present-only/1" (before "paper/2").
PRESENT_ONLY = "present-only/1"
PRESENT_ONLY_RULE = (  # word for word what those evaluations' tables printed, so their cards render unchanged
    "A class is scored only on images whose truth holds it (F1, IoU and recall are then defined for every "
    "model; precision is n/a where nothing of the class is predicted); on images without it, the "
    "false-positive area (fraction of pixels predicted as the class) is reported instead."
)
#: Tag of evaluations written before SCORING_RULE existed (their summaries carry no "scoring_rule").
LEGACY = "legacy"
LEGACY_RULE = (
    "Scored with the earlier rule: a class counts on an image when its truth or its prediction holds it "
    "(NaN only when both are empty), so models can be averaged over different images; paired tests use the "
    "images where both models have a value."
)
RULES = {SCORING_RULE: EMPTY_CLASS_RULE, PRESENT_ONLY: PRESENT_ONLY_RULE, LEGACY: LEGACY_RULE}


def rule_text(tag: str | None) -> str:
    """The empty-class rule that a summary's ``scoring_rule`` tag names (None: legacy, written before tags)."""
    tag = LEGACY if tag is None else tag
    return RULES.get(tag, f"Scored under a rule this version does not know ({tag}).")


def summary_note(summary: dict[str, Any]) -> str:
    """What an evaluation summary's tables rest on, in words: its empty-class rule and, where it records
    one (``"ci"``, since clustered CIs), its CI method. The report and the model card print it."""
    text = rule_text(summary.get("scoring_rule"))
    return f"{text} {ci_text(summary['ci'])}." if summary.get("ci") else text


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
    """One class on one image under the empty-class rule (``EMPTY_CLASS_RULE``): the paper metrics (NaN only
    where truth and prediction both lack the class; 0 for F1/IoU/precision where only the prediction holds
    it), and ``fp_area``, the fraction predicted as the class where the truth lacks it (NaN where it holds it)."""
    truth = np.asarray(truth, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    return {**binary_scores(truth, prediction),
            FP_AREA: float("nan") if truth.any() else float(prediction.mean())}


def mean_class_f1(truths: Iterable[np.ndarray], predictions: Iterable[np.ndarray]) -> float:
    """Mean per-image F1 of one class (boolean masks) under the rule, NaN images skipped: training's
    validation score, equal to evaluation's summary mean of the class's F1 column on the same masks."""
    return mean_ci(class_scores(t, p)["f1"] for t, p in zip(truths, predictions)).mean


def multiclass_scores(truth: np.ndarray, prediction: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-class scores of label maps (0 background, 1 GGO, 2 consolidation) plus "image_mean" (the mean
    over the classes defined on the image)."""
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


#: Resamples and seed of the cluster bootstrap (seeded, so a summary is reproduced exactly).
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Summary:
    """Mean of the non-NaN values and its 95% CI: ``ci_low`` .. ``ci_high``, ``ci95`` = half its width;
    ``clusters``: the groups holding a value, when the CI is a cluster bootstrap (None: normal CI)."""

    mean: float
    ci95: float
    n: int
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    clusters: int | None = None

    def as_dict(self) -> dict[str, float | int]:
        out = {"mean": self.mean, "ci95": self.ci95, "n": self.n, "ci_low": self.ci_low, "ci_high": self.ci_high}
        return out if self.clusters is None else {**out, "clusters": self.clusters}


def clustered(groups: Iterable[Any] | None) -> bool:
    """Whether some group holds more than one image (then CIs are a cluster bootstrap)."""
    if groups is None:
        return False
    groups = list(groups)
    return len(set(groups)) < len(groups)


def ci_record(groups: Iterable[Any]) -> dict[str, Any]:
    """What the CIs of a summary over images with these groups are (the ``"ci"`` entry of summary.json)."""
    groups = list(groups)
    if clustered(groups):
        return {"method": "cluster bootstrap", "unit": "group", "clusters": len(set(groups)),
                "images": len(groups), "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED,
                "interval": "percentile 2.5-97.5"}
    return {"method": "normal", "unit": "image", "images": len(groups), "interval": "mean ± 1.96 SE"}


def ci_text(record: dict[str, Any] | None) -> str:
    """A summary's CI method in words (None: a summary written before ``ci_record``, normal CI)."""
    if record and record.get("method") == "cluster bootstrap":
        return (f"95% CI by cluster bootstrap over {record['clusters']} groups (scan or patient; "
                f"{record['images']} images), {record['resamples']} resamples of the groups, percentile "
                "interval; ± = half its width")
    return "95% CI = ± 1.96 SE over images"


def mean_ci(values: Iterable[float], groups: Iterable[Any] | None = None) -> Summary:
    """Mean of the non-NaN values and its 95% CI: a cluster bootstrap when ``groups`` (one per value, NaN
    or not) put several images in one group, else mean +- 1.96 * SE (SE from the sample standard
    deviation). Fewer than two images (clusters) with a value: the CI is NaN."""
    array = np.asarray(list(values), dtype=float)
    kept = ~np.isnan(array)
    n = int(kept.sum())
    nan = float("nan")
    if n == 0:
        return Summary(nan, nan, 0)
    mean = float(array[kept].mean())
    if groups is not None and clustered(groups := [str(g) for g in groups]):
        if len(groups) != array.size:
            raise ValueError(f"{len(groups)} groups for {array.size} values")
        low, high, clusters = cluster_bootstrap(array[kept], np.asarray(groups)[kept])
        return Summary(mean, (high - low) / 2, n, low, high, clusters)
    if n == 1:
        return Summary(mean, nan, 1)
    half = 1.96 * float(np.std(array[kept], ddof=1)) / math.sqrt(n)
    return Summary(mean, half, n, mean - half, mean + half)


def cluster_bootstrap(values: np.ndarray, groups: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[float, float, int]:
    """(low, high, clusters): percentile 95% CI of the per-image mean of ``values`` when whole groups are
    resampled with replacement (each resample draws as many groups as there are; its mean is over all the
    images of the drawn groups). NaN bounds with fewer than two groups."""
    _, index = np.unique(groups, return_inverse=True)
    sums, counts = np.bincount(index, weights=values), np.bincount(index)
    clusters = int(sums.size)
    if clusters < 2:
        return float("nan"), float("nan"), clusters
    draws = np.random.default_rng(seed).integers(0, clusters, size=(resamples, clusters))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high), clusters


def _nanmean(values: list[float]) -> float:
    kept = [value for value in values if not math.isnan(value)]
    return sum(kept) / len(kept) if kept else float("nan")
