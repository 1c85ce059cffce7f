"""Seeded, group-aware splits of TRAINING samples (validation is never carved from the test set).

Slices of one volume/patient share ``meta.group`` and always land on the same side, so validation
Dice is not inflated by near-duplicate neighbouring slices.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np
from sklearn.model_selection import GroupKFold, GroupShuffleSplit

from ssinfnet.data.sample import Sample

T = TypeVar("T", bound=Sample)


def _groups(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([s.meta.group for s in samples])


def train_val_split(samples: Sequence[T], val_fraction: float = 0.2, seed: int = 0) -> tuple[list[T], list[T]]:
    """(train, val) with about ``val_fraction`` of the groups in val; same seed, same split."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    groups = _groups(samples)
    if len(set(groups.tolist())) < 2:
        raise ValueError("need at least 2 groups (volumes/patients) to split off validation data")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    train_idx, val_idx = next(splitter.split(groups, groups=groups))
    return [samples[i] for i in sorted(train_idx)], [samples[i] for i in sorted(val_idx)]


def kfold(samples: Sequence[T], k: int = 5, seed: int = 0) -> list[tuple[list[T], list[T]]]:
    """``k`` (train, val) folds; every group is in exactly one val fold. Groups are shuffled with
    ``seed`` first (GroupKFold itself is deterministic and would ignore it)."""
    groups = _groups(samples)
    unique = sorted(set(groups.tolist()))
    if not 2 <= k <= len(unique):
        raise ValueError(f"k must be between 2 and the number of groups ({len(unique)}), got {k}")
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled_id = {g: int(order[i]) for i, g in enumerate(unique)}
    group_ids = np.array([shuffled_id[g] for g in groups.tolist()])
    folds = []
    for train_idx, val_idx in GroupKFold(n_splits=k).split(group_ids, groups=group_ids):
        folds.append(([samples[i] for i in sorted(train_idx)], [samples[i] for i in sorted(val_idx)]))
    return folds
