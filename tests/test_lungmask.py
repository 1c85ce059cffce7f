"""The anatomical lung mask: what it keeps, what it drops (outside air, airways, stomach and bowel gas,
slices without lung), and the lesions it confines."""

from __future__ import annotations

import numpy as np
import pytest

from ssinfnet.inference.lungmask import confine_lesions, lung_mask, pseudo_hu

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


def _both_lungs(shape):
    expected = np.zeros(shape, dtype=bool)
    expected[:, 8:32, 8:26] = expected[:, 8:32, 34:52] = True
    return expected


def test_keeps_both_lungs_fills_vessels_drops_outside_air_and_small_pockets():
    hu = _slab()
    np.testing.assert_array_equal(lung_mask(hu), _both_lungs(hu.shape))


def test_trachea_and_large_gas_are_not_lung():
    """Pure air inside the body (median -1000 HU) is gas or airway, however large: a 'stomach' of
    10x12 pixels below the lungs and a 'trachea' between them."""
    hu = np.full((4, 60, 60), AIR, dtype=np.float32)
    hu[:, 2:58, 2:58] = TISSUE
    hu[:, 6:30, 8:26] = LUNG
    hu[:, 6:30, 34:52] = LUNG
    hu[:, 10:14, 28:32] = AIR     # trachea
    hu[:, 40:50, 20:32] = AIR     # stomach gas: 120 px, 3.8% of the body, more than a small lung
    hu[:, 44:50, 20:32] = TISSUE  # its fluid level
    lung = lung_mask(hu)
    assert lung[:, 6:30, 8:26].all() and lung[:, 6:30, 34:52].all()
    assert not lung[:, 10:14, 28:32].any() and not lung[:, 36:, :].any()


def test_mottled_bowel_is_too_small_to_be_lung():
    """Bowel content with gas bubbles has a parenchyma-like median but a small cross-section."""
    hu = np.full((3, 60, 60), AIR, dtype=np.float32)
    hu[:, 2:58, 2:58] = TISSUE
    pocket = hu[:, 20:26, 20:26]
    pocket[...] = -700.0
    pocket[:, ::2, ::2] = AIR
    assert not lung_mask(hu).any()


def test_lung_base_counts_through_its_connection_to_the_lung_above():
    hu = np.full((6, 40, 60), AIR, dtype=np.float32)
    hu[:, 4:36, 4:56] = TISSUE
    hu[:4, 8:32, 8:26] = LUNG
    hu[4:, 12:16, 12:16] = LUNG  # the base: 16 px per slice, joined to the lung above
    lung = lung_mask(hu)
    assert lung[:4, 8:32, 8:26].all() and lung[4:, 12:16, 12:16].all()
    # the same pocket alone (no lung above it in the scan) is not lung
    assert not lung_mask(hu[4:]).any()


def test_slices_without_lung_give_an_empty_mask():
    hu = np.full((2, 40, 60), AIR, dtype=np.float32)
    hu[:, 4:36, 4:56] = TISSUE
    hu[:, 20:22, 20:22] = AIR
    assert not lung_mask(hu).any()


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


def test_confine_lesions_keeps_touching_lesions_and_drops_the_rest():
    lung = np.zeros((2, 20, 20), dtype=bool)
    lung[:, 5:15, 2:8] = True
    labels = np.zeros(lung.shape, dtype=np.uint8)
    labels[:, 6:9, 8:10] = 2    # consolidation against the lung edge
    labels[:, 7:9, 3:5] = 1     # GGO inside the lung
    labels[:, 2:4, 16:18] = 1   # far away: a false positive outside the lungs
    kept, merged = confine_lesions(lung, labels)
    assert (kept[:, 6:9, 8:10] == 2).all() and (kept[:, 7:9, 3:5] == 1).all()
    assert not kept[:, 2:4, 16:18].any()
    assert not (kept > 0)[~merged].any()  # every lesion label lies inside the reported lung
    assert merged.sum() == lung.sum() + 2 * 3 * 2


def test_display_images_use_their_contrast_anchors():
    """Any linear display scale of the same slice gives the same mask as the HU slice."""
    hu = _slab(slices=1)
    reference = lung_mask(hu)
    for low, high in ((-1350, 150), (-1000, 200), (-1200, 800)):
        display = np.round(np.clip((hu - low) / (high - low), 0, 1) * 255)
        np.testing.assert_array_equal(lung_mask(display, modality="display"), reference)


def test_pseudo_hu_maps_anchors_and_blank_slices_have_no_air():
    hu = _slab(slices=1)
    display = np.clip((hu + 1350) / 1500, 0, 1)
    scale = pseudo_hu(display)
    assert np.median(scale[hu == TISSUE]) == pytest.approx(20.0, abs=1.0)
    assert (pseudo_hu(np.zeros((1, 40, 60))) > -320).all()


def test_stack_must_be_3d():
    with pytest.raises(ValueError, match="slices, rows, cols"):
        lung_mask(np.zeros((4, 4)))


@pytest.mark.realdata
def test_real_training_slices_hold_their_lesions(shared_data):
    """On the 50 labelled COVID-SemiSeg training slices (8-bit crops; never the test slices): the
    mask holds most ground-truth GGO and confine_lesions keeps nearly every lesion pixel.
    Measured: GGO 88%, lesions kept 98%; one slice, consolidated nearly throughout, has no mask."""
    from PIL import Image

    folder = shared_data / "covid-semiseg" / "TrainingSet" / "MultiClassInfection-Train"
    ggo_inside, lesion_kept = [], []
    for path in sorted((folder / "Imgs").glob("*.jpg")):
        image = np.asarray(Image.open(path).convert("L"), dtype=np.float32)[None] / 255
        truth = np.asarray(Image.open(folder / "GT" / f"{path.stem}.png"))[None]
        lung = lung_mask(image, modality="display")
        ggo_inside.append((lung & (truth == 1)).sum() / max(1, (truth == 1).sum()))
        lesion_kept.append((confine_lesions(lung, truth)[0] > 0).sum() / max(1, (truth > 0).sum()))
    assert len(ggo_inside) == 50
    assert np.mean(ggo_inside) > 0.8 and np.mean(lesion_kept) > 0.95


@pytest.mark.realdata
def test_real_negative_controls(shared_data):
    """The real DICOM cases: both lungs of the healthy chest; no gas-filled bowel or stomach (nor
    anything else) taken for lung in the upper abdomen."""
    from ssinfnet.inference.segment import read_scan

    chest = read_scan(shared_data / "real-ct" / "chest-2slices-dicom")
    lung = lung_mask(np.asarray(chest.stack, dtype=np.float32))
    area_cm2 = lung.sum(axis=(1, 2)) * chest.voxel_size[1] * chest.voxel_size[2] / 100
    assert (area_cm2 > 100).all()
    half = lung.shape[2] // 2
    assert lung[:, :, :half].sum() > 0.2 * lung.sum() and lung[:, :, half:].sum() > 0.2 * lung.sum()
    abdomen = read_scan(shared_data / "real-ct" / "abdomen-20slices-dicom")
    stack = np.asarray(abdomen.stack, dtype=np.float32)
    gas = lung_mask(stack) & (stack < -950)
    voxel_ml = float(np.prod(abdomen.voxel_size)) / 1000
    assert gas.sum() * voxel_ml < 1.0


def test_generated_chest_with_abdomen_below_keeps_gas_out():
    """A generated chest volume with four upper-abdomen slices appended below the lungs: a gas-filled
    stomach with a fluid level and mottled bowel. The lungs are found; below them nothing is lung."""
    from ssinfnet.data.demo_cohort import render_subject

    chest = render_subject(np.random.default_rng(0), size=96, n_slices=8, lesion_fraction=0.05)
    hu = np.moveaxis(chest.hu, 2, 0).astype(np.float32)  # (slices, rows, cols), apex last
    abdomen = np.repeat(np.where(hu[:1] > -500, 40.0, -1000.0), 4, axis=0)  # body outline, no lung
    abdomen[:, 30:48, 55:75] = -1000.0  # stomach gas
    abdomen[:, 42:48, 55:75] = 10.0     # its fluid level
    bowel = abdomen[:, 55:63, 30:40]
    bowel[...] = -650.0                 # bowel content, parenchyma-like median...
    bowel[:, ::2, ::2] = -1000.0        # ...with gas bubbles
    stack = np.concatenate([abdomen, hu])
    lung = lung_mask(stack)
    truth = np.moveaxis(chest.lung, 2, 0).astype(bool)
    assert not lung[:4].any()
    found = lung[4:]
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.9
