"""torch Datasets: square training tensors from Samples (or, for unlabeled data, from file paths).

Images are resized with bilinear interpolation, masks with nearest neighbour
(``nearest-exact``: no half-pixel shift), then augmented. ``resize_image``/``resize_mask`` are the
same resizes inference must use to map predictions back.

Per item, in this order: resize -> export differences (``export``, training only) -> the network's
input contrast (``contrast``: see :mod:`ssinfnet.data.intensity`, as the inference pipeline applies it)
-> geometry and intensity augmentation (``augment``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

from ssinfnet.data.formats import reader_for
from ssinfnet.data.intensity import UNIT_CONTRAST, after_resize, before_resize
from ssinfnet.data.readers import list_unlabeled_files, read_unlabeled_file
from ssinfnet.data.sample import Sample

Augment = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def resize_image(image: np.ndarray | torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(H, W) or (C, H, W) float -> (C, S, S) float32 (bilinear)."""
    tensor = torch.as_tensor(np.asarray(image, dtype=np.float32))
    tensor = tensor[None] if tensor.ndim == 2 else tensor
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(tensor.shape[-2:]) == size:
        return tensor
    return F.interpolate(tensor[None], size=size, mode="bilinear", align_corners=False)[0]


def resize_mask(mask: np.ndarray | torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(H, W) labels -> (S, S) int64 (nearest, labels unchanged)."""
    tensor = torch.as_tensor(np.asarray(mask)).to(torch.float32)
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(tensor.shape) != size:
        tensor = F.interpolate(tensor[None, None], size=size, mode="nearest-exact")[0, 0]
    return tensor.round().to(torch.int64)


def prepare_item(image: np.ndarray, mask: np.ndarray, size: int, export: Augment | None,
                 contrast: str, augment: Augment | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One training item: (1, S, S) float32 image and (S, S) int64 mask (see the module doc)."""
    image, mask = resize_image(image, size)[0].numpy(), resize_mask(mask, size).numpy()
    if export is not None:
        image, mask = export(image, mask)
        if image.shape != (size, size):  # a padded field of view
            image, mask = resize_image(image, size)[0].numpy(), resize_mask(mask, size).numpy()
    # both parts at the network size here; inference maps before resizing, the same for a linear map
    image = after_resize(before_resize(image, contrast), contrast)
    if augment is not None:
        image, mask = augment(image, mask)
    return torch.as_tensor(np.asarray(image, dtype=np.float32))[None], torch.as_tensor(np.asarray(mask, dtype=np.int64))


class SegmentationDataset(Dataset):
    """Labeled slices -> ``{"image": (1, S, S) float32, "mask": (S, S) int64, "weight": w, "index": i}``.

    The multi stage's prior channel is not stored here: training computes it from the single-stage
    network on each (augmented) batch, exactly as the inference pipeline does. ``weight`` is the
    items' weight in the loss (1 for labeled slices, less for pseudo-labelled ones; see
    :class:`NegativeDataset`).
    """

    def __init__(self, samples: Sequence[Sample], size: int, augment: Augment | None = None,
                 export: Augment | None = None, contrast: str = UNIT_CONTRAST, weight: float = 1.0):
        missing = [s.meta.id for s in samples if s.mask is None]
        if missing:
            raise ValueError(f"{len(missing)} samples have no mask (first: {missing[0]})")
        self.samples = list(samples)
        self.size = size
        self.augment, self.export, self.contrast = augment, export, contrast
        self.weight = float(weight)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, mask = prepare_item(sample.image, sample.mask, self.size, self.export, self.contrast, self.augment)
        return {"image": image.contiguous(), "mask": mask.contiguous(), "weight": self.weight, "index": index}


class NegativeDataset(Dataset):
    """Slices known (or believed) to hold no lesion, read lazily from files: the same items as
    :class:`SegmentationDataset` with an all-background mask and the loss weight ``weight``.

    Slice-level labels are weak (a NonCOVID slice can show another disease), so ``weight`` < 1
    keeps a wrong one from outweighing a labeled slice.
    """

    def __init__(self, files: Sequence[Path], size: int, weight: float, augment: Augment | None = None,
                 export: Augment | None = None, contrast: str = UNIT_CONTRAST):
        self.files = list(files)
        self.size, self.weight = size, float(weight)
        self.augment, self.export, self.contrast = augment, export, contrast

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        image = read_unlabeled_file(self.files[index])[0].image
        empty = np.zeros(image.shape, dtype=np.int64)
        image, mask = prepare_item(image, empty, self.size, self.export, self.contrast, self.augment)
        return {"image": image.contiguous(), "mask": mask.contiguous(), "weight": self.weight, "index": index}


class UnlabeledDataset(Dataset):
    """Unlabeled slices -> ``{"image": (1, S, S) float32, "index": i}`` for self-supervised pretraining.

    Given paths (files or folders), files are decoded only when an item is requested, so
    thousands of slices cost no memory up front. A NIfTI volume counts one item per slice (read from
    its header) and is decoded again per item: pretraining folders hold 2D slices, so this stays rare.
    """

    def __init__(self, samples: Sequence[Sample] | Sequence[str | Path], size: int, augment: Augment | None = None,
                 export: Augment | None = None, contrast: str = UNIT_CONTRAST):
        self.size = size
        self.augment, self.export, self.contrast = augment, export, contrast
        self.items: list[Sample | tuple[Path, int]] = []
        for item in samples:
            if isinstance(item, Sample):
                self.items.append(item)
            else:
                for path in list_unlabeled_files(item):  # a folder expands to its image files
                    self.items.extend((path, k) for k in range(reader_for(path).slice_count(path)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        image = item.image if isinstance(item, Sample) else read_unlabeled_file(item[0])[item[1]].image
        empty = np.zeros(np.shape(image), dtype=np.int64)
        tensor, _ = prepare_item(image, empty, self.size, self.export, self.contrast, self.augment)
        return {"image": tensor.contiguous(), "index": index}


def worker_init_fn(worker_id: int) -> None:
    """DataLoader hook: give each worker its own augmentation stream (otherwise every worker would
    repeat the same random sequence), derived from the loader's seed so runs stay reproducible."""
    info = get_worker_info()
    for offset, name in enumerate(("augment", "export")):
        augment = getattr(info.dataset, name, None)
        if augment is not None and hasattr(augment, "reseed"):
            augment.reseed(int((info.seed + offset) % 2**31))
