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


def diaphragm_case():
    """A generated lung base over the upper abdomen, (12 slices, 64, 64) HU at (3, 1.5, 1.5) mm, slice 0
    lowest, and a lesion prediction that spills from the lungs below the diaphragm.

    - Lungs (-850 HU) in slices 6-11; the right lung's base is slice 6. The left lung ends in a dome:
      in slices 5 and 6 it is a crescent open medially, whose hollow holds the diaphragm (35 HU; a
      disc at the dome's top, slice 6) and, in slice 5, a ring of it around the colon.
    - Colon in slices 1-5: stool (0 HU) mottled with single-voxel gas bubbles 3 voxels apart. Liver
      and spleen (45 HU) in slices 0-5, the rest of the body 200 HU (above the stand-in's bands).
    - Dense consolidation (30 HU) on the right lung's posterior border, against the chest wall, in
      slices 6-9, with an air bronchogram: in slice 8 an airway from the aerated lung into it, which
      goes on in slice 7 as gas cut off from the lung in that slice (joined to it through slice 8).
    - The prediction (``labels``): the consolidation (2), a GGO inside the left lung (1), and
      "consolidation" in the liver under it (slices 2-5), in the dome's diaphragm (slices 5-6) and in
      the colon (slices 1-5).
    Returns (hu, spacing, labels, truth masks: "consolidation", "ggo", "abdomen" = liver, spleen and
    colon, "colon")."""
    hu = np.full((12, 64, 64), AIR, dtype=np.float32)
    hu[:, 4:60, 4:60] = 200.0
    hu[6:, 10:50, 8:28] = LUNG    # right lung (image left)
    hu[5:, 10:50, 36:56] = LUNG   # left lung
    hu[5:7, 16:44, 36:50] = 35.0  # the dome's hollow: diaphragm
    hu[:6, 10:50, 8:28] = 45.0    # liver
    hu[:5, 10:50, 36:56] = 45.0   # spleen
    colon = np.zeros(hu.shape, dtype=bool)
    colon[1:6, 18:42, 38:48] = True
    hu[colon] = 0.0
    bubbles = np.zeros(hu.shape, dtype=bool)
    bubbles[1:6, 18:42:3, 38:48:3] = True
    hu[bubbles] = AIR
    consolidation = np.zeros(hu.shape, dtype=bool)
    consolidation[6:10, 40:50, 8:28] = True
    hu[consolidation] = 30.0
    hu[8, 36:46, 18] = AIR  # the bronchogram, from aerated lung (rows < 40) into the consolidation
    hu[7, 42:46, 18] = AIR  # its continuation, reached only through slice 8
    ggo = np.zeros(hu.shape, dtype=bool)
    ggo[9, 24:30, 44:50] = True
    hu[ggo] = -500.0
    labels = np.zeros(hu.shape, dtype=np.uint8)
    labels[consolidation] = 2
    labels[ggo] = 1
    labels[2:6, 40:50, 8:28] = 2   # liver under the consolidation
    labels[5:7, 16:44, 36:50] = 2  # the dome's diaphragm and, in slice 5, the colon in its hollow
    labels[colon] = 2              # the colon below, bubbles included
    abdomen = np.zeros(hu.shape, dtype=bool)
    abdomen[:6, 10:50, 8:28] = abdomen[:5, 10:50, 36:56] = True
    abdomen |= colon
    return hu, (3.0, 1.5, 1.5), labels, {"consolidation": consolidation, "ggo": ggo, "abdomen": abdomen,
                                          "colon": colon}


def test_diaphragm_case_lung_mask_holds_the_lungs_and_no_abdomen():
    hu, _, _, truth = diaphragm_case()
    lung = lung_mask(hu)
    assert lung[hu == LUNG].all() and lung[truth["ggo"]].all()
    assert not lung[truth["abdomen"]].any()
    # of the consolidation, only the airway open to the aerated lung in its slice is lung
    bronchus = np.zeros(hu.shape, dtype=bool)
    bronchus[8, 40:46, 18] = True
    np.testing.assert_array_equal(lung & truth["consolidation"], bronchus)


def test_lesions_do_not_spread_below_the_diaphragm():
    """The border consolidation (and its bronchogram) and the GGO stay, whole; nothing in the liver,
    spleen or colon survives, nor in any slice below the lungs."""
    hu, spacing, labels, truth = diaphragm_case()
    lung = lung_mask(hu)
    kept, merged = confine_lesions(lung, labels, hu, "hu", spacing)
    assert (kept[truth["consolidation"]] == 2).all() and (kept[truth["ggo"]] == 1).all()
    assert not kept[truth["abdomen"]].any() and not kept[:5].any()
    # what may stay beyond them: the dome's diaphragm beside the crescent, away from the colon's gas
    assert not kept[5:7, 18:42, 38:48].any()
    assert not (kept > 0)[~merged].any()
    np.testing.assert_array_equal(merged, lung | (kept > 0))


def test_each_part_of_the_rule_is_needed():
    """Without the scan's HU (rule a alone: lesions must reach the lung in their own slice) the slices
    below the lungs are clean, but the colon in the hollow of the crescent (slice 5) is kept; the gas
    rule is what drops it. The old 3D rule (lesions touching the lung anywhere) kept all of the spill."""
    hu, spacing, labels, truth = diaphragm_case()
    lung = lung_mask(hu)
    in_plane, _ = confine_lesions(lung, labels)
    assert not in_plane[:5].any() and (in_plane[5][truth["colon"][5]] == 2).all()
    assert (in_plane[truth["consolidation"]] == 2).all()
    # every 3D component of the prediction touches the lung: the old rule kept the whole spill
    from scipy import ndimage
    components, count = ndimage.label(labels > 0)
    touched = np.unique(components[ndimage.binary_dilation(lung) & (labels > 0)])
    assert count == 3 and set(touched) == {1, 2, 3}


def test_air_bronchogram_cut_off_in_its_slice_is_not_bowel_gas():
    """Gas joined to the lung only through the next slice is the airway's: the consolidation around it
    stays. The same gas pocket with the airway in slice 8 closed is gas outside the lung, and the
    consolidation within 5 mm of it is dropped (a documented limit)."""
    hu, spacing, labels, truth = diaphragm_case()
    closed = hu.copy()
    closed[8, 36:46, 18] = 30.0
    lung = lung_mask(closed)
    kept, _ = confine_lesions(lung, labels, closed, "hu", spacing)
    pocket = np.zeros(hu.shape, dtype=bool)
    pocket[7, 42:46, 18] = True
    assert not kept[pocket].any() and kept[truth["consolidation"]].any()
    # what lies nearer to the aerated lung and farther than 5 mm from the pocket keeps its label: the
    # slice two above it (aerated lung 3 mm above), the rim against the aerated lung in its own slice
    assert (kept[9][truth["consolidation"][9]] == 2).all() and (kept[7, 40:42, 8:14] == 2).all()
    assert not kept[7, 44:49, 14:23].any()  # nearer to the pocket than to the lung


def test_segment_keeps_the_stand_in_model_above_the_diaphragm():
    """segment() on the generated case with the HU-band stand-in model, which calls every soft tissue
    of 0-45 HU in the lung box consolidation (liver, spleen, colon content, diaphragm, the lesion):
    what it reports is the lesions in the lung, not the abdomen under the lung bases."""
    from test_segment_phantom import ThresholdPipeline

    from ssinfnet.inference.segment import segment

    hu, spacing, _, truth = diaphragm_case()
    result = segment(hu, model=ThresholdPipeline(), spacing=spacing)
    labels = result.labels
    assert (labels[truth["consolidation"] & (hu == 30.0)] == 2).all() and (labels[truth["ggo"]] == 1).all()
    assert not labels[truth["abdomen"]].any() and not labels[:5].any()
    # beyond the lesions only the dome's diaphragm against the crescent may be called (as in the
    # confine_lesions test), none of it above the colon
    extra = (labels > 0) & ~truth["consolidation"] & ~truth["ggo"]
    assert (hu[extra] == 35.0).all() and not extra[5:7, 18:42, 38:48].any()
    # 5.33 mL of consolidation in the lung (its airway is air to the stand-in), 0.32 mL of diaphragm;
    # the 3D touching rule reported 37.0 mL: 28.0 of them in the liver, spleen and colon
    true_ml = (truth["consolidation"] & (hu == 30.0)).sum() * float(np.prod(spacing)) / 1000
    assert true_ml <= result.quantities["consolidation_ml"] <= true_ml + 0.5


def _ellipse(shape, centre, radii):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    return ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1


@pytest.mark.realdata
def test_real_gut_under_a_generated_lung_dome(shared_data):
    """The real upper-abdomen scan, turned so that its slices with stomach and colon gas are on top,
    under a generated lung dome: in its top slice a left-lung crescent is painted around the real gut,
    then a slice of diaphragm over the gut, then four slices of full lungs. Prediction: every voxel of
    -150..105 HU inside the lungs' outlines, in every slice (a spill from the base into the gut).
    Nothing survives in the 19 real slices under the lung; in the crescent's slice the shell around
    the colon's pure-gas pocket goes, the rest of the gut in the hollow stays (the documented limit)."""
    from ssinfnet.inference.segment import read_scan

    scan = read_scan(shared_data / "real-ct" / "abdomen-20slices-dicom")
    real = np.asarray(scan.stack, dtype=np.float32)[::-1]
    shape = real.shape[1:]
    left, right = _ellipse(shape, (290, 335), (105, 80)), _ellipse(shape, (290, 175), (105, 80))
    hollow = _ellipse(shape, (250, 305), (85, 70)) & left  # anterior-medial: the crescent is posterolateral
    crescent = real[-1].copy()
    crescent[(left & ~hollow) | right] = LUNG
    dome = crescent.copy()
    dome[hollow] = 40.0
    chest = np.repeat(real[-1:], 4, axis=0)
    chest[:, left | right] = LUNG
    hu = np.concatenate([real[:-1], crescent[None], dome[None], chest])
    spacing = scan.voxel_size
    labels = (((hu > -150) & (hu < 105)) & (left | right)).astype(np.uint8) * 2
    lung = lung_mask(hu)
    assert not lung[:19].any()
    kept, _ = confine_lesions(lung, labels, hu, "hu", spacing)
    voxel_ml = float(np.prod(spacing)) / 1000
    # the old 3D rule kept the whole spill: it touches the lung base through the crescent's slice
    from scipy import ndimage
    components, _ = ndimage.label(labels > 0)
    touching = np.unique(components[ndimage.binary_dilation(lung) & (labels > 0)])
    assert np.isin(components[:19][labels[:19] > 0], touching).mean() > 0.99
    assert (labels[:19] > 0).sum() * voxel_ml > 1000 and not kept[:19].any()
    gas = (hu[19] < -950) & hollow
    assert gas.sum() > 300  # the colon's gas pocket
    shell = ndimage.binary_dilation(gas, iterations=4) & ~gas  # about 4 mm around it
    assert labels[19][shell].any() and not kept[19][shell].any()
    assert 15 < (kept[19][hollow] > 0).sum() * voxel_ml < (labels[19][hollow] > 0).sum() * voxel_ml
