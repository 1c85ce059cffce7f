"""Inf-Net protocol (Fan et al., IEEE TMI 2020), so our numbers sit beside its published table.

Follows the public Inf-Net MATLAB evaluation (``Code/EvaluationTool``: ``main.m``,
``Fmeasure_calu.m``, ``StructureMeasure.m``, ``Enhancedmeasure.m``) rather than textbook formulas,
because its quirks move the numbers:

- Each probability map is min-max normalised and quantised to 8 bits, as Inf-Net's test script
  saved it as PNG; the MATLAB code then scores those 256 grey levels.
- Dice, sensitivity, specificity and E-phi are computed at 256 thresholds t = 1, 254/255, ..., 0
  (``map >= t``) and averaged over thresholds per image, then over images. At a threshold where no
  lesion pixel is found (TP = 0) Dice, sensitivity AND specificity are all 0, as in
  ``Fmeasure_calu.m`` (so a slice without lesion scores 0 on all three).
- E-phi divides by (pixels - 1), so a perfect map scores slightly above 1.
- S-alpha (alpha = 0.5) uses MATLAB's 1-based, round-half-away centroid to split the regions.
"""

from __future__ import annotations

import numpy as np

N_LEVELS = 256
_EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps, used where the MATLAB code adds it.
_ALPHA = 0.5  # weight of the object score against the region score in S-alpha.


def to_levels(probability: np.ndarray) -> np.ndarray:
    """Grey levels 0..255 of a map, min-max normalised as Inf-Net saved its predictions.

    A constant map is not stretched (there is nothing to normalise), only quantised.
    """
    prob = np.asarray(probability, dtype=np.float64)
    low, high = float(prob.min()), float(prob.max())
    if high > low:
        prob = (prob - low) / (high - low)
    return np.rint(np.clip(prob, 0.0, 1.0) * (N_LEVELS - 1)).astype(np.int64)


def threshold_counts(levels: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """TP, FP, FN, TN at the 256 thresholds 1, 254/255, ..., 0 (pixel predicted when level/255 >= t)."""
    truth = np.asarray(truth, dtype=bool)
    lesion_hist = np.bincount(levels[truth], minlength=N_LEVELS)
    other_hist = np.bincount(levels[~truth], minlength=N_LEVELS)
    # Threshold j (0-based) keeps levels >= 255 - j: cumulative sums from the top level down.
    tp = np.cumsum(lesion_hist[::-1])
    fp = np.cumsum(other_hist[::-1])
    return {"tp": tp, "fp": fp, "fn": lesion_hist.sum() - tp, "tn": other_hist.sum() - fp}


def threshold_curves(levels: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Dice, sensitivity, specificity and E-phi at each of the 256 thresholds."""
    c = threshold_counts(levels, truth)
    tp, fp, fn, tn = (c[k].astype(np.float64) for k in ("tp", "fp", "fn", "tn"))
    found = tp > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(found, 2 * tp / (2 * tp + fp + fn), 0.0)
        sensitivity = np.where(found, tp / (tp + fn), 0.0)
        specificity = np.where(found, tn / (tn + fp), 0.0)
    return {
        "dice": dice,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "e_phi": enhanced_alignment(tp, fp, fn, tn),
    }


def enhanced_alignment(tp, fp, fn, tn) -> np.ndarray:
    """E-phi (Fan et al., IJCAI 2018) of binary maps given their confusion counts (arrays allowed).

    The enhanced alignment matrix takes one value per (prediction, truth) pixel pair, so the
    sum over the image is a count-weighted sum of four values.
    """
    tp, fp, fn, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    lesion = tp + fn
    if np.all(lesion == 0):  # No lesion: the matrix is 1 - prediction.
        total = tn
    elif np.all(lesion == n):  # All lesion: the matrix is the prediction.
        total = tp
    else:
        pred_mean = (tp + fp) / n
        truth_mean = lesion / n
        total = np.zeros_like(n)
        for pred_value, truth_value, count in ((1, 1, tp), (1, 0, fp), (0, 1, fn), (0, 0, tn)):
            a = pred_value - pred_mean
            b = truth_value - truth_mean
            align = 2 * a * b / (a * a + b * b + _EPS)
            total = total + count * (align + 1) ** 2 / 4
    return total / (n - 1 + _EPS)


def structure_measure(prediction: np.ndarray, truth: np.ndarray) -> float:
    """S-alpha (Fan et al., ICCV 2017) of a map in [0, 1] against a binary truth."""
    pred = np.asarray(prediction, dtype=np.float64)
    truth = np.asarray(truth, dtype=bool)
    lesion_share = truth.mean()
    if lesion_share == 0:
        return float(1.0 - pred.mean())
    if lesion_share == 1:
        return float(pred.mean())
    score = _ALPHA * _object_score(pred, truth) + (1 - _ALPHA) * _region_score(pred, truth)
    return float(max(score, 0.0))


def _object_score(pred: np.ndarray, truth: np.ndarray) -> float:
    share = truth.mean()
    return share * _object_similarity(pred[truth]) + (1 - share) * _object_similarity(1 - pred[~truth])


def _object_similarity(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    spread = float(np.std(values, ddof=1)) if values.size > 1 else 0.0  # MATLAB std of one value is 0.
    mean = float(values.mean())
    return 2 * mean / (mean * mean + 1 + spread + _EPS)


def _region_score(pred: np.ndarray, truth: np.ndarray) -> float:
    rows, cols = truth.shape
    col_split, row_split = _matlab_centroid(truth)
    area = rows * cols
    quadrants = (
        (slice(0, row_split), slice(0, col_split)),
        (slice(0, row_split), slice(col_split, cols)),
        (slice(row_split, rows), slice(0, col_split)),
        (slice(row_split, rows), slice(col_split, cols)),
    )
    score = 0.0
    for row_slice, col_slice in quadrants:
        part_truth = truth[row_slice, col_slice]
        # An empty quadrant has weight 0; MATLAB would turn the whole score into NaN here.
        if part_truth.size:
            score += part_truth.size / area * _ssim(pred[row_slice, col_slice], part_truth)
    return score


def _matlab_centroid(truth: np.ndarray) -> tuple[int, int]:
    """(X, Y) = 1-based column and row of the lesion centroid, rounded half away from zero."""
    total = truth.sum()
    rows, cols = truth.shape
    x = (truth.sum(axis=0) * np.arange(1, cols + 1)).sum() / total
    y = (truth.sum(axis=1) * np.arange(1, rows + 1)).sum() / total
    return int(np.floor(x + 0.5)), int(np.floor(y + 0.5))


def _ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    truth = truth.astype(np.float64)
    n = pred.size
    x, y = pred.mean(), truth.mean()
    var_x = ((pred - x) ** 2).sum() / (n - 1 + _EPS)
    var_y = ((truth - y) ** 2).sum() / (n - 1 + _EPS)
    cov = ((pred - x) * (truth - y)).sum() / (n - 1 + _EPS)
    alpha = 4 * x * y * cov
    beta = (x * x + y * y) * (var_x + var_y)
    if alpha != 0:
        return float(alpha / (beta + _EPS))
    return 1.0 if beta == 0 else 0.0


def infnet_dice(probability: np.ndarray, truth: np.ndarray) -> float:
    """The Inf-Net protocol's Dice of one infection probability map (mean over the 256 thresholds)."""
    return float(threshold_curves(to_levels(probability), np.asarray(truth, dtype=bool))["dice"].mean())


def infnet_scores(probability: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Inf-Net protocol scores of one infection probability map against its binary truth."""
    truth = np.asarray(truth, dtype=bool)
    levels = to_levels(probability)
    saved_map = levels / (N_LEVELS - 1)
    curves = threshold_curves(levels, truth)
    return {
        "dice": float(curves["dice"].mean()),
        "sensitivity": float(curves["sensitivity"].mean()),
        "specificity": float(curves["specificity"].mean()),
        "s_alpha": structure_measure(saved_map, truth),
        "e_phi": float(curves["e_phi"].mean()),
        "mae": float(np.abs(saved_map - truth).mean()),
    }
