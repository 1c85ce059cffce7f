"""The one intensity policy: whatever a slice was stored as, the network sees float32 in [0, 1].

Modalities (as returned by :func:`ssinfnet.data.imageio.read_image_2d` and the volume readers):

- ``"hu"``: Hounsfield units (NIfTI, DICOM): clipped to a window (lung window by default) -> [0, 1].
- ``"8bit"``: display-windowed 8-bit images (JPG/PNG/BMP): divided by 255.
- ``"16bit"`` / ``"float"``: 16-bit or float images of unknown scale (not HU): a robust percentile
  rescale, so that a few hot pixels (burnt-in text, metal) do not squash the lung contrast.
- ``"rgb"`` / ``"rgba"``: colour exports of grey CT: luminance first (alpha ignored: CT exports are
  opaque), then as 8-bit.
- ``"unit"``: values this policy has already mapped to [0, 1] (a reader's ``Sample.image``): kept as they
  are, so that predicting a sample and predicting the file it was read from see the same pixels.
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

MODALITIES = ("hu", "8bit", "16bit", "float", "rgb", "rgba", "unit")


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
    elif modality == "unit":
        out = data
    else:
        out = _percentile_rescale(data)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _percentile_rescale(data: np.ndarray) -> np.ndarray:
    low, high = np.percentile(data, ROBUST_PERCENTILES)
    if high <= low:  # a constant image: no contrast to keep
        return np.zeros_like(data)
    return (data - low) / (high - low)


# ----------------------------------------------------------------------------- canonical contrast
#
# The one place that says what contrast the networks see. Every input (training slice, user's PNG
# export, DICOM in HU) is mapped linearly so that two anatomical anchors land on fixed values:
#
# - the *dark anchor*: the 5th percentile of the dark (air or aerated lung) pixels inside the body,
#   i.e. the darkest aerated lung. Unlike the lung's median or mode it hardly moves with disease
#   (correlation with the lesion share of the training slices: -0.02, vs 0.42 for the mode);
# - the *bright anchor*: the median of the bright (soft tissue, fat, bone) pixels inside the body.
#
# Dark and bright are split by an Otsu threshold; air outside the body (dark, connected to and
# lining most of the image border) is left out, so a full field of view with air and table gives
# the same anchors as a crop of the chest. The map undoes any linear change of window level/width
# or min-max scaling of an export exactly, and gamma or histogram equalisation approximately
# (training-time augmentation, ssinfnet.data.augment.ExportAugmentation, covers the rest).
# The canonical values are the medians of the anchors over the 50 COVID-SemiSeg training slices
# (`python benchmarks/measure_anchors.py --data ../shared/data` prints them), so those slices stay
# nearly as they are. Slices without a dark or a bright part (no lung, a blank image) are left as
# they are.


@dataclass(frozen=True)
class Anchors:
    """Intensities (same scale as the image) of the darkest aerated lung and of soft tissue."""

    dark: float
    bright: float


#: Where the networks' input puts the anchors (see above).
CANONICAL_ANCHORS = Anchors(dark=0.135, bright=0.831)
#: Anchor estimation runs on a copy at most this many pixels on a side (it needs statistics, not detail).
ANCHOR_PX = 128
#: Fewest dark / bright body pixels (of the small copy) needed to trust the anchors.
ANCHOR_MIN_PIXELS = 64
#: Border-connected dark pixels are air outside the body when they line this much of the border.
OUTSIDE_BORDER_FRACTION = 0.5


def estimate_anchors(image: np.ndarray) -> Anchors | None:
    """The dark and bright anchors of one 2D slice (any intensity scale), or None when the slice
    has no usable dark or bright part inside the body."""
    from scipy import ndimage  # noqa: PLC0415  (scipy is slow to import; only here)

    data = np.asarray(image, dtype=np.float32)
    step = max(1, int(np.ceil(max(data.shape) / ANCHOR_PX)))
    small = ndimage.median_filter(data[::step, ::step], size=3)  # JPEG and quantum noise
    finite = small[np.isfinite(small)]
    if finite.size < 2 * ANCHOR_MIN_PIXELS or finite.min() == finite.max():
        return None
    # the darkest value is mostly padding (the corners outside a round reconstruction field)
    floor = finite.min()
    values = finite[finite > floor] if np.mean(finite == floor) > 0.02 else finite
    dark = small < otsu_split(values)
    outside = _outside_air(dark)
    inner_dark, body_bright = small[dark & ~outside], small[~dark & ~outside]
    if inner_dark.size < ANCHOR_MIN_PIXELS or body_bright.size < ANCHOR_MIN_PIXELS:
        return None
    anchors = Anchors(float(np.percentile(inner_dark, 5)), float(np.median(body_bright)))
    return anchors if anchors.bright > anchors.dark else None


def to_canonical(image: np.ndarray, anchors: Anchors | None = None) -> np.ndarray:
    """``image`` mapped linearly so that its anchors (estimated when not given) land on
    :data:`CANONICAL_ANCHORS`, clipped to [0, 1]; unchanged (clipped) when no anchors are found."""
    data = np.asarray(image, dtype=np.float32)
    anchors = anchors if anchors is not None else estimate_anchors(data)
    if anchors is None:
        return np.clip(data, 0.0, 1.0)
    target = CANONICAL_ANCHORS
    gain = (target.bright - target.dark) / (anchors.bright - anchors.dark)
    return np.clip((data - anchors.dark) * gain + target.dark, 0.0, 1.0).astype(np.float32, copy=False)


def clahe(image: np.ndarray, clip_limit: float) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation with OpenCV's ``clipLimit`` convention (a
    multiple of the mean bin count, 8x8 tiles); scikit-image normalises it by the 256 bins."""
    from skimage.exposure import equalize_adapthist  # noqa: PLC0415  (slow to import; only here)

    return equalize_adapthist(np.clip(image, 0, 1), clip_limit=clip_limit / 256.0).astype(np.float32)


# ----------------------------------------------------------------------------- network input contrast
#
# What a network was trained on (the weights sidecar's ``input_contrast``; ``data.canonical`` and
# ``data.equalize`` of its run):
#
# - ``"unit"``: the readers' [0, 1] values as they are (networks trained before the canonical map);
# - ``"canonical"``: :func:`to_canonical` (before resizing; it is linear);
# - ``"equalized"``: canonical, then, at the network's input size, CLAHE with clip limit
#   :data:`EQUALIZE_CLIP`. Local histogram equalisation is (nearly) invariant to any monotone change of
#   grey levels, so an export's gamma, window or own equalisation hardly changes what the network sees;
#   the price is the absolute density, which the network must then read from local context.

UNIT_CONTRAST, CANONICAL_CONTRAST, EQUALIZED_CONTRAST = "unit", "canonical", "equalized"
CONTRASTS = (UNIT_CONTRAST, CANONICAL_CONTRAST, EQUALIZED_CONTRAST)
#: The equalised contrast's clip limit: the strongest CLAHE of the robustness benchmark, so that an
#: export equalised at clip 2-8 is equalised again at least as strongly.
EQUALIZE_CLIP = 8.0


def check_contrast(contrast: str) -> str:
    """``contrast``, or a ValueError naming the known ones."""
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown input contrast {contrast!r}; expected one of {CONTRASTS}")
    return contrast


def before_resize(image: np.ndarray, contrast: str, anchors: Anchors | None = None) -> np.ndarray:
    """The part of ``contrast`` applied at the image's own size: the canonical map (``anchors``: a
    scan's, instead of the image's own)."""
    if check_contrast(contrast) == UNIT_CONTRAST:
        return image
    return to_canonical(image, anchors)


def after_resize(image: np.ndarray, contrast: str) -> np.ndarray:
    """The part of ``contrast`` applied at the network's input size: the equalisation."""
    if check_contrast(contrast) != EQUALIZED_CONTRAST:
        return image
    return clahe(image, EQUALIZE_CLIP)


def scan_anchors(slices: list[np.ndarray]) -> Anchors | None:
    """One pair of anchors for a whole scan: the median over its slices that give anchors (so that
    every slice of a volume gets the same contrast, as a reader would set one window)."""
    found = [a for a in map(estimate_anchors, slices) if a is not None]
    if not found:
        return None
    return Anchors(float(np.median([a.dark for a in found])), float(np.median([a.bright for a in found])))


def otsu_split(values: np.ndarray, bins: int = 256) -> float:
    """Threshold that maximises the between-class variance of the histogram of ``values`` (Otsu 1979)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        return high
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = sum_low / weight_low
        mean_high = (sum_low[-1] - sum_low) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1:][np.nanargmax(between)])


def _outside_air(dark: np.ndarray) -> np.ndarray:
    """Dark pixels connected to the border, when they line most of it (air around a whole body);
    in a crop through the chest the dark regions at the edge are lungs and stay."""
    from scipy import ndimage  # noqa: PLC0415

    components, _ = ndimage.label(dark)
    edge = np.concatenate([components[0], components[-1], components[:, 0], components[:, -1]])
    touching = np.unique(edge[edge > 0])
    connected = np.isin(components, touching)
    border = np.concatenate([connected[0], connected[-1], connected[:, 0], connected[:, -1]])
    return connected if border.mean() >= OUTSIDE_BORDER_FRACTION else np.zeros_like(dark)
