"""Seeded augmentation for training slices (MONAI dictionary transforms).

Geometry (flips, small rotations and scales) is applied identically to the image channels and the
mask (nearest-neighbour for the mask, so labels stay 0/1/2). Intensity jitter (gamma, contrast,
Gaussian noise) imitates other scanners and reconstruction kernels, and touches channel 0 only:
channel 0 is the CT slice, further channels (e.g. the infection prior of Multi Inf-Net) are maps
whose values mean something.

:class:`ExportAugmentation` imitates how other hospitals export CT (window, min-max scaling, gamma,
contrast-limited histogram equalisation, noise, blur or downsampling, JPEG, a full field of view with
air and table around the body). It runs *before* the canonical contrast map
(:func:`ssinfnet.data.intensity.to_canonical`), as such differences do in real use; the map then undoes
the linear part and the network learns to ignore what is left.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
)

from ssinfnet.data.intensity import clahe  # also an export difference


class Augmentation:
    """Callable ``(image, mask) -> (image, mask)``: image (H, W) or (C, H, W), mask (H, W); numpy or
    torch in, numpy float32 / int64 out (same shapes). Same seed and call order, same output."""

    def __init__(self, seed: int = 0, *, flip: bool = True, rotate_degrees: float = 10.0,
                 scale: float = 0.1, gamma: tuple[float, float] = (0.8, 1.25), contrast: float = 0.1,
                 noise_std: float = 0.02, probability: float = 0.5):
        self.seed = seed
        geometry = []
        if flip:
            geometry.append(RandFlipd(keys=("image", "mask"), prob=probability, spatial_axis=1))
        if rotate_degrees or scale:
            geometry.append(RandAffined(
                keys=("image", "mask"), prob=probability, rotate_range=(math.radians(rotate_degrees),),
                scale_range=(scale, scale), mode=("bilinear", "nearest"), padding_mode="zeros"))
        intensity = [
            RandAdjustContrastd(keys="ct", prob=probability, gamma=gamma),
            RandScaleIntensityd(keys="ct", prob=probability, factors=contrast),
            RandGaussianNoised(keys="ct", prob=probability, std=noise_std),
        ]
        self.geometry = Compose(geometry)
        self.intensity = Compose(intensity)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random stream (e.g. per DataLoader worker, see ``dataset.worker_init_fn``)."""
        self.geometry.set_random_state(seed=seed)
        self.intensity.set_random_state(seed=seed + 1)

    def __call__(self, image, mask) -> tuple[np.ndarray, np.ndarray]:
        image = torch.as_tensor(np.asarray(image, dtype=np.float32))
        squeeze = image.ndim == 2
        channels = image[None] if squeeze else image
        labels = torch.as_tensor(np.asarray(mask)).to(torch.float32)[None]
        moved = self.geometry({"image": channels, "mask": labels})
        channels = torch.as_tensor(moved["image"]).clone()
        ct = self.intensity({"ct": channels[:1]})["ct"]
        # Gamma on [0, 1] keeps the range; scaling and noise may leave it, and [0, 1] is the contract.
        channels[:1] = torch.as_tensor(ct).clamp(0.0, 1.0)
        out = channels[0] if squeeze else channels
        return out.numpy().astype(np.float32), torch.as_tensor(moved["mask"])[0].round().numpy().astype(np.int64)


class ExportAugmentation:
    """Callable ``(image, mask) -> (image, mask)`` on a (H, W) slice in [0, 1]: with ``probability``,
    one or two randomly chosen export differences (:data:`EXPORTS`). A padded full field of view
    changes the shape (the caller resizes back); the mask follows geometry, never intensity."""

    #: The export differences it draws from; also the transforms of ``benchmarks/bench_robustness.py``.
    EXPORTS = ("window", "minmax", "gamma", "clahe", "noise", "downsample", "jpeg", "full_fov")

    def __init__(self, seed: int = 0, probability: float = 0.7, clahe_probability: float = 0.0):
        self.probability = probability
        # CLAHE is the export difference networks learn worst (it makes aerated lung look like ground
        # glass): ``clahe_probability`` adds it to that share of slices on top of the draw above.
        self.clahe_probability = clahe_probability
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(image, dtype=np.float32)
        names: list[str] = []
        if self.rng.random() < self.probability:
            names = [str(n) for n in self.rng.choice(self.EXPORTS, size=self.rng.integers(1, 3), replace=False)]
        if self.clahe_probability > 0 and "clahe" not in names and self.rng.random() < self.clahe_probability:
            names.insert(0, "clahe")  # before a window, JPEG or field of view, as an export would do it
        for name in names:
            image, mask = export_transform(name, image, mask, self.rng)
        return image.astype(np.float32, copy=False), mask


def export_transform(name: str, image: np.ndarray, mask: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One export difference with random strength (see :class:`ExportAugmentation`)."""
    if name == "window":  # another level and width: a linear map, clipped
        return np.clip(image * rng.uniform(0.6, 1.8) + rng.uniform(-0.35, 0.25), 0, 1), mask
    if name == "minmax":
        low, high = float(image.min()), float(image.max())
        return (image - low) / (high - low) if high > low else image, mask
    if name == "gamma":
        return np.clip(image, 0, 1) ** rng.uniform(0.5, 2.0), mask
    if name == "clahe":
        return clahe(image, rng.uniform(2.0, 8.0)), mask
    if name == "noise":
        return np.clip(image + rng.normal(0, rng.uniform(0.01, 0.05), image.shape), 0, 1), mask
    if name == "downsample":
        return downsample(image, rng.uniform(0.35, 0.8)), mask
    if name == "jpeg":
        return jpeg(image, int(rng.integers(30, 91))), mask
    if name == "full_fov":
        return full_field_of_view(image, mask, rng.uniform(0.55, 0.85), rng)
    raise ValueError(f"unknown export transform {name!r}; expected one of {ExportAugmentation.EXPORTS}")


def downsample(image: np.ndarray, factor: float) -> np.ndarray:
    """Down to ``factor`` of the size and back up (bilinear): a softer kernel or a small export."""
    pil = Image.fromarray(image.astype(np.float32), mode="F")
    small = pil.resize((max(8, round(image.shape[1] * factor)), max(8, round(image.shape[0] * factor))),
                       Image.BILINEAR)
    return np.asarray(small.resize(pil.size, Image.BILINEAR), dtype=np.float32).clip(0, 1)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Through an 8-bit JPEG at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255.0


def full_field_of_view(image: np.ndarray, mask: np.ndarray, fill: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The crop placed in a larger field of view (the crop fills ``fill`` of each side), as in a
    full-slice export: a chest wall of soft tissue around it (crops cut through the lungs, and a
    real field of view never shows lung against outside air), air beyond (darker than the darkest
    lung) and a patient table below."""
    rows, cols = image.shape
    out_rows, out_cols = int(rows / fill), int(cols / fill)
    wall = max(2, int(round(min(rows, cols) * rng.uniform(0.03, 0.06))))
    top = int(rng.integers(wall, max(wall + 1, out_rows - rows - wall + 1)))
    left = int(rng.integers(wall, max(wall + 1, out_cols - cols - wall + 1)))
    air = max(0.0, float(np.percentile(image, 1)) - rng.uniform(0.02, 0.1))
    tissue = float(np.percentile(image, 75))
    canvas = np.full((out_rows, out_cols), air, dtype=np.float32)
    labels = np.zeros((out_rows, out_cols), dtype=np.asarray(mask).dtype)
    canvas[max(0, top - wall) : top + rows + wall, max(0, left - wall) : left + cols + wall] = tissue
    canvas[top : top + rows, left : left + cols] = image
    labels[top : top + rows, left : left + cols] = mask
    below = top + rows + wall
    gap = below + int(rng.integers(1, max(2, (out_rows - below) // 3 + 2)))
    if gap < out_rows:  # the table: a bright band under the patient (posterior is down)
        thickness = max(2, out_rows // 40)
        canvas[gap : gap + thickness, out_cols // 10 : out_cols - out_cols // 10] = rng.uniform(0.5, 0.9)
    return canvas, labels


# ----------------------------------------------------------------------------- fixed-strength exports
#
# The export differences at fixed strengths, as the robustness benchmark (benchmarks/bench_robustness.py,
# on the test slices) and ``crossval --exports`` (out of fold, to choose on) apply them; training draws
# the same kinds at random strengths (ExportAugmentation). x = a slice in [0, 1]:
# window_narrow / window_wide: another display window, clip((x - 0.1) / 0.7), 0.15 + 0.7 x; minmax_full_range:
# min-max scaling of the full HU range (-1024..3071 HU) instead of a lung window, the ~1100 HU window then
# taking 27% of the grey levels, 0.27 x + 0.01; clahe_2 / _4 / _8: CLAHE at OpenCV clip limits 2, 4, 8;
# gamma_0.6 / _1.6; noise: Gaussian, sd 0.03 (8 grey levels), seeded; downsample_256: the longer side to
# 256 px and back; blur: Gaussian, sd 1.5 px; jpeg_50: JPEG quality 50; full_fov: the crop inside a field
# of view 1.6x as large (chest wall, air, table; seeded).

def _blur(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage  # noqa: PLC0415

    return ndimage.gaussian_filter(x, 1.5), mask


FIXED_EXPORTS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "window_narrow": lambda x, m: (np.clip((x - 0.1) / 0.7, 0, 1), m),
    "window_wide": lambda x, m: (0.15 + 0.7 * x, m),
    "minmax_full_range": lambda x, m: (0.27 * x + 0.01, m),
    "clahe_2": lambda x, m: (clahe(x, 2.0), m),
    "clahe_4": lambda x, m: (clahe(x, 4.0), m),
    "clahe_8": lambda x, m: (clahe(x, 8.0), m),
    "gamma_0.6": lambda x, m: (np.clip(x, 0, 1) ** 0.6, m),
    "gamma_1.6": lambda x, m: (np.clip(x, 0, 1) ** 1.6, m),
    "noise": lambda x, m: (x + np.random.default_rng(1).normal(0, 0.03, x.shape), m),
    "downsample_256": lambda x, m: (downsample(x, 256 / max(x.shape)), m),
    "blur": _blur,
    "jpeg_50": lambda x, m: (jpeg(x, 50), m),
    "full_fov": lambda x, m: full_field_of_view(x, m, 1 / 1.6, np.random.default_rng(0)),
}


def as_8bit(image: np.ndarray) -> np.ndarray:
    """An image as an 8-bit export stores it."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def make_augmentation(seed: int = 0, **options) -> Augmentation:
    """The training augmentation; options as in :class:`Augmentation`."""
    return Augmentation(seed, **options)


def make_export_augmentation(seed: int = 0, **options) -> ExportAugmentation:
    """The export-difference augmentation; options as in :class:`ExportAugmentation`."""
    return ExportAugmentation(seed, **options)
