"""ROC curves and AUC: exact (scikit-learn) over slices, from histograms over pixels (bounded memory)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

#: Curves are thinned to about this many points for JSON and plots (AUC uses every point).
MAX_CURVE_POINTS = 400


@dataclass(frozen=True)
class Roc:
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    positives: int
    negatives: int

    def as_dict(self) -> dict:
        return {
            "auc": self.auc,
            "positives": self.positives,
            "negatives": self.negatives,
            "fpr": self.fpr.tolist(),
            "tpr": self.tpr.tolist(),
        }

    def thinned(self, points: int) -> "Roc":
        """The same curve (and AUC) with about ``points`` of its points, the first and last kept."""
        fpr, tpr = _thin(self.fpr, self.tpr, points)
        return Roc(fpr=fpr, tpr=tpr, auc=self.auc, positives=self.positives, negatives=self.negatives)

    @classmethod
    def from_dict(cls, data: dict) -> "Roc":
        return cls(
            fpr=np.asarray(data["fpr"], dtype=float),
            tpr=np.asarray(data["tpr"], dtype=float),
            auc=float(data["auc"]),
            positives=int(data["positives"]),
            negatives=int(data["negatives"]),
        )


def roc(labels, scores) -> Roc | None:
    """ROC of binary labels against scores; None when only one class is present (AUC undefined)."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    if positives == 0 or negatives == 0:
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    auc = float(roc_auc_score(labels, scores))
    fpr, tpr = _thin(fpr, tpr)
    return Roc(fpr=fpr, tpr=tpr, auc=auc, positives=positives, negatives=negatives)


#: Pixel scores are counted in bins whose width is 2^-10 of min(p, 1 - p) (the float32 value with 10 of its
#: 23 mantissa bits kept, measured from 0 below 0.5 and from 1 above): fine where a network's confident
#: probabilities crowd near 0 and 1. Two pixels in one bin count as a tie, so the AUC differs from the
#: exact one by at most half the share of (lesion, other) pixel pairs that share a bin (``tests/
#: test_eval_metrics.py`` checks it against scikit-learn to 1e-4).
_SHIFT = 13
_HALF = int(np.float32(0.5).view(np.int32)) >> _SHIFT
PIXEL_BINS = 2 * _HALF + 2


def score_bins(scores: np.ndarray) -> np.ndarray:
    """Bin index (0 .. PIXEL_BINS - 1, non-decreasing in the score) of float scores in [0, 1]."""
    scores = np.clip(np.asarray(scores, dtype=np.float32), 0.0, 1.0) + np.float32(0.0)  # -0.0 -> +0.0
    low = scores.view(np.int32) >> _SHIFT
    high = (2 * _HALF + 1) - ((np.float32(1.0) - scores).view(np.int32) >> _SHIFT)
    return np.where(scores < 0.5, low, high).astype(np.int64)


class PixelRoc:
    """Pixel-level ROC of every image pooled, in bounded memory: a histogram of the scores of the lesion
    pixels and one of the other pixels, filled one image at a time."""

    def __init__(self):
        self.lesion = np.zeros(PIXEL_BINS, dtype=np.int64)
        self.other = np.zeros(PIXEL_BINS, dtype=np.int64)

    def add(self, truth: np.ndarray, probability: np.ndarray) -> None:
        """One image: lesion = truth > 0, scored by its infection probability."""
        lesion = np.asarray(truth).ravel() > 0
        index = score_bins(np.asarray(probability).ravel())
        if index.shape != lesion.shape:
            raise ValueError(f"truth {np.shape(truth)} and probability {np.shape(probability)} differ")
        self.lesion += np.bincount(index[lesion], minlength=PIXEL_BINS)
        self.other += np.bincount(index[~lesion], minlength=PIXEL_BINS)

    def result(self) -> Roc | None:
        """The curve at every bin edge that separates scores, from the top down; None with one class only."""
        positives, negatives = int(self.lesion.sum()), int(self.other.sum())
        if positives == 0 or negatives == 0:
            return None
        filled = (self.lesion + self.other)[::-1] > 0
        tpr = np.concatenate([[0.0], np.cumsum(self.lesion[::-1])[filled] / positives])
        fpr = np.concatenate([[0.0], np.cumsum(self.other[::-1])[filled] / negatives])
        auc = float(np.trapezoid(tpr, fpr))  # = Mann-Whitney U / (P N), a tie (same bin) counted half
        fpr, tpr = _thin(fpr, tpr)
        return Roc(fpr=fpr, tpr=tpr, auc=auc, positives=positives, negatives=negatives)


def _thin(fpr: np.ndarray, tpr: np.ndarray, points: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Keep about ``points`` points, always the first and the last."""
    if fpr.size <= points:
        return fpr, tpr
    keep = np.unique(np.linspace(0, fpr.size - 1, points).round().astype(int))
    return fpr[keep], tpr[keep]
