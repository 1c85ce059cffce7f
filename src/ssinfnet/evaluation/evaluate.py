"""Score predictions against a labeled dataset, and write an evaluation folder.

Scoring works on plain arrays (probability maps and label maps at each image's original size), so it
does not depend on how the predictions were made (see :mod:`ssinfnet.evaluation.predict`).

An evaluation folder holds::

    per_image.csv   one row per image: ids, then "<class>.<metric>" and "infnet.<metric>" columns
    summary.json    mean and 95% CI of every column, AUCs, threshold, model, commit, data fingerprint
    roc.json        ROC curves (pixel, slice and detection level, when defined)
    gallery/        small PNGs (image, truth, prediction) of the best, median and worst slices
    gallery.json    which slices those are and their score
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ssinfnet import fileio
from ssinfnet.data.sample import Sample
from ssinfnet.core.folders import read_json
from ssinfnet.errors import InputError
from ssinfnet.evaluation.gallery import GalleryItem, pick, write_gallery
from ssinfnet.evaluation.infnet_metrics import infnet_scores
from ssinfnet.core.labels import CLASS_NAMES
from ssinfnet.core.metrics import (
    EMPTY_CLASS_RULE, IMAGE_MEAN, INFECTION, METRIC_NAMES, OVERALL, SCORING_RULE, class_scores, mean_ci,
    multiclass_scores, paper_overall,
)
from ssinfnet.evaluation.roc import Roc, pixel_roc, roc

SUMMARY_JSON = "summary.json"
ROC_JSON = "roc.json"
#: Columns of per_image.csv that identify an image rather than score it.
ID_COLUMNS = ("id", "source", "group", "label")
#: Prefix of the Inf-Net protocol columns.
INFNET = "infnet"
#: Per-image predicted lesion fraction: the slice-level score for ROC and detection.
LESION_FRACTION = "lesion_fraction"
TRUTH_LESION_FRACTION = "truth_lesion_fraction"
#: Summary group of the per-image columns that have no "<class>." prefix (the lesion fractions).
SLICE = "slice"


@dataclass
class Evaluation:
    task: str
    """"single" (infection only) or "multi" (background / GGO / consolidation as well)."""
    rows: list[dict[str, Any]]
    threshold: float
    curves: dict[str, Roc] = field(default_factory=dict)
    """"pixel", "slice" and "detection" ROC curves, where defined."""
    gallery: list[GalleryItem] = field(default_factory=list)

    def metric_columns(self) -> list[str]:
        return [key for key in self.rows[0] if key not in ID_COLUMNS] if self.rows else []

    def summary(self) -> dict[str, Any]:
        """Mean and 95% CI of every per-image column, the paper's Overall (multi-class), the AUCs."""
        metrics: dict[str, dict[str, Any]] = {}
        for column in self.metric_columns():
            group, _, name = column.rpartition(".")
            summary = mean_ci(row[column] for row in self.rows).as_dict()
            if summary["n"]:  # a column defined on no image (e.g. fp_area of a class every image has) is left out
                metrics.setdefault(group or SLICE, {})[name] = summary
        add_paper_overall(metrics, len(self.rows))
        return {
            "task": self.task,
            "images": len(self.rows),
            "threshold": self.threshold,
            "scoring_rule": SCORING_RULE,
            "empty_class_rule": EMPTY_CLASS_RULE,
            "metrics": metrics,
            "auc": {name: curve.auc for name, curve in self.curves.items()},
        }


def add_paper_overall(metrics: dict[str, dict[str, Any]], images: int) -> None:
    """Add the paper's ``Overall`` group (mean of the three class means; no CI) when the classes are there."""
    if not all(name in metrics for name in CLASS_NAMES):
        return
    metrics[OVERALL] = {
        metric: {"mean": paper_overall({c: metrics[c][metric]["mean"] for c in CLASS_NAMES}),
                 "ci95": float("nan"), "n": images, "definition": "mean of the three class means"}
        for metric in METRIC_NAMES if all(metric in metrics[c] for c in CLASS_NAMES)
    }


def score_images(
    samples: Sequence[Sample],
    probabilities: Sequence[np.ndarray],
    label_maps: Sequence[np.ndarray] | None = None,
    threshold: float = 0.5,
    positive_label: str | None = None,
    gallery_per_rank: int = 2,
) -> Evaluation:
    """Score one infection probability map (and optionally one label map) per sample.

    Without masks, only slice-level detection is scored, which needs ``Sample.meta.label`` and the
    ``positive_label`` value (e.g. "COVID"): each slice is scored by its predicted lesion fraction.
    """
    if len(probabilities) != len(samples) or (label_maps is not None and len(label_maps) != len(samples)):
        raise ValueError("one prediction per sample is needed")
    if not samples:
        raise InputError("no images to evaluate")
    labeled = all(sample.mask is not None for sample in samples)
    if not labeled and any(sample.mask is not None for sample in samples):
        raise InputError("some images have masks and some do not: evaluate the labeled ones on their own")
    rows = []
    for index, sample in enumerate(samples):
        prob = np.asarray(probabilities[index], dtype=np.float32)
        _check_shape(sample, prob)
        row: dict[str, Any] = {
            "id": sample.meta.id, "source": sample.meta.source, "group": sample.meta.group,
            "label": sample.meta.label or "",
            LESION_FRACTION: float(np.mean(prob >= threshold)),
        }
        if labeled:
            labels = None if label_maps is None else np.asarray(label_maps[index])
            if labels is not None:
                _check_shape(sample, labels)
            row.update(_image_scores(sample.mask, prob, labels, threshold))
        rows.append(row)
    evaluation = Evaluation(task="multi" if label_maps is not None else "single", rows=rows, threshold=threshold)
    if labeled:
        _add_curve(evaluation, "pixel", pixel_roc([s.mask for s in samples], probabilities))
        _add_curve(evaluation, "slice", roc([s.mask.any() for s in samples], [r[LESION_FRACTION] for r in rows]))
        evaluation.gallery = _gallery_items(samples, probabilities, label_maps, rows, threshold, gallery_per_rank)
    if positive_label is not None:
        _add_detection(evaluation, samples, positive_label)
    elif not labeled:
        raise InputError("the dataset has no masks and no slice labels were chosen (--positive-label)")
    return evaluation


def _image_scores(truth: np.ndarray, prob: np.ndarray, labels: np.ndarray | None, threshold: float) -> dict:
    lesion = truth > 0
    scores: dict[str, float] = {TRUTH_LESION_FRACTION: float(lesion.mean())}
    for name, value in class_scores(lesion, prob >= threshold).items():
        scores[f"{INFECTION}.{name}"] = value
    for name, value in infnet_scores(prob, lesion).items():
        scores[f"{INFNET}.{name}"] = value
    if labels is not None:
        for class_name, values in multiclass_scores(truth, labels).items():
            for name, value in values.items():
                scores[f"{class_name}.{name}"] = value
    return scores


def _gallery_items(samples, probabilities, label_maps, rows, threshold, per_rank) -> list[GalleryItem]:
    """Best / median / worst slices by F1 (per-image class mean for two-stage models, infection otherwise)."""
    rank_column = f"{IMAGE_MEAN}.f1" if label_maps is not None else f"{INFECTION}.f1"
    items = []
    for rank, index in pick(rows, rank_column, per_rank):
        sample = samples[index]
        if label_maps is not None:
            truth, shown = sample.mask, np.asarray(label_maps[index])
        else:  # single stage: infection shown as label 1
            truth, shown = sample.mask > 0, np.asarray(probabilities[index]) >= threshold
        items.append(GalleryItem(
            id=sample.meta.id, rank=rank, score=rows[index][rank_column], image=sample.image,
            truth=truth.astype(np.uint8), prediction=shown.astype(np.uint8),
        ))
    return items


def _add_detection(evaluation: Evaluation, samples: Sequence[Sample], positive_label: str) -> None:
    labels = [sample.meta.label for sample in samples]
    if any(label is None for label in labels):
        raise InputError("detection needs a slice label for every image; some have none")
    if positive_label not in labels:
        found = ", ".join(sorted(set(labels)))
        raise InputError(f"no slice is labeled {positive_label!r} (labels found: {found})")
    curve = roc([label == positive_label for label in labels], [row[LESION_FRACTION] for row in evaluation.rows])
    _add_curve(evaluation, "detection", curve)


def _add_curve(evaluation: Evaluation, name: str, curve: Roc | None) -> None:
    if curve is not None:  # None: only one class present, so no ROC.
        evaluation.curves[name] = curve


def _check_shape(sample: Sample, array: np.ndarray) -> None:
    if array.shape != tuple(sample.meta.original_size) or (
        sample.mask is not None and array.shape != sample.mask.shape
    ):
        raise ValueError(
            f"{sample.meta.id}: prediction {array.shape} is not at the image's original size "
            f"{tuple(sample.meta.original_size)}"
        )


def write_evaluation(
    out_dir: str | Path, evaluation: Evaluation, provenance: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write the evaluation folder atomically (``provenance``: model, threshold source, data, commit)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", out_dir)
    with fileio.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        columns = list(ID_COLUMNS) + evaluation.metric_columns()
        fileio.write_csv(tmp / "per_image.csv", [_csv_row(row) for row in evaluation.rows], columns)
        fileio.write_json(tmp / SUMMARY_JSON, {"kind": "evaluation", **evaluation.summary(), **provenance})
        fileio.write_json(tmp / ROC_JSON, {name: curve.as_dict() for name, curve in evaluation.curves.items()})
        write_gallery(tmp, evaluation.task, evaluation.gallery)
    return out_dir


def is_evaluation(folder: Path) -> bool:
    return read_summary(folder).get("kind") == "evaluation"


def read_summary(folder: str | Path) -> dict[str, Any]:
    """The folder's summary.json ({} when absent; a legacy one as written, see ``legacy.upgrade_summary``)."""
    return read_json(Path(folder) / SUMMARY_JSON)


def read_curves(folder: str | Path) -> dict[str, Roc]:
    """The folder's ROC curves by level ({} when it has none)."""
    return {level: Roc.from_dict(data) for level, data in read_json(Path(folder) / ROC_JSON).items()}


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """NaN as an empty cell, so spreadsheets and pandas both read it as missing."""
    return {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
