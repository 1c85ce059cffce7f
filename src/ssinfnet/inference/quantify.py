"""Lesion quantities of one scan: GGO, consolidation and total lesion amounts, percent of lung, left/right.

Inputs are in the display layout used by :mod:`ssinfnet.inference.segment`: ``(slices, rows, cols)``
with columns running from the patient's right to the patient's left (radiological view). For NIfTI
and DICOM input that layout is derived from the affine, so "left" is the patient's left whatever the
array order on disk. 2D images carry no orientation, so no left/right split is made for them.

The lung region, the percentages and the left/right split are those of :mod:`ssinfnet.core.burden`
(the same as ``phenotypes``); see :mod:`ssinfnet.inference.lungmask` for the lung mask's limits.
Percentages are ``None`` when the lung region is empty.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ssinfnet.core.burden import CLASSES, LEFT, RIGHT, WHOLE, Lateral, measure

#: Key prefix of each part of the scan.
PREFIXES = {WHOLE: "", LEFT: "left_", RIGHT: "right_"}


def quantify(
    labels: np.ndarray,
    lung: np.ndarray,
    element_size: float | None,
    volumetric: bool,
    sides: bool = True,
) -> dict[str, Any]:
    """Flat dict of quantities (one CSV row).

    ``element_size``: the volume of one voxel in mm^3 (``volumetric``: amounts in mL) or the area of
    one pixel in mm^2 (2D images: amounts in mm^2), or None when unknown (counts and percentages only).
    Keys: ``{side}{class}_{voxels|pixels}``, ``{side}{class}_{ml|mm2}`` and ``{side}{class}_percent_of_lung``
    for side in "", "left_", "right_" and class in lung, ggo, consolidation, lesion (percent only for
    lesion classes; left/right percentages are of that side's lung region).
    ``sides=False`` leaves out the left/right keys (for images without a known orientation).
    """
    count_key = "voxels" if volumetric else "pixels"
    unit_key = "ml" if volumetric else "mm2"
    unit_size = None if element_size is None else float(element_size) / (1000.0 if volumetric else 1.0)
    row: dict[str, Any] = {}
    for part, counts in measure(labels, lung, Lateral.display_columns() if sides else None).items():
        prefix = PREFIXES[part]
        for name in ("lung", *CLASSES):
            row[f"{prefix}{name}_{count_key}"] = counts.voxels(name)
            if unit_size is not None:
                row[f"{prefix}{name}_{unit_key}"] = round(counts.voxels(name) * unit_size, 3)
        for name in CLASSES:
            percent = counts.percent_of_lung(name)
            row[f"{prefix}{name}_percent_of_lung"] = None if math.isnan(percent) else round(percent, 3)
    return row
