"""One lesion-burden definition: a hand-made volume measured by core.burden, by segment's quantities and
by the phenotypes gives the same lung region, percentages and left/right split."""

import numpy as np
import pytest

from ssinfnet.analysis.phenotypes import scan_phenotypes
from ssinfnet.core.burden import LEFT, RIGHT, WHOLE, Lateral, measure
from ssinfnet.inference.quantify import quantify


def hand_made():
    """Display layout (slices, rows, cols), cols from the patient's right (0) to the left (9).

    Lung mask: cols 1..8 of rows 0..3 (64 voxels over 2 slices). Lesions: 4 GGO voxels on the right
    (cols 2..3), 2 consolidation voxels on the left (col 7), one of them outside the mask (row 4).
    The lung region spans cols 1..8: midline 4.5.
    """
    labels = np.zeros((2, 5, 10), np.int64)
    lung = np.zeros(labels.shape, bool)
    lung[:, 0:4, 1:9] = True
    labels[0, 0:2, 2:4] = 1   # right, GGO, 4 voxels
    labels[1, 3, 7] = 2       # left, consolidation, inside the mask
    labels[1, 4, 7] = 2       # left, consolidation, outside the mask: joins the lung region
    return labels, lung


def test_counts_percentages_and_sides_by_hand():
    labels, lung = hand_made()
    parts = measure(labels, lung, Lateral.display_columns())
    whole, right, left = parts[WHOLE], parts[RIGHT], parts[LEFT]
    assert (whole.lung, whole.ggo, whole.consolidation, whole.lesion) == (65, 4, 2, 6)
    assert whole.percent_of_lung("lesion") == pytest.approx(100 * 6 / 65)
    # midline 4.5: cols 1..4 right (32 voxels), cols 5..8 left (32 + the outside voxel)
    assert (right.lung, right.ggo, right.consolidation) == (32, 4, 0)
    assert (left.lung, left.ggo, left.consolidation) == (33, 0, 2)
    assert np.isnan(measure(np.zeros_like(labels), np.zeros_like(lung))[WHOLE].percent_of_lung("lesion"))


def test_a_voxel_on_the_midline_counts_as_right():
    labels = np.zeros((1, 1, 3), np.int64)
    labels[0, 0, 1] = 1
    parts = measure(labels, np.ones(labels.shape, bool), Lateral.display_columns())
    assert (parts[RIGHT].lung, parts[RIGHT].ggo, parts[LEFT].lung) == (2, 1, 1)


def test_segment_quantities_and_phenotypes_agree():
    labels, lung = hand_made()
    q = quantify(labels, lung, element_size=125.0, volumetric=True)
    # the same voxels as a NIfTI volume: array (i, j, k) = (col, row, slice) with an affine whose +i
    # points to the patient's left (x = -5 i), 5 mm voxels
    affine = np.diag([-5.0, 5.0, 5.0, 1.0])
    volume = np.transpose(labels, (2, 1, 0))
    f = scan_phenotypes(volume, np.transpose(lung, (2, 1, 0)), affine)
    assert f["lung_volume_ml"] == pytest.approx(q["lung_ml"]) == pytest.approx(65 * 0.125)
    assert f["lesion_pct"] == pytest.approx(q["lesion_percent_of_lung"], abs=1e-3)
    assert f["ggo_pct"] == pytest.approx(q["ggo_percent_of_lung"], abs=1e-3)
    assert f["right_lesion_pct"] == pytest.approx(q["right_lesion_percent_of_lung"], abs=1e-3)
    assert f["left_lesion_pct"] == pytest.approx(q["left_lesion_percent_of_lung"], abs=1e-3)
    assert f["right_lesion_pct"] == pytest.approx(100 * 4 / 32)
    assert f["left_lesion_pct"] == pytest.approx(100 * 2 / 33)
