"""The one intensity policy: whatever a slice was stored as, the network sees float32 in [0, 1].

Modalities (as returned by :func:`ssinfnet.data.imageio.read_image_2d` and the volume readers):

- ``"hu"``: Hounsfield units (NIfTI, DICOM): clipped to a window (lung window by default) -> [0, 1].
- ``"8bit"``: display-windowed 8-bit images (JPG/PNG/BMP): divided by 255.
- ``"16bit"`` / ``"float"``: 16-bit or float images of unknown scale (not HU): a robust percentile
  rescale, so that a few hot pixels (burnt-in text, metal) do not squash the lung contrast.
- ``"rgb"`` / ``"rgba"``: colour exports of grey CT: luminance first (alpha ignored: CT exports are
  opaque), then as 8-bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A CT display window in HU."""

    level: float
    width: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2


#: The lung window: GGO (about -700..-300 HU) and consolidation (about -100..+50 HU) both stay
#: inside it, so neither class is clipped to the same grey as air or soft tissue.
LUNG_WINDOW = Window(level=-600.0, width=1500.0)

#: Percentiles used for images whose intensity scale is unknown (16-bit, float).
ROBUST_PERCENTILES = (0.5, 99.5)

#: ITU-R BT.601 weights, the same ones PIL uses for ``convert("L")``.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

MODALITIES = ("hu", "8bit", "16bit", "float", "rgb", "rgba")


def to_unit_range(array: np.ndarray, modality: str, window: Window = LUNG_WINDOW) -> np.ndarray:
    """Map a stored slice to float32 in [0, 1] according to how it was stored (see module doc)."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    data = np.asarray(array, dtype=np.float32)
    if modality in ("rgb", "rgba"):
        data = data[..., :3] @ _LUMA
        modality = "8bit"
    if modality == "hu":
        out = (data - window.low) / window.width
    elif modality == "8bit":
        out = data / 255.0
    else:
        out = _percentile_rescale(data)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _percentile_rescale(data: np.ndarray) -> np.ndarray:
    low, high = np.percentile(data, ROBUST_PERCENTILES)
    if high <= low:  # a constant image: no contrast to keep
        return np.zeros_like(data)
    return (data - low) / (high - low)
