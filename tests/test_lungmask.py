"""The classical lung mask: what it keeps, what it drops, and the lesions it takes in."""

from __future__ import annotations

import numpy as np
import pytest

from ssinfnet.inference.lungmask import include_lesions, lung_mask, otsu_threshold

AIR, LUNG, TISSUE = -1000.0, -850.0, 40.0


def _slab(slices=4):
    """(slices, 40, 60): body of tissue, two lungs, outside air, a vessel in the left lung and a
    small gas pocket (bowel-like) in the body."""
    hu = np.full((slices, 40, 60), AIR, dtype=np.float32)
    hu[:, 4:36, 4:56] = TISSUE
    hu[:, 8:32, 8:26] = LUNG     # right lung (image left)
    hu[:, 8:32, 34:52] = LUNG    # left lung
    hu[:, 18:21, 40:43] = TISSUE  # a vessel inside the left lung
    hu[:, 33:35, 28:30] = AIR    # gas pocket, 16 voxels
    return hu


def test_keeps_both_lungs_fills_vessels_drops_outside_air_and_small_pockets():
    hu = _slab()
    lung = lung_mask(hu)
    expected = np.zeros(hu.shape, dtype=bool)
    expected[:, 8:32, 8:26] = expected[:, 8:32, 34:52] = True
    np.testing.assert_array_equal(lung, expected)


def test_second_component_needs_a_tenth_of_the_largest():
    hu = _slab()
    hu[:, 8:32, 34:52] = TISSUE
    hu[:, 20:22, 40:44] = LUNG  # 32 voxels: far below 10% of the right lung
    lung = lung_mask(hu)
    assert lung[:, 8:32, 8:26].all() and lung.sum() == 4 * 24 * 18


def test_lungs_cut_by_a_chest_crop_are_kept():
    """A crop inside the body (COVID-SemiSeg style): the border is mostly tissue, lungs reach it."""
    hu = _slab()[:, 6:34, 6:54]  # no outside air left
    hu[:, 4:24, :6] = LUNG  # the right lung runs off the crop's edge
    lung = lung_mask(hu)
    assert lung[:, 4:24, :6].all() and lung[:, 2:26, 2:20].all() and lung[:, 2:26, 28:46].all()
    assert not lung[:, 0, :].any()


def test_lungs_touching_the_border_of_a_full_field_of_view_are_lost():
    """Documented limit: a field of view cut through the lungs empties the mask there."""
    hu = _slab()
    hu[:, :, :10] = LUNG  # right lung now runs off the image edge
    lung = lung_mask(hu)
    assert not lung[:, :, :26].any() and lung[:, 8:32, 34:52].all()


def test_include_lesions_adds_touching_lesions_only():
    lung = np.zeros((2, 20, 20), dtype=bool)
    lung[:, 5:15, 2:8] = True
    labels = np.zeros(lung.shape, dtype=np.uint8)
    labels[:, 6:9, 8:10] = 2    # consolidation against the lung edge
    labels[:, 2:4, 16:18] = 1   # far away: a false positive outside the lungs
    merged = include_lesions(lung, labels)
    assert merged[:, 6:9, 8:10].all() and not merged[:, 2:4, 16:18].any()
    assert merged.sum() == lung.sum() + 2 * 3 * 2


def test_otsu_splits_two_modes():
    values = np.concatenate([np.full(100, 40.0), np.full(300, 200.0)])
    assert 40 <= otsu_threshold(values) < 200


def test_8bit_images_use_otsu():
    hu = _slab(slices=1)
    display = np.clip((hu + 1350) / 1500, 0, 1) * 255  # lung window, 8-bit
    lung, reference = lung_mask(display, modality="8bit"), lung_mask(hu)
    # the median filter against JPEG noise rounds the corners a little
    assert 2 * (lung & reference).sum() / (lung.sum() + reference.sum()) > 0.97


def test_stack_must_be_3d():
    with pytest.raises(ValueError, match="slices, rows, cols"):
        lung_mask(np.zeros((4, 4)))


@pytest.mark.realdata
def test_real_training_slices_hold_their_lesions(shared_data):
    """On the 50 labelled COVID-SemiSeg training slices (8-bit crops; never the test slices): the
    mask holds most ground-truth GGO, and with touching lesions added nearly every lesion pixel.
    Measured: GGO 85%, consolidation 32% (dense, as documented), lesions with include_lesions 99%."""
    from PIL import Image

    folder = shared_data / "covid-semiseg" / "TrainingSet" / "MultiClassInfection-Train"
    ggo_inside, lesion_inside = [], []
    for path in sorted((folder / "Imgs").glob("*.jpg")):
        image = np.asarray(Image.open(path).convert("L"), dtype=np.float32)[None] / 255
        truth = np.asarray(Image.open(folder / "GT" / f"{path.stem}.png"))[None]
        lung = lung_mask(image, modality="8bit")
        assert lung.any(), path.name
        ggo_inside.append((lung & (truth == 1)).sum() / max(1, (truth == 1).sum()))
        lesion_inside.append((include_lesions(lung, truth) & (truth > 0)).sum() / max(1, (truth > 0).sum()))
    assert len(ggo_inside) == 50
    assert np.mean(ggo_inside) > 0.75 and np.mean(lesion_inside) > 0.95
