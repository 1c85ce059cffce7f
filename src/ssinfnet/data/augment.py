"""Seeded augmentation for training slices (MONAI dictionary transforms).

Geometry (flips, small rotations and scales) is applied identically to the image channels and the
mask (nearest-neighbour for the mask, so labels stay 0/1/2). Intensity jitter (gamma, contrast,
Gaussian noise) imitates other scanners and reconstruction kernels, and touches channel 0 only:
channel 0 is the CT slice, further channels (e.g. the infection prior of Multi Inf-Net) are maps
whose values mean something.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
)


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


def make_augmentation(seed: int = 0, **options) -> Augmentation:
    """The training augmentation; options as in :class:`Augmentation`."""
    return Augmentation(seed, **options)
