"""Lesion quantities of one scan: GGO, consolidation and total lesion amounts, percent of lung, left/right.

Inputs are in the display layout used by :mod:`ssinfnet.inference.segment`: ``(slices, rows, cols)``
with columns running from the patient's right to the patient's left (radiological view). For NIfTI
and DICOM input that layout is derived from the affine, so "left" is the patient's left whatever the
array order on disk. 2D images carry no orientation, so no left/right split is made for them.

Left and right are split at the mid-sagittal plane estimated as the middle of the lung mask's extent
from right to left (the image centre when the mask is empty). Percentages count lesion voxels inside
the lung mask over lung-mask voxels (see :mod:`ssinfnet.inference.lungmask` for its limits) and are
``None`` when the mask is empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Quantity classes: name -> label values counted.
CLASSES = {"ggo": (1,), "consolidation": (2,), "lesion": (1, 2)}
SIDES = ("", "left_", "right_")


def quantify(
    labels: np.ndarray,
    lung: np.ndarray,
    element_size: float | None,
    volumetric: bool,
    sides: bool = True,
) -> dict[str, Any]:
    """Flat dict of quantities (one CSV row).

    ``element_size``: the volume of one voxel in mm^3 (``volumetric``: amounts in mL) or the area of
    one pixel in mm^2 (2D images: amounts in mm^2), or None when unknown (counts and percentages only). Keys: ``{side}{class}_{voxels|pixels}``, ``{side}{class}_{ml|mm2}``
    and ``{side}{class}_percent_of_lung`` for side in "", "left_", "right_" and class in lung, ggo,
    consolidation, lesion (percent only for lesion classes; left/right percentages are of that lung).
    ``sides=False`` leaves out the left/right keys (for images without a known orientation).
    """
    if labels.shape != lung.shape or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and lung {lung.shape} must be the same (slices, rows, cols)")
    count_key = "voxels" if volumetric else "pixels"
    unit_key = "ml" if volumetric else "mm2"
    unit_size = None if element_size is None else float(element_size) / (1000.0 if volumetric else 1.0)

    split = _midline_column(lung)
    columns = {"": slice(None), "right_": slice(None, split), "left_": slice(split, None)}
    row: dict[str, Any] = {}
    for side in SIDES if sides else SIDES[:1]:
        side_labels, side_lung = labels[:, :, columns[side]], lung[:, :, columns[side]]
        counts = {"lung": int(side_lung.sum())}
        inside = {}
        for name, values in CLASSES.items():
            in_class = np.isin(side_labels, values)
            counts[name] = int(in_class.sum())
            inside[name] = int((in_class & side_lung).sum())
        for name, count in counts.items():
            row[f"{side}{name}_{count_key}"] = count
            if unit_size is not None:
                row[f"{side}{name}_{unit_key}"] = round(count * unit_size, 3)
        for name in CLASSES:
            percent = 100.0 * inside[name] / counts["lung"] if counts["lung"] else None
            row[f"{side}{name}_percent_of_lung"] = None if percent is None else round(percent, 3)
    return row


def _midline_column(lung: np.ndarray) -> int:
    """First column on the patient's left of the mid-sagittal plane (columns run right -> left)."""
    cols = np.flatnonzero(lung.any(axis=(0, 1)))
    middle = (cols[0] + cols[-1]) / 2 if cols.size else (lung.shape[2] - 1) / 2
    return int(np.floor(middle)) + 1
