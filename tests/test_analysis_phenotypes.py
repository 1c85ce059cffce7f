"""Phenotype formulas on hand-made masks whose answers are counted by hand."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ssinfnet.analysis.phenotypes import FEATURES, scan_phenotypes, write_data_dictionary
from ssinfnet.analysis.scans import find_scans, per_patient, phenotype_table
from ssinfnet.cli import main
from ssinfnet.errors import InputError

VOXEL_ML = 0.125  # 5 x 5 x 5 mm voxels: 8 voxels = 1 mL
RAS_AFFINE = np.diag([5.0, 5.0, 5.0, 1.0])  # +i = patient's right


def hand_made():
    """Two lung blocks (i < 10 left, i >= 10 right) and three lesions of known size and class."""
    labels = np.zeros((20, 10, 4), np.int64)
    lung = np.zeros(labels.shape, bool)
    lung[0:9], lung[11:20] = True, True  # 360 voxels each side
    labels[12:14, 2:4, 0:2] = 1  # right, GGO, 8 voxels = 1 mL
    labels[2, 2, 0] = 2  # left, consolidation, 1 voxel
    labels[16:18, 5:10, 0:2] = 1  # right, one 40-voxel lesion: half GGO ...
    labels[16:18, 5:10, 2:4] = 2  # ... half consolidation
    hu = np.full(labels.shape, -850.0, np.float32)
    hu[labels == 1], hu[labels == 2] = -500.0, 0.0
    return labels, lung, hu


def test_burden_sizes_sides_and_intensity_match_hand_counts():
    labels, lung, hu = hand_made()
    f = scan_phenotypes(labels, lung, RAS_AFFINE, hu)
    assert set(f) == set(FEATURES)
    assert f["lung_volume_ml"] == pytest.approx(720 * VOXEL_ML)
    assert f["ggo_volume_ml"] == pytest.approx(28 * VOXEL_ML)
    assert f["consolidation_volume_ml"] == pytest.approx(21 * VOXEL_ML)
    assert f["lesion_pct"] == pytest.approx(100 * 49 / 720)
    assert f["consolidation_ggo_ratio"] == pytest.approx(21 / 28)
    assert f["consolidation_share_pct"] == pytest.approx(100 * 21 / 49)
    assert f["n_lesions"] == 3  # the GGO/consolidation block touching itself is one lesion
    assert (f["n_lesions_lt_1ml"], f["n_lesions_1_10ml"], f["n_lesions_ge_10ml"]) == (1, 2, 0)
    assert f["lesion_size_median_ml"] == pytest.approx(1.0)
    assert f["lesion_size_max_ml"] == pytest.approx(5.0)
    assert f["largest_lesion_share_pct"] == pytest.approx(100 * 40 / 49)
    assert f["right_lesion_pct"] == pytest.approx(100 * 48 / 360)
    assert f["left_lesion_pct"] == pytest.approx(100 * 1 / 360)
    assert f["right_lesion_share_pct"] == pytest.approx(100 * 48 / 49)
    lesion_hu = np.array([-500.0] * 28 + [0.0] * 21)
    assert f["lesion_hu_mean"] == pytest.approx(lesion_hu.mean())
    assert f["lesion_hu_sd"] == pytest.approx(lesion_hu.std())
    assert f["lesion_hu_p90"] == pytest.approx(np.percentile(lesion_hu, 90))
    assert (f["ggo_hu_mean"], f["consolidation_hu_mean"]) == (-500.0, 0.0)


def test_left_and_right_follow_the_affine_not_the_array():
    labels, lung, hu = hand_made()
    las = RAS_AFFINE.copy()
    las[0, 0] = -5.0  # +i now points to the patient's left
    f = scan_phenotypes(labels, lung, las, hu)
    assert f["right_lesion_share_pct"] == pytest.approx(100 * 1 / 49)
    assert f["left_lesion_pct"] == pytest.approx(100 * 48 / 360)


def test_lesion_zone_edge_versus_centre():
    lung = np.zeros((13, 13, 1), bool)
    lung[1:12, 1:12] = True  # one 11 x 11 slice
    edge, centre = np.zeros(lung.shape, np.int64), np.zeros(lung.shape, np.int64)
    edge[1, 6], centre[6, 6] = 1, 1
    assert scan_phenotypes(edge, lung, RAS_AFFINE)["peripheral_lesion_share_pct"] == 100.0
    f = scan_phenotypes(centre, lung, RAS_AFFINE)
    assert f["peripheral_lesion_share_pct"] == 0.0
    assert f["central_lesion_pct"] > 0 and f["peripheral_lesion_pct"] == 0.0


def test_no_lesion_and_no_hu_give_nan_not_zero():
    labels, lung, _ = hand_made()
    f = scan_phenotypes(np.zeros_like(labels), lung, RAS_AFFINE, None)
    assert f["lesion_pct"] == 0.0 and f["n_lesions"] == 0 and f["lesion_size_max_ml"] == 0.0
    for name in ("consolidation_ggo_ratio", "lesion_size_median_ml", "lesion_hu_mean", "right_lesion_share_pct"):
        assert np.isnan(f[name]), name


def test_lesion_outside_the_lung_mask_counts_in_the_lung_region():
    labels, lung, hu = hand_made()
    lung[labels == 2] = False  # a threshold lung mask typically misses dense consolidation
    assert scan_phenotypes(labels, lung, RAS_AFFINE, hu)["lung_volume_ml"] == pytest.approx(720 * VOXEL_ML)


def test_empty_lung_is_an_input_error():
    with pytest.raises(InputError, match="empty"):
        scan_phenotypes(np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), RAS_AFFINE)


def write_scan(folder, labels, lung, hu, names=("ct.nii.gz", "label.nii.gz", "lung.nii.gz")):
    folder.mkdir(parents=True)
    for name, array in zip(names, (hu, labels.astype(np.int16), lung.astype(np.uint8))):
        nib.save(nib.Nifti1Image(array, RAS_AFFINE), str(folder / name))


def test_cli_table_per_patient_and_data_dictionary(tmp_path):
    labels, lung, hu = hand_made()
    write_scan(tmp_path / "volumes" / "s1", labels, lung, hu)
    write_scan(tmp_path / "volumes" / "s2", np.zeros_like(labels), lung, hu)
    seg = tmp_path / "seg_out"  # segment-output layout, no CT beside it -> no HU features
    write_scan(seg, labels, lung, hu, names=("unused.nii.gz", "labels.nii.gz", "lung.nii.gz"))
    patients = tmp_path / "patients.csv"
    patients.write_text("scan_id,patient_id\ns1,p1\ns2,p1\nseg_out,p2\n")
    out = tmp_path / "out"
    args = ["phenotypes", str(tmp_path / "volumes"), str(seg), "--patient-map", str(patients), "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["features.json", "features.md", "phenotypes.csv",
                                                     "phenotypes_scans.csv"]
    table = pd.read_csv(out / "phenotypes.csv")
    assert list(table["patient_id"]) == ["p1", "p2"]
    assert list(table["scan_id"]) == ["s1", "seg_out"]  # worst scan of p1 is the one with lesions
    assert list(table["n_scans"]) == [2, 1]
    assert np.isnan(table.loc[1, "lesion_hu_mean"]) and table.loc[0, "lesion_hu_mean"] < -200
    assert len(pd.read_csv(out / "phenotypes_scans.csv")) == 3
    dictionary = json.loads((out / "features.json").read_text())
    assert [f["name"] for f in dictionary["features"]] == list(FEATURES)


def test_cli_refuses_an_existing_output_and_replaces_it_only_with_overwrite(tmp_path, capsys):
    labels, lung, hu = hand_made()
    write_scan(tmp_path / "volumes" / "s1", labels, lung, hu)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    args = ["phenotypes", str(tmp_path / "volumes"), "--out", str(out)]
    assert main(args) == 2
    assert "already exists (pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["old.txt"]  # untouched
    assert main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["features.json", "features.md", "phenotypes.csv",
                                                     "phenotypes_scans.csv"]  # the new set only, no old file
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    assert main(["phenotypes", str(tmp_path / "volumes"), "--out", str(tmp_path / "table.csv")]) == 2
    assert "not a .csv file" in capsys.readouterr().err


def test_per_patient_mean_and_bad_inputs(tmp_path):
    labels, lung, hu = hand_made()
    write_scan(tmp_path / "a", labels, lung, hu)
    write_scan(tmp_path / "b", np.zeros_like(labels), lung, hu)
    table = phenotype_table(find_scans([tmp_path / "a", tmp_path / "b"]), {"a": "p", "b": "p"})
    mean = per_patient(table, "mean")
    assert mean.loc[0, "lesion_pct"] == pytest.approx(100 * 49 / 720 / 2)
    with pytest.raises(InputError, match="no segmentation outputs"):
        find_scans([_empty(tmp_path)])
    bad = tmp_path / "bad"
    write_scan(bad, labels + 2, lung, hu)
    with pytest.raises(InputError, match="unexpected label values"):
        phenotype_table(find_scans([bad]))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_write_data_dictionary_lists_units(tmp_path):
    md, _ = write_data_dictionary(tmp_path)
    text = md.read_text()
    assert "| `lesion_pct` | % of lung |" in text and "Conventions shared" in text
