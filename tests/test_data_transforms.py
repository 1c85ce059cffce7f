"""Intensity policy, splits, augmentation and torch datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ssinfnet.data.augment import make_augmentation
from ssinfnet.data.dataset import SegmentationDataset, UnlabeledDataset, resize_mask, worker_init_fn
from ssinfnet.data.intensity import LUNG_WINDOW, Window, to_unit_range
from ssinfnet.data.sample import Sample, SampleMeta
from ssinfnet.data.splits import kfold, train_val_split


def _sample(i: int, group: str | None = None, rows: int = 24, cols: int = 30) -> Sample:
    rng = np.random.default_rng(i)
    mask = np.zeros((rows, cols), np.int64)
    mask[4:10, 5:12] = 1
    mask[14:20, 15:25] = 2
    meta = SampleMeta(source=f"s{i}.png", id=str(i), group=group or str(i), original_size=(rows, cols))
    return Sample(image=rng.random((rows, cols), dtype=np.float32), mask=mask, meta=meta)


def test_intensity_policy_per_modality():
    assert LUNG_WINDOW.low == -1350 and LUNG_WINDOW.high == 150
    np.testing.assert_allclose(to_unit_range(np.array([-2000, -600, 500]), "hu"), [0, 0.5, 1])
    np.testing.assert_allclose(to_unit_range(np.array([0, 51, 255], np.uint8), "8bit"), [0, 0.2, 1])
    np.testing.assert_allclose(to_unit_range(np.array([0, 40]), "hu", Window(0, 80)), [0.5, 1])
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 1] = (255, 0, 0)  # pure red has luminance 0.299
    np.testing.assert_allclose(to_unit_range(rgb, "rgb"), [[0.0, 0.299]], atol=1e-6)
    flat = to_unit_range(np.full((4, 4), 1234, np.uint16), "16bit")
    assert flat.dtype == np.float32 and not flat.any()
    with pytest.raises(ValueError):
        to_unit_range(np.zeros(2), "xray")


def test_train_val_split_is_seeded_group_aware_and_disjoint():
    samples = [_sample(i, group=f"vol{i // 3}") for i in range(30)]  # 10 volumes of 3 slices
    train, val = train_val_split(samples, val_fraction=0.2, seed=1)
    assert {s.meta.group for s in train}.isdisjoint({s.meta.group for s in val})
    assert len(val) == 6 and len(train) + len(val) == 30
    again = train_val_split(samples, val_fraction=0.2, seed=1)[1]
    other = train_val_split(samples, val_fraction=0.2, seed=2)[1]
    assert [s.meta.id for s in again] == [s.meta.id for s in val]
    assert [s.meta.id for s in other] != [s.meta.id for s in val]


def test_kfold_covers_every_group_once_and_depends_on_seed():
    samples = [_sample(i, group=f"vol{i // 2}") for i in range(20)]
    folds = kfold(samples, k=5, seed=0)
    val_ids = [s.meta.id for _, val in folds for s in val]
    assert sorted(val_ids, key=int) == [str(i) for i in range(20)]
    for train, val in folds:
        assert {s.meta.group for s in train}.isdisjoint({s.meta.group for s in val})
    assert [[s.meta.id for s in v] for _, v in kfold(samples, 5, seed=3)] != [[s.meta.id for s in v] for _, v in folds]
    with pytest.raises(ValueError):
        kfold(samples, k=11)


def test_augmentation_seeded_and_applied_identically_to_image_and_mask():
    image = np.zeros((2, 48, 48), np.float32)
    mask = np.zeros((48, 48), np.int64)
    mask[10:20, 5:15] = 1
    mask[30:40, 30:44] = 2
    image[0] = 0.5 + 0.1 * mask  # CT channel shows the lesions
    image[1] = (mask > 0).astype(np.float32)  # prior channel = infection map
    outputs = [make_augmentation(seed=7, probability=1.0)(image, mask) for _ in range(2)]
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    out_image, out_mask = outputs[0]
    assert out_image.dtype == np.float32 and out_image.shape == (2, 48, 48)
    assert out_mask.dtype == np.int64 and set(np.unique(out_mask).tolist()) <= {0, 1, 2}
    assert not np.array_equal(out_mask, mask)  # geometry did change it (probability 1)
    # The prior moved with the mask (bilinear vs nearest only disagree on borders).
    agreement = ((out_image[1] > 0.5) == (out_mask > 0)).mean()
    assert agreement > 0.97
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0
    other = make_augmentation(seed=8, probability=1.0)(image, mask)[0]
    assert not np.array_equal(other, out_image)


def test_segmentation_dataset_items():
    samples = [_sample(i) for i in range(3)]
    dataset = SegmentationDataset(samples, size=32)
    item = dataset[1]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (32, 32) and item["mask"].dtype == torch.int64 and item["index"] == 1
    assert set(item["mask"].unique().tolist()) == {0, 1, 2}
    augmented = SegmentationDataset(samples, 32, augment=make_augmentation(0))
    batch = next(iter(DataLoader(augmented, batch_size=3)))
    assert batch["image"].shape == (3, 1, 32, 32) and batch["mask"].shape == (3, 32, 32)
    unlabeled = _sample(9)
    unlabeled.mask = None
    with pytest.raises(ValueError, match="no mask"):
        SegmentationDataset([unlabeled], 32)


def test_resize_mask_keeps_labels():
    mask = np.zeros((30, 30), np.int64)
    mask[::2] = 2
    assert set(resize_mask(mask, 17).unique().tolist()) == {0, 2}


def test_unlabeled_dataset_decodes_lazily_from_paths(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((20 + i, 25), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    dataset = UnlabeledDataset([tmp_path], size=16)
    assert len(dataset) == 3
    (tmp_path / "0.png").unlink()  # nothing was decoded up front: other items still load
    item = dataset[2]
    assert item["image"].shape == (1, 16, 16)
    assert torch.allclose(item["image"], torch.full((1, 16, 16), 80 / 255))
    from_samples = UnlabeledDataset([_sample(0)], 16, augment=make_augmentation(0))
    assert from_samples[0]["image"].shape == (1, 16, 16)


def test_worker_init_fn_reseeds_each_worker():
    """Without the hook every worker copies the same random state and repeats the same augmentation."""
    same_input = UnlabeledDataset([_sample(0), _sample(0)], 16, augment=make_augmentation(0, probability=1.0))
    loader = DataLoader(same_input, batch_size=1, num_workers=2, worker_init_fn=worker_init_fn,
                        generator=torch.Generator().manual_seed(0))
    first, second = [batch["image"] for batch in loader]  # one item per worker
    assert not torch.equal(first, second)
