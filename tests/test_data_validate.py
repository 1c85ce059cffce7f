"""`data validate` reports on generated NIfTI, DICOM and paired folders."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from PIL import Image

from ssinfnet.data.validate import format_report, validate_path

from test_data_volumes import make_dicom_series


def test_nifti_image_and_label_volumes(tmp_path):
    hu = np.full((6, 6, 4), -1000.0, np.float32)
    hu[2, 2, 1] = 300.0
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "ct.nii.gz")
    labels = np.zeros((6, 6, 4), np.uint8)
    labels[0:2, 0:2, 0] = 1
    labels[3:5, 3:5, 2] = 3
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "label.nii.gz")
    image = validate_path(tmp_path / "ct.nii.gz")
    assert image["layout"] == "nifti-image" and image["splits"]["volume"]["count"] == 4
    assert image["splits"]["volume"]["value_range"] == [-1000.0, 300.0]
    report = validate_path(tmp_path / "label.nii.gz")
    volume = report["splits"]["volume"]
    assert report["layout"] == "nifti-labels"
    assert volume["label_histogram"] == {"background": 6 * 6 * 4 - 8, "GGO": 4, "pleural effusion": 4}
    assert volume["slices_with_label"]["pleural effusion"] == 1
    assert "pleural effusion 2.78%" in format_report(report)


def test_dicom_folder(tmp_path):
    make_dicom_series(tmp_path / "series", zs=(0.0, 3.0, 6.0, 9.0))
    report = validate_path(tmp_path / "series")
    assert report["layout"] == "dicom" and report["splits"]["series"]["count"] == 4
    assert report["splits"]["series"]["value_range"] == [2 * 1000 - 1024, 2 * 2000 - 1024]
    # no air: not HU, which segment refuses too
    assert report["problems"] == [f"{tmp_path / 'series'}: values 976..2976 are neither 8-bit nor Hounsfield units "
                                  "(no air below -500); raw scanner values without RescaleIntercept?"]


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / f"{name}.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "masks" / "b.png")
    report = validate_path(tmp_path)
    problems = report["problems"]
    assert len(problems) == 2
    assert any("c.png" in p and "no mask" in p for p in problems)
    assert any("b.png" in p and "unexpected label values [9]" in p for p in problems)
    assert report["splits"]["all"]["count"] == 1 and report["splits"]["all"]["class_shares"] == {"GGO": 1.0}
