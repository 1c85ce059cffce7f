"""The unlabeled pool split into a training part and a held-out part that no training step sees.

The held-out part measures specificity (NonCOVID vs COVID slices, ``benchmarks/bench_specificity.py``);
pretraining and the negative examples of supervised training take only the training part.

Near-duplicate slices must stay on one side, so the split is by *source group*, not by file: the
consecutive slices of one patient, or the figures of one paper, share a group (:func:`source_group`).
Which side a group falls on depends only on its name (a hash), so the split is the same on every
machine, for every seed and every subset of the pool.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ssinfnet.data.readers import list_unlabeled_files, read_manifest

#: Numbered slices ("Covid (123)", "img45", "2341") of one collection are grouped in runs of this
#: many: those collections number a patient's slices consecutively, and no patient ids are given.
NUMBER_RUN = 25
#: Default share of the source groups held out.
HELDOUT_FRACTION = 0.2

_PAPER = re.compile(r"^(\d{4}\.\d{2}\.\d{2}\.\d+)")  # UCSD COVID-CT: preprint id, then page and figure
_PATIENT = re.compile(r"^([A-Za-z]+_\d+)_")            # e.g. nor_16_img_6: patient nor_16
_NUMBERED = re.compile(r"^(.*?)(\d+)\D*$")             # a name ending in a number


def source_group(name: str) -> str:
    """The source group of an unlabeled file's name (folder and suffix ignored)."""
    stem = Path(name).name.rsplit(".", 1)[0]
    for pattern in (_PAPER, _PATIENT):
        match = pattern.match(stem)
        if match:
            return match.group(1)
    match = _NUMBERED.match(stem)
    if match:
        return f"{match.group(1).strip()}#{int(match.group(2)) // NUMBER_RUN}"
    return stem


def is_heldout(name: str, fraction: float) -> bool:
    """Whether the file ``name`` belongs to the held-out part (by its source group's hash)."""
    digest = hashlib.sha256(source_group(name).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass(frozen=True)
class PoolFile:
    path: Path
    label: str | None
    """The manifest's slice-level label (e.g. "COVID" / "NonCOVID"), None without a manifest."""


def split_pool(root: str | Path, fraction: float = HELDOUT_FRACTION) -> tuple[list[PoolFile], list[PoolFile]]:
    """(training part, held-out part) of the unlabeled folder ``root``; labels from its
    ``manifest.csv`` when there is one. ``fraction`` 0 holds nothing out."""
    root = Path(root)
    manifest = root / "manifest.csv" if root.is_dir() else None
    labels = read_manifest(manifest) if manifest is not None and manifest.is_file() else {}
    train: list[PoolFile] = []
    heldout: list[PoolFile] = []
    for path in list_unlabeled_files(root):
        key = path.relative_to(root).as_posix() if root in path.parents else path.name
        item = PoolFile(path, labels.get(key))
        (heldout if fraction > 0 and is_heldout(key, fraction) else train).append(item)
    return train, heldout
