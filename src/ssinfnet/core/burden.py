"""Lesion burden of one scan: the one definition that ``segment`` (``inference/quantify.py``) and
``phenotypes`` (``analysis/phenotypes.py``) both report.

- *Lung region* = lung mask OR lesion (GGO or consolidation). A lung mask from HU thresholds misses
  dense consolidation; a lesion outside it is added to the region rather than dropped from the
  denominator. Every percentage is ``100 x voxels of the class / voxels of the lung region`` (so a
  lesion always counts in both). ``segment`` already joins the lesions touching the lung to its mask
  (``lungmask.confine_lesions``), so there the region is its lung mask.
- *Left / right*: a voxel's position along the patient's right-to-left axis is a linear function of its
  index (:class:`Lateral`: from the display layout, or from a RAS affine). The midline is the middle of
  the lung region's extent along that axis; voxels beyond it are the patient's left, the others
  (a voxel exactly on the midline included) the right. Side percentages are of that side's lung region.

Counts are voxels; the callers turn them into mL or mm^2 with their voxel size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Class name -> label values it counts (0 background, 1 GGO, 2 consolidation).
CLASSES = {"ggo": (1,), "consolidation": (2,), "lesion": (1, 2)}
WHOLE, RIGHT, LEFT = "whole", "right", "left"


@dataclass(frozen=True)
class Counts:
    """Voxels of the lung region and of each lesion class, in one scan or one side of it."""

    lung: int
    ggo: int
    consolidation: int

    @property
    def lesion(self) -> int:
        return self.ggo + self.consolidation

    def voxels(self, name: str) -> int:
        """``name``: "lung" or one of :data:`CLASSES`."""
        return int(getattr(self, name))

    def percent_of_lung(self, name: str) -> float:
        """100 x class voxels / lung-region voxels; NaN when the region is empty."""
        return 100.0 * self.voxels(name) / self.lung if self.lung else float("nan")


@dataclass(frozen=True)
class Lateral:
    """The patient's right-to-left coordinate of voxel (i, j, k): ``coefficients . (i, j, k) + offset``
    (larger = further to the patient's left)."""

    coefficients: tuple[float, float, float]
    offset: float = 0.0

    @classmethod
    def display_columns(cls) -> "Lateral":
        """The display layout (slices, rows, cols): columns run from the patient's right to the left."""
        return cls((0.0, 0.0, 1.0))

    @classmethod
    def from_affine(cls, affine: np.ndarray) -> "Lateral":
        """A voxel-to-RAS+ affine: world +x points to the patient's right, so left = -x."""
        affine = np.asarray(affine, dtype=float)
        return cls(tuple(-affine[0, :3]), -float(affine[0, 3]))

    def planes(self, shape: tuple[int, int, int]):
        """(i, coordinate of every voxel of array plane [i]), one plane at a time (bounded memory)."""
        a, b, c = self.coefficients
        j, k = np.meshgrid(np.arange(shape[1]), np.arange(shape[2]), indexing="ij")
        base = b * j + c * k + self.offset
        for i in range(shape[0]):
            yield i, base + a * i


def lung_region(labels: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """Lung mask OR lesion, boolean."""
    return np.asarray(lung, dtype=bool) | np.isin(labels, CLASSES["lesion"])


def measure(labels: np.ndarray, lung: np.ndarray, lateral: Lateral | None = None) -> dict[str, Counts]:
    """Counts of a 3D label map (0 bg / 1 GGO / 2 consolidation) and lung mask of the same shape:
    ``{"whole": ...}``, plus ``"right"`` and ``"left"`` when ``lateral`` says where they are."""
    labels = np.asarray(labels)
    if labels.shape != np.shape(lung) or labels.ndim != 3:
        raise ValueError(f"labels {labels.shape} and lung {np.shape(lung)} must be the same 3D shape")
    region = lung_region(labels, lung)
    counts = {WHOLE: _counts(labels, region)}
    if lateral is not None:
        counts.update(_sides(labels, region, lateral))
    return counts


def _counts(labels: np.ndarray, region: np.ndarray) -> Counts:
    return Counts(lung=int(np.count_nonzero(region)), ggo=int(np.count_nonzero(labels == 1)),
                  consolidation=int(np.count_nonzero(labels == 2)))


def _sides(labels: np.ndarray, region: np.ndarray, lateral: Lateral) -> dict[str, Counts]:
    low, high = np.inf, -np.inf
    for i, coordinate in lateral.planes(region.shape):
        inside = coordinate[region[i]]
        if inside.size:
            low, high = min(low, inside.min()), max(high, inside.max())
    midline = (low + high) / 2.0 if low <= high else 0.0
    totals = {LEFT: np.zeros(3, dtype=np.int64), RIGHT: np.zeros(3, dtype=np.int64)}
    for i, coordinate in lateral.planes(region.shape):
        left = coordinate > midline
        for side, mask in ((LEFT, left), (RIGHT, ~left)):
            totals[side] += [np.count_nonzero(region[i] & mask), np.count_nonzero((labels[i] == 1) & mask),
                             np.count_nonzero((labels[i] == 2) & mask)]
    return {side: Counts(*map(int, values)) for side, values in totals.items()}
