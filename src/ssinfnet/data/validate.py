"""``ssinfnet data validate``: what a data path holds and what is wrong with it, before training.

Every file is checked on its own and a bad file becomes a line in ``problems`` instead of stopping
the scan, so one run lists everything to fix. Unlabeled folders are checked from image headers
only (thousands of files in seconds); ``deep=True`` decodes every pixel too.

Formats come from the one reader registry (:mod:`ssinfnet.data.formats`), and a NIfTI image or
DICOM series is checked by :func:`ssinfnet.data.volumes.check_scan`, the function ``segment`` uses:
an image volume ``segment`` refuses is a problem here, with the same message. (A NIfTI holding only
small integers is checked as a label volume instead.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from ssinfnet.data import formats, readers, volumes
from ssinfnet.data.imageio import read_header, read_image_2d, read_mask_2d
from ssinfnet.core.labels import CLASS_NAMES
from ssinfnet.errors import InputError

#: Names of MedSeg label values in label-volume reports (3 only exists before effusion mapping).
MEDSEG_LABEL_NAMES = {0: "background", 1: "GGO", 2: "consolidation", 3: "pleural effusion"}
#: The mode of a volume's slices when :func:`volumes.check_scan` refused it (the problem says why).
NOT_CT = "not CT"

T = TypeVar("T")


@dataclass
class SliceStats:
    """Counts over the slices of one split: sizes, modes, label pixels, problems."""

    count: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)
    modes: Counter = field(default_factory=Counter)
    label_pixels: Counter = field(default_factory=Counter)
    slices_with_label: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    value_range: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, size: tuple[int, int], mode: str, mask: np.ndarray | None = None, label: str | None = None,
            values: np.ndarray | None = None) -> None:
        """One slice; ``values``: stored intensities (HU) whose range is worth reporting."""
        self.count += 1
        if values is not None:
            low, high = float(values.min()), float(values.max())
            if self.value_range:
                low, high = min(low, self.value_range[0]), max(high, self.value_range[1])
            self.value_range = [low, high]
        self.sizes.append((int(size[0]), int(size[1])))
        self.modes[mode] += 1
        if label is not None:
            self.labels[label] += 1
        if mask is not None:
            present, counts = np.unique(mask, return_counts=True)
            for value, n in zip(present.tolist(), counts.tolist()):
                self.label_pixels[int(value)] += n
                self.slices_with_label[int(value)] += 1

    def check(self, what: Callable[[], T]) -> T | None:
        """Run one file's check and return what it returns; an InputError becomes a listed problem (None)."""
        try:
            return what()
        except InputError as err:
            self.problems.append(str(err))
            return None

    def scan_modality(self, volume: volumes.Volume, source: Path) -> str:
        """The modality :func:`volumes.check_scan` gives (as ``segment`` checks the scan), or
        :data:`NOT_CT` when it refuses it (a listed problem)."""
        checked = self.check(lambda: volumes.check_scan(volume.array, volume.affine, source))
        return NOT_CT if checked is None else checked[1]

    def to_dict(self, label_names: dict[int, str]) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count}
        if self.sizes:
            rows, cols = zip(*self.sizes)
            out["size_min"] = [min(rows), min(cols)]
            out["size_max"] = [max(rows), max(cols)]
        out["modes"] = dict(sorted(self.modes.items()))
        if self.value_range:
            out["value_range"] = self.value_range
        if self.labels:
            out["labels"] = dict(sorted(self.labels.items()))
        if self.label_pixels:
            total = sum(self.label_pixels.values())

            def name(value: int) -> str:
                return label_names.get(value, str(value))

            out["label_histogram"] = {name(v): n for v, n in sorted(self.label_pixels.items())}
            out["slices_with_label"] = {name(v): n for v, n in sorted(self.slices_with_label.items())}
            out["class_shares"] = {name(v): round(n / total, 6) for v, n in sorted(self.label_pixels.items())}
        return out


def validate_path(path: str | Path, *, deep: bool = False) -> dict[str, Any]:
    """Report on ``path`` (any layout :func:`readers.detect_layout` knows); see :func:`format_report`."""
    path = Path(path)
    layout = readers.detect_layout(path)
    splits: dict[str, SliceStats]
    names = dict(enumerate(CLASS_NAMES))
    if layout == "semiseg":
        folders = {split: [path / sub for sub in readers.SEMISEG_FOLDERS[split, "multi"]] for split in ("train", "test")}
        splits = {split: _check_pairs(*dirs) for split, dirs in folders.items() if dirs[0].is_dir()}
    elif layout == "paired":
        splits = {"all": _check_pairs(*readers.paired_dirs(path))}
    elif layout == "nifti":
        layout, stats = _check_nifti(path)
        splits = {"volume": stats}
        names = MEDSEG_LABEL_NAMES
    elif layout == "dicom":
        splits = {"series": _check_dicom(path)}
    elif layout == "dicom-slice-labels":
        splits = {"series": _check_slice_labelled(path)}
    else:
        splits = {"all": _check_unlabeled(path, deep or path.is_file())}  # one file: decoded, as segment does
    problems = [p for stats in splits.values() for p in stats.problems]
    return {"path": str(path), "layout": layout,
            "splits": {name: stats.to_dict(names) for name, stats in splits.items()},
            "problems": problems}


def _check_pairs(image_dir: Path, mask_dir: Path) -> SliceStats:
    stats = SliceStats()
    pairing = readers.match_by_stem(image_dir, mask_dir)
    stats.problems += [f"{p}: no mask with this name in {mask_dir}" for p in pairing.missing_masks]
    stats.problems += [f"{p}: mask has no image with the same name" for p in pairing.orphan_masks]

    def check(image: Path, mask: Path) -> None:
        if formats.reader_for(image).volumetric:
            for sample in readers.read_pair(image, mask):
                stats.add(sample.image.shape, sample.meta.modality, sample.mask)
            return
        size, mode = read_header(image)
        read_image_2d(image)  # labeled sets are small: decode them to catch truncated files
        labels = read_mask_2d(mask)
        if labels.shape != size:
            raise InputError(f"mask size {labels.shape[0]}x{labels.shape[1]} differs from image size "
                             f"{size[0]}x{size[1]} ({image.name})", mask)
        stats.add(size, mode, labels)

    for image, mask in pairing.pairs:
        stats.check(lambda: check(image, mask))
    return stats


def _check_nifti(path: Path) -> tuple[str, SliceStats]:
    """A NIfTI file is a label volume when it holds only small integers (see
    :func:`volumes.looks_like_labels`; values other than MedSeg's 0-3 are a problem), otherwise an
    image, checked as ``segment`` checks it (:func:`volumes.check_scan`)."""
    volume = formats.NIFTI.read(path)
    stats = SliceStats()
    is_labels = volumes.looks_like_labels(volume.array)
    if is_labels:
        stats.check(lambda: volumes.check_affine(volume.affine, path))
        stats.check(lambda: volumes.check_label_values(volume.array, path))
    else:
        modality = stats.scan_modality(volume, path)
    for piece in volumes.display_view(volume.array, volumes.display_plane(volume.affine, volume.array.shape)):
        if is_labels:
            stats.add(piece.shape, "labels", piece.astype(np.int64))
        else:
            stats.add(piece.shape, modality, values=piece)
    return ("nifti-labels" if is_labels else "nifti-image"), stats


def _check_dicom(folder: Path) -> SliceStats:
    stats = SliceStats()

    volume = stats.check(lambda: formats.DICOM.read(folder))
    if volume is not None:
        modality = stats.scan_modality(volume, folder)
        for k in range(volume.array.shape[2]):
            stats.add(volume.array.shape[:2], modality, values=volume.array[:, :, k])
    return stats


def _check_slice_labelled(folder: Path) -> SliceStats:
    """A DICOM series with per-slice labels: the series as :func:`_check_dicom` checks it, and every slice
    matched to one row of the label table (the slice label counts)."""
    stats = _check_dicom(readers.slice_labelled_series(folder))
    if not stats.problems:
        for sample in stats.check(lambda: readers.read_slice_labelled_series(folder)) or []:
            stats.labels[sample.meta.label] += 1
    return stats


def _check_unlabeled(root: Path, deep: bool) -> SliceStats:
    stats = SliceStats()
    files = readers.list_unlabeled_files(root)
    manifest_path = root / "manifest.csv"
    labels = readers.read_manifest(manifest_path) if manifest_path.is_file() else {}
    found = set()

    def check(path: Path) -> None:
        key = path.relative_to(root).as_posix() if root in path.parents else path.name
        found.add(key)
        if formats.reader_for(path).volumetric:
            for sample in readers.read_unlabeled_file(path, root):
                stats.add(sample.image.shape, "hu", label=labels.get(key))
            return
        size, mode = read_header(path)
        if deep:
            read_image_2d(path)
        stats.add(size, mode, label=labels.get(key))

    for path in files:
        stats.check(lambda: check(path))
    stats.problems += [f"{root / name}: listed in {manifest_path.name} but missing"
                       for name in sorted(set(labels) - found)]
    return stats


def format_report(report: dict[str, Any]) -> str:
    """Human-readable report, one fact per line."""
    lines = [f"{report['path']}: layout {report['layout']}"]
    for name, split in report["splits"].items():
        lines.append(f"  {name}: {split['count']} slices")
        if "size_min" in split:
            lines.append(f"    size (rows x cols): {split['size_min'][0]}x{split['size_min'][1]} .. "
                         f"{split['size_max'][0]}x{split['size_max'][1]}")
        lines.append("    modes: " + ", ".join(f"{m} {n}" for m, n in split["modes"].items()))
        if "value_range" in split:
            units = " (HU)" if set(split["modes"]) == {"hu"} else ""
            lines.append(f"    stored values{units}: {split['value_range'][0]:g} .. {split['value_range'][1]:g}")
        if "labels" in split:
            lines.append("    slice labels: " + ", ".join(f"{m} {n}" for m, n in split["labels"].items()))
        if "label_histogram" in split:
            lines.append("    label pixels: " + ", ".join(f"{m} {n}" for m, n in split["label_histogram"].items()))
            lines.append("    slices with label: " + ", ".join(
                f"{m} {n}" for m, n in split["slices_with_label"].items()))
            lines.append("    class pixel shares: " + ", ".join(
                f"{m} {100 * s:.2f}%" for m, s in split["class_shares"].items()))
    lines.append(f"  problems: {len(report['problems'])}")
    lines += [f"    {p}" for p in report["problems"]]
    return "\n".join(lines)
