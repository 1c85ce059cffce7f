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

import itertools
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ssinfnet import fileio
from ssinfnet.core.folders import read_json
from ssinfnet.core.labels import CLASS_NAMES
from ssinfnet.core.metrics import (
    EMPTY_CLASS_RULE, IMAGE_MEAN, INFECTION, METRIC_NAMES, OVERALL, SCORING_RULE, ci_record, class_scores,
    confusion_counts, mean_ci, multiclass_scores, paper_overall,
)
from ssinfnet.data.sample import Sample
from ssinfnet.errors import InputError
from ssinfnet.evaluation.gallery import GalleryItem, pick, write_gallery
from ssinfnet.evaluation.infnet_metrics import infnet_scores
from ssinfnet.evaluation.roc import PixelRoc, Roc, roc

SUMMARY_JSON = "summary.json"
ROC_JSON = "roc.json"
#: Columns of per_image.csv that identify an image rather than score it.
ID_COLUMNS = ("id", "source", "group", "label")
#: Prefix of the Inf-Net protocol columns.
INFNET = "infnet"
#: Per-image predicted lesion fraction: the slice-level score for ROC and detection.
LESION_FRACTION = "lesion_fraction"
TRUTH_LESION_FRACTION = "truth_lesion_fraction"
#: Per-image share of the lung mask labelled as lesion (product predictions; NaN where no lung was found):
#: the slice-level detection score, as segment reports it ("lesion % of lung").
LESION_SHARE_OF_LUNG = "lesion_share_of_lung"
#: Summary group of the per-image columns that have no "<class>." prefix (the lesion fractions).
SLICE = "slice"
#: Summary group of the per-volume (3D) scores.
VOLUME = "volume"
VOLUMES_CSV = "volumes.csv"
#: The product's slice-level operating point: a slice is called positive when segment labels any lesion in it.
DETECTION_OPERATING_POINT = "any lesion labelled in the slice (lesion share of lung > 0)"
#: What was predicted: segment's whole path, or the networks alone (the Inf-Net benchmark protocol).
PREDICTIONS = {
    "product": "segment's path: lung mask, crop to the lungs, both stages with TTA, lesions confined to the lung",
    "raw": "the networks alone on each whole slice (Inf-Net benchmark protocol): no lung mask, crop or confinement",
}


@dataclass
class Evaluation:
    task: str
    """"single" (infection only) or "multi" (background / GGO / consolidation as well)."""
    rows: list[dict[str, Any]]
    threshold: float
    curves: dict[str, Roc] = field(default_factory=dict)
    """"pixel", "slice" and "detection" ROC curves, where defined."""
    gallery: list[GalleryItem] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    """Per-volume rows (3D scores over all of a volume's slices), for volumetric datasets."""
    detection: dict[str, Any] = field(default_factory=dict)
    """Slice-level detection: the score used and sensitivity/specificity at the operating point."""

    def metric_columns(self) -> list[str]:
        return [key for key in self.rows[0] if key not in ID_COLUMNS] if self.rows else []

    def summary(self) -> dict[str, Any]:
        """Mean and 95% CI of every per-image column (a cluster bootstrap over the images' groups where a
        group holds several images, see ``core.metrics``; ``"ci"`` says which), the paper's Overall
        (multi-class), the AUCs."""
        metrics: dict[str, dict[str, Any]] = {}
        groups = [row["group"] for row in self.rows]
        for column in self.metric_columns():
            group, _, name = column.rpartition(".")
            summary = mean_ci((row[column] for row in self.rows), groups).as_dict()
            if summary["n"]:  # a column defined on no image (e.g. fp_area of a class every image has) is left out
                metrics.setdefault(group or SLICE, {})[name] = summary
        add_paper_overall(metrics, len(self.rows))
        for column in (self.volumes[0] if self.volumes else {}):
            if column not in ("id", "source"):
                summary = mean_ci(row[column] for row in self.volumes).as_dict()
                if summary["n"]:
                    metrics.setdefault(VOLUME, {})[column] = summary
        return {
            "task": self.task,
            "images": len(self.rows),
            "threshold": self.threshold,
            "scoring_rule": SCORING_RULE,
            "empty_class_rule": EMPTY_CLASS_RULE,
            "ci": ci_record(groups),
            "metrics": metrics,
            "auc": {name: curve.auc for name, curve in self.curves.items()},
            **({"volumes": len(self.volumes)} if self.volumes else {}),
            **({"detection": self.detection} if self.detection else {}),
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
    probabilities: Iterable[np.ndarray],
    label_maps: Iterable[np.ndarray] | None = None,
    threshold: float = 0.5,
    positive_label: str | None = None,
    gallery_per_rank: int = 2,
) -> Evaluation:
    """Score one infection probability map (and optionally one label map) per sample.

    Without masks, only slice-level detection is scored, which needs ``Sample.meta.label`` and the
    ``positive_label`` value (e.g. "COVID"): each slice is scored by its predicted lesion fraction.
    """
    maps = zip(probabilities, label_maps if label_maps is not None else itertools.repeat(None))
    return score_predictions(samples, maps, label_maps is not None, threshold, positive_label, gallery_per_rank)


def score_predictions(
    samples: Sequence[Sample],
    predictions: Iterable[tuple],
    multi: bool,
    threshold: float = 0.5,
    positive_label: str | None = None,
    gallery_per_rank: int = 2,
    progress: bool = False,
    calls_from_labels: bool = False,
) -> Evaluation:
    """:func:`score_images` of (probability map, label map or None[, lung mask]) tuples, e.g. a generator:
    each is scored as it arrives and then dropped (:class:`Scorer`); ``progress`` shows a bar."""
    scorer = Scorer(samples, threshold, multi, gallery_per_rank, calls_from_labels)
    with tqdm(total=len(samples), desc="evaluate", unit="slice", disable=not progress) as bar:
        for prediction in predictions:
            scorer.add(*prediction)
            bar.update()
    return scorer.finish(positive_label)


def truth_is_multiclass(samples: Sequence[Sample]) -> bool:
    """Whether the masks tell GGO from consolidation: some mask holds label 2. Binary masks (0/1, 0/255:
    the most common public format) hold only 0 and 1 and are scored as infection masks only."""
    return any(sample.mask is not None and bool((sample.mask == 2).any()) for sample in samples)


class Scorer:
    """Per-image scores computed as the predictions of ``samples`` arrive, in order; what is kept per image
    is its row, its share of the pixel ROC histograms and its shown prediction compressed (for the
    gallery), never the probability map.

    ``calls_from_labels``: the lesion call of an image is its label map > 0 (what segment writes), not the
    infection probability at the threshold (the networks' protocol). Volume slices (``Sample.hu``) also
    add up into one 3D row per volume.
    """

    def __init__(self, samples: Sequence[Sample], threshold: float, multi: bool, gallery_per_rank: int = 2,
                 calls_from_labels: bool = False):
        if not samples:
            raise InputError("no images to evaluate")
        self.samples, self.threshold, self.multi, self.per_rank = samples, threshold, multi, gallery_per_rank
        self.calls_from_labels = calls_from_labels
        self.labeled = all(sample.mask is not None for sample in samples)
        if not self.labeled and any(sample.mask is not None for sample in samples):
            raise InputError("some images have masks and some do not: evaluate the labeled ones on their own")
        self.rows: list[dict[str, Any]] = []
        self.shown: list[bytes] = []
        self.pixels = PixelRoc()
        self.volumes: dict[str, VolumeCounts] = {}

    def add(self, probability: np.ndarray, labels: np.ndarray | None = None, lung: np.ndarray | None = None) -> None:
        """The next sample's infection probability map (and label map, and the product's lung mask)."""
        if len(self.rows) == len(self.samples):
            raise ValueError("one prediction per sample is needed")
        sample = self.samples[len(self.rows)]
        prob = np.asarray(probability, dtype=np.float32)
        _check_shape(sample, prob)
        labels = None if labels is None else np.asarray(labels)
        if labels is not None:
            _check_shape(sample, labels)
        called = labels > 0 if self.calls_from_labels and labels is not None else prob >= self.threshold
        row: dict[str, Any] = {
            "id": sample.meta.id, "source": sample.meta.source, "group": sample.meta.group,
            "label": sample.meta.label or "",
            LESION_FRACTION: float(np.mean(called)),
        }
        if lung is not None:
            area = int(np.count_nonzero(lung))
            row[LESION_SHARE_OF_LUNG] = float(np.count_nonzero(called & lung) / area) if area else float("nan")
        if self.labeled:
            shown_labels = labels if self.multi else None
            row.update(_image_scores(sample.mask, prob, called, shown_labels))
            self.pixels.add(sample.mask, prob)
            if sample.hu is not None:  # a volume's slice: its counts add up into the volume's 3D row
                if sample.meta.source not in self.volumes:
                    self.volumes[sample.meta.source] = VolumeCounts(sample)
                self.volumes[sample.meta.source].add(sample.mask, called, shown_labels)
            if self.per_rank:
                shown = labels if self.multi else called  # single stage: infection as label 1
                self.shown.append(zlib.compress(np.asarray(shown, dtype=np.uint8).tobytes(), 1))
        self.rows.append(row)

    def finish(self, positive_label: str | None = None) -> Evaluation:
        if len(self.rows) != len(self.samples):
            raise ValueError("one prediction per sample is needed")
        evaluation = Evaluation(task="multi" if self.multi else "single", rows=self.rows, threshold=self.threshold,
                                volumes=[counts.row() for counts in self.volumes.values()])
        if self.labeled:
            _add_curve(evaluation, "pixel", self.pixels.result())
            _add_curve(evaluation, "slice", roc([s.mask.any() for s in self.samples],
                                                [r[LESION_FRACTION] for r in self.rows]))
            evaluation.gallery = self._gallery_items()
        if positive_label is not None:
            _add_detection(evaluation, self.samples, positive_label)
        elif not self.labeled:
            raise InputError("the dataset has no masks and no slice labels were chosen (--positive-label)")
        return evaluation

    def _gallery_items(self) -> list[GalleryItem]:
        """Best / median / worst slices by F1 (per-image class mean for two-stage models, infection otherwise)."""
        rank_column = f"{IMAGE_MEAN}.f1" if self.multi else f"{INFECTION}.f1"
        items = []
        for rank, index in pick(self.rows, rank_column, self.per_rank):
            sample = self.samples[index]
            truth = sample.mask if self.multi else sample.mask > 0
            shown = np.frombuffer(zlib.decompress(self.shown[index]), dtype=np.uint8).reshape(sample.mask.shape)
            items.append(GalleryItem(
                id=sample.meta.id, rank=rank, score=self.rows[index][rank_column], image=sample.image,
                truth=truth.astype(np.uint8), prediction=shown,
            ))
        return items


class VolumeCounts:
    """Confusion counts of one volume summed over its slices: the field's per-scan (3D) Dice."""

    def __init__(self, sample: Sample):
        meta = sample.meta
        self.id, self.source = meta.id.rsplit("#", 1)[0], meta.source
        spacing = (*(meta.spacing or (float("nan"),) * 2), meta.slice_thickness or float("nan"))
        self.ml_per_voxel = float(np.prod(spacing)) / 1000.0
        self.counts: dict[str, list[int]] = {}

    def add(self, truth: np.ndarray, called: np.ndarray, labels: np.ndarray | None) -> None:
        pairs = {INFECTION: (truth > 0, called)}
        if labels is not None:
            pairs.update({name: (truth == k, labels == k) for k, name in enumerate(CLASS_NAMES) if k})
        for name, (t, p) in pairs.items():
            counts = confusion_counts(t, p)
            total = self.counts.setdefault(name, [0, 0, 0])
            total[0] += counts.tp
            total[1] += counts.fp
            total[2] += counts.fn

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "source": self.source}
        for name, (tp, fp, fn) in self.counts.items():
            row[f"{name}_dice"] = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else float("nan")
        tp, fp, fn = self.counts[INFECTION]
        row["truth_lesion_ml"] = (tp + fn) * self.ml_per_voxel
        row["predicted_lesion_ml"] = (tp + fp) * self.ml_per_voxel
        return row


def _image_scores(truth: np.ndarray, prob: np.ndarray, called: np.ndarray, labels: np.ndarray | None) -> dict:
    lesion = truth > 0
    scores: dict[str, float] = {TRUTH_LESION_FRACTION: float(lesion.mean())}
    for name, value in class_scores(lesion, called).items():
        scores[f"{INFECTION}.{name}"] = value
    for name, value in infnet_scores(prob, lesion).items():
        scores[f"{INFNET}.{name}"] = value
    if labels is not None:
        for class_name, values in multiclass_scores(truth, labels).items():
            for name, value in values.items():
                scores[f"{class_name}.{name}"] = value
    return scores


def _add_detection(evaluation: Evaluation, samples: Sequence[Sample], positive_label: str) -> None:
    """Slice-level detection ROC of the slice labels, scored by the lesion share of the lung where the product
    gave a lung mask (as segment reports it), else by the lesion fraction of the image; with sensitivity and
    specificity at the product's operating point (:data:`DETECTION_OPERATING_POINT`)."""
    labels = [sample.meta.label for sample in samples]
    if any(label is None for label in labels):
        raise InputError("detection needs a slice label for every image; some have none")
    if positive_label not in labels:
        found = ", ".join(sorted(set(labels)))
        raise InputError(f"no slice is labeled {positive_label!r} (labels found: {found})")
    column = LESION_SHARE_OF_LUNG if LESION_SHARE_OF_LUNG in evaluation.rows[0] else LESION_FRACTION
    scores = np.nan_to_num([row[column] for row in evaluation.rows], nan=0.0)  # no lung found: no lesion
    positive = np.array([label == positive_label for label in labels])
    _add_curve(evaluation, "detection", roc(positive.tolist(), scores.tolist()))
    called = scores > 0
    evaluation.detection = {
        "score": column, "positive_label": positive_label, "positives": int(positive.sum()),
        "negatives": int((~positive).sum()), "operating_point": DETECTION_OPERATING_POINT,
        "sensitivity": float(called[positive].mean()) if positive.any() else float("nan"),
        "specificity": float((~called[~positive]).mean()) if (~positive).any() else float("nan"),
    }


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
    fileio.refuse_existing(out_dir, overwrite)
    with fileio.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        columns = list(ID_COLUMNS) + evaluation.metric_columns()
        fileio.write_csv(tmp / "per_image.csv", [_csv_row(row) for row in evaluation.rows], columns)
        fileio.write_json(tmp / SUMMARY_JSON, {"kind": "evaluation", **evaluation.summary(), **provenance})
        fileio.write_json(tmp / ROC_JSON, {name: curve.as_dict() for name, curve in evaluation.curves.items()})
        write_gallery(tmp, evaluation.task, evaluation.gallery)
        if evaluation.volumes:
            fileio.write_csv(tmp / VOLUMES_CSV, [_csv_row(row) for row in evaluation.volumes],
                             list(evaluation.volumes[0]))
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
