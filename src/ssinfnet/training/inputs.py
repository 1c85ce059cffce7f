"""What training reads: labeled training slices and the unlabeled pretraining pool.

Only training data is read here: COVID-SemiSeg folders give their ``TrainingSet`` (never the test
slices); validation is carved from these training slices by the callers; unlabeled folders give only
their training part (:func:`ssinfnet.data.pool.split_pool`: the held-out part measures specificity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from torch.utils.data import ConcatDataset, Dataset

from ssinfnet.data.intensity import CANONICAL_CONTRAST, EQUALIZED_CONTRAST, UNIT_CONTRAST
from ssinfnet.data.pool import split_pool
from ssinfnet.data.readers import detect_layout, read_dataset
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


def pretraining_sources(paths: Iterable[str | Path], heldout_fraction: float = 0.0) -> tuple[list[Sample], list[Path]]:
    """(slices read now, image files read lazily) for pretraining.

    Unlabeled folders can hold thousands of files, so they stay paths and are decoded per batch
    (their held-out part, ``heldout_fraction`` of the source groups, is left out); labeled data sets
    (small) are read now and their masks ignored.
    """
    samples: list[Sample] = []
    files: list[Path] = []
    for path in paths:
        if detect_layout(path) == "unlabeled":
            files.extend(item.path for item in split_pool(path, heldout_fraction)[0])
        else:
            samples.extend(read_dataset(path, split="train"))
    if not samples and not files:
        raise InputError("no images found for pretraining in: " + ", ".join(map(str, paths)))
    return samples, files


#: Manifest labels of slices without a lesion of the kind we segment (weak: other disease is possible).
NEGATIVE_LABELS = ("NonCOVID",)


def negative_files(paths: Iterable[str | Path], heldout_fraction: float = 0.0) -> list[Path]:
    """Files of slices without COVID-19 lesions for supervised training: of each unlabeled folder's
    training part, those its manifest labels NonCOVID, or every file when it has no labels (e.g. a
    folder of generated lesion-free slices)."""
    files: list[Path] = []
    for path in paths:
        if detect_layout(path) != "unlabeled":
            raise InputError("negative examples must be an unlabeled folder (with manifest.csv labels, or "
                             "lesion-free images only)", path)
        train = split_pool(path, heldout_fraction)[0]
        labelled = any(item.label is not None for item in train)
        files.extend(item.path for item in train if not labelled or item.label in NEGATIVE_LABELS)
        if not files:
            raise InputError("no NonCOVID slices in the training part of this folder", path)
    return files


def input_transforms(config: dict, seed: int) -> tuple[Any, Any, str]:
    """(augmentation, export augmentation, input contrast) of a run's ``data`` settings
    (``augment``, ``export_augment``: true for the transform's defaults, or a mapping of its settings);
    the export augmentation needs ``augment`` on too. Runs configured before these keys existed get
    neither export differences nor the canonical map."""
    from ssinfnet.data.augment import make_augmentation, make_export_augmentation

    data = config["data"]
    augment = make_augmentation(seed, **_options(data["augment"])) if data["augment"] else None
    export = data.get("export_augment")
    export = make_export_augmentation(seed + 1, **_options(export)) if augment is not None and export else None
    return augment, export, input_contrast(data)


def input_contrast(data: dict) -> str:
    """The input contrast (ssinfnet.data.intensity) a run's ``data`` settings give its networks."""
    if not data.get("canonical", False):
        return UNIT_CONTRAST
    return EQUALIZED_CONTRAST if data.get("equalize", False) else CANONICAL_CONTRAST


def _options(setting: bool | dict) -> dict:
    """Keyword arguments of a transform from its setting: ``true`` is its defaults."""
    return dict(setting) if isinstance(setting, dict) else {}


def pool_dataset(samples: list[Sample], files: list[Path], size: int, augment, export=None,
                 contrast: str = UNIT_CONTRAST) -> Dataset:
    from ssinfnet.data.dataset import UnlabeledDataset

    parts = [UnlabeledDataset(items, size, augment, export, contrast) for items in (samples, files) if items]
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)
