"""The one type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

@dataclass
class SampleMeta:
    source: str
    """File (or folder, for DICOM) the slice was read from."""
    id: str
    """Unique slice id within its dataset (file stem, or ``<volume>#<slice index>``)."""
    group: str
    """Volume or patient id; splits keep a group together. Equals ``id`` when nothing groups slices."""
    original_size: tuple[int, int]
    """(rows, cols) of the slice as stored, before any resizing."""
    spacing: tuple[float, float] | None = None
    """Pixel spacing in mm (rows, cols); None for 8-bit images without spacing."""
    slice_thickness: float | None = None
    """Spacing between slices in mm for volumes (for mL); None for 2D images."""
    geometry: dict[str, Any] = field(default_factory=dict)
    """What is needed to map a prediction back: e.g. {"kind": "nifti", "slice_index": k,
    "affine": 4x4 list, "volume_shape": [...], "axis": 2} or {"kind": "image2d"}."""
    label: str | None = None
    """Slice-level label when the dataset has one (e.g. "COVID" / "NonCOVID")."""
    modality: str = "ct"
    """"hu" when the source stored Hounsfield units, "8bit" for display-windowed images."""


@dataclass
class Sample:
    image: np.ndarray
    """float32 (rows, cols) in [0, 1] after the intensity policy (:mod:`ssinfnet.data.intensity`)."""
    mask: np.ndarray | None
    """int64 (rows, cols): 0 background, 1 GGO, 2 consolidation; None when unlabeled."""
    meta: SampleMeta
    lung: np.ndarray | None = None
    """bool (rows, cols) lung mask when the source provides one."""
    hu: np.ndarray | None = None
    """float32 Hounsfield units when the source had them (for lesion intensity phenotypes)."""

    @property
    def infection(self) -> np.ndarray | None:
        """Binary infection mask (GGO or consolidation)."""
        return None if self.mask is None else (self.mask > 0).astype(np.int64)
