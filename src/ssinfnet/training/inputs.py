"""What training reads: labeled training slices and the unlabeled pretraining pool.

Only training data is read here: COVID-SemiSeg folders give their ``TrainingSet`` (never the test
slices); validation is carved from these training slices by the callers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from torch.utils.data import ConcatDataset, Dataset

from ssinfnet.data.readers import detect_layout, list_unlabeled_files, read_dataset
from ssinfnet.data.sample import Sample
from ssinfnet.errors import InputError


def read_labeled(paths: Iterable[str | Path]) -> list[Sample]:
    """Labeled training slices of every path; a path without masks is an input error."""
    samples: list[Sample] = []
    for path in paths:
        found = read_dataset(path, split="train")
        if not found:
            raise InputError("no slices found", path)
        if any(s.mask is None for s in found):
            raise InputError("has no masks: supervised training needs labeled slices (use it for pretrain)", path)
        samples.extend(found)
    return samples


def pretraining_sources(paths: Iterable[str | Path]) -> tuple[list[Sample], list[Path]]:
    """(slices read now, image files read lazily) for pretraining.

    Unlabeled folders can hold thousands of files, so they stay paths and are decoded per batch;
    labeled data sets (small) are read now and their masks ignored.
    """
    samples: list[Sample] = []
    files: list[Path] = []
    for path in paths:
        if detect_layout(path) == "unlabeled":
            files.extend(list_unlabeled_files(path))
        else:
            samples.extend(read_dataset(path, split="train"))
    if not samples and not files:
        raise InputError("no images found for pretraining in: " + ", ".join(map(str, paths)))
    return samples, files


def pool_dataset(samples: list[Sample], files: list[Path], size: int, augment) -> Dataset:
    from ssinfnet.data.dataset import UnlabeledDataset

    parts = [UnlabeledDataset(items, size, augment) for items in (samples, files) if items]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
