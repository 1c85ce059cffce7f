"""Quantities from hand-made label stacks whose answers can be counted by eye."""

from __future__ import annotations

import numpy as np
import pytest

from ssinfnet.inference.quantify import quantify


def _stack():
    """2 slices x 4 rows x 12 cols; lung mask in cols 2..9, one consolidation voxel outside it at col 11,
    so the lung region (mask OR lesion) spans cols 2..11: midline 6.5, left = cols 7..11.

    Columns run from the patient's right (col 0) to the patient's left (col 11).
    """
    labels = np.zeros((2, 4, 12), dtype=np.uint8)
    lung = np.zeros_like(labels, dtype=bool)
    lung[:, :, 2:10] = True
    labels[0, 0, 7:9] = 1   # 2 GGO voxels on the patient's left
    labels[1, 1:3, 3] = 2   # 2 consolidation voxels on the right
    labels[1, 3, 5] = 1     # 1 GGO voxel, right of the midline
    labels[0, 3, 11] = 2    # 1 consolidation voxel outside the lung mask (left): joins the lung region
    return labels, lung


def test_volume_amounts_percentages_and_sides():
    labels, lung = _stack()
    q = quantify(labels, lung, element_size=1.0, volumetric=True)
    assert q["ggo_voxels"] == 3 and q["consolidation_voxels"] == 3 and q["lesion_voxels"] == 6
    assert q["lung_voxels"] == 65 and q["lung_ml"] == pytest.approx(0.065)
    assert q["ggo_ml"] == pytest.approx(0.003)
    # every lesion counts, over the lung region (mask OR lesion)
    assert q["lesion_percent_of_lung"] == pytest.approx(100 * 6 / 65, abs=1e-3)
    assert q["left_ggo_voxels"] == 2 and q["right_ggo_voxels"] == 1
    assert q["left_consolidation_voxels"] == 1 and q["right_consolidation_voxels"] == 2
    assert (q["left_lung_voxels"], q["right_lung_voxels"]) == (3 * 8 + 1, 5 * 8)
    assert q["right_consolidation_percent_of_lung"] == pytest.approx(100 * 2 / 40, abs=1e-3)
    assert q["left_consolidation_percent_of_lung"] == pytest.approx(100 * 1 / 25, abs=1e-3)


def test_2d_units_and_unknown_spacing():
    labels, lung = _stack()
    q = quantify(labels[:1], lung[:1], element_size=0.25, volumetric=False)
    assert q["ggo_pixels"] == 2 and q["ggo_mm2"] == pytest.approx(0.5)
    assert not any(key.endswith("_ml") for key in q)
    q = quantify(labels[:1], lung[:1], element_size=None, volumetric=False)
    assert "ggo_mm2" not in q and q["lesion_pixels"] == 3


def test_empty_lung_region_gives_no_percentages():
    labels, lung = _stack()
    q = quantify(np.zeros_like(labels), np.zeros_like(lung), element_size=1.0, volumetric=True)
    assert q["lesion_percent_of_lung"] is None and q["left_ggo_percent_of_lung"] is None
    q = quantify(labels, np.zeros_like(lung), element_size=1.0, volumetric=True)  # lesions alone are the region
    assert q["lesion_voxels"] == q["lung_voxels"] == 6 and q["lesion_percent_of_lung"] == 100


def test_shape_mismatch_is_refused():
    labels, lung = _stack()
    with pytest.raises(ValueError, match="same"):
        quantify(labels, lung[:1], element_size=None, volumetric=True)


def test_sides_can_be_left_out():
    labels, lung = _stack()
    q = quantify(labels[:1], lung[:1], element_size=None, volumetric=False, sides=False)
    assert q["ggo_pixels"] == 2 and not any(key.startswith(("left_", "right_")) for key in q)
