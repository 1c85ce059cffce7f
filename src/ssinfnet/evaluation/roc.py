"""ROC curves and AUC (scikit-learn), at pixel level and at slice level."""

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


def pixel_roc(truths: list[np.ndarray], probabilities: list[np.ndarray]) -> Roc | None:
    """Every pixel of every image pooled: lesion (truth > 0) against infection probability."""
    labels = np.concatenate([np.asarray(t).ravel() > 0 for t in truths])
    scores = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in probabilities])
    return roc(labels, scores)


def _thin(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep about MAX_CURVE_POINTS points, always the first and the last."""
    if fpr.size <= MAX_CURVE_POINTS:
        return fpr, tpr
    keep = np.unique(np.linspace(0, fpr.size - 1, MAX_CURVE_POINTS).round().astype(int))
    return fpr[keep], tpr[keep]
