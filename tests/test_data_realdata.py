"""Readers and `data validate` on the real public data beside the checkout (skipped when absent)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ssinfnet.cli import main
from ssinfnet.data.imageio import read_mask_2d
from ssinfnet.data.readers import read_semiseg
from ssinfnet.data.volumes import display_plane, display_view, load_label_volume
from ssinfnet.data.validate import validate_path

pytestmark = pytest.mark.realdata


def test_semiseg_counts_views_and_test_gt_layout(shared_data):
    root = shared_data / "covid-semiseg"
    train, test = read_semiseg(root, "train", orientation="array"), read_semiseg(root, "test", orientation="array")
    assert (len(train), len(test)) == (50, 48)
    assert all(s.image.dtype == np.float32 and s.mask.dtype == np.int64 for s in train + test)
    assert {int(v) for s in test for v in np.unique(s.mask)} == {0, 1, 2}
    single = read_semiseg(root, "test", "single", orientation="array")
    assert all(np.array_equal(m.mask > 0, s.mask > 0) for m, s in zip(test, single))
    # The test GT folder equals GT-1 (GGO) and GT-2 (consolidation) combined, so reading GT is enough.
    folder = root / "TestingSet/MultiClassInfection-Test"
    for sample in test[:10]:
        ggo = read_mask_2d(folder / "GT-1" / f"{sample.meta.id}.png")
        consolidation = read_mask_2d(folder / "GT-2" / f"{sample.meta.id}.png")
        np.testing.assert_array_equal(sample.mask, np.where(consolidation > 0, 2, ggo))


def test_medseg_volume_array_orientation_matches_semiseg_crops(shared_data):
    """COVID-SemiSeg crops equal tr_mask.nii.gz slices in stored (array) order: the reader's slice
    geometry is checked against an independent copy of the same labels."""
    labels = load_label_volume(shared_data / "medseg100/tr_mask.nii.gz")
    boxes = pd.read_csv(shared_data / "covid-semiseg/crop_boxes_in_medseg_tr_mask.csv").head(3)
    train = {s.meta.id: s for s in read_semiseg(shared_data / "covid-semiseg", "train", orientation="array")}
    plane = display_plane(np.eye(4), labels.shape, orientation="array")
    for box in boxes.itertuples():
        piece = display_view(labels, plane)[box.medseg_slice_index0]
        crop = piece[box.row0:box.row0 + box.height, box.col0:box.col0 + box.width]
        np.testing.assert_array_equal(crop, train[str(box.semiseg_id)].mask)


def test_validate_semiseg_reports_counts_and_class_shares(shared_data, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["data", "validate", str(shared_data / "covid-semiseg"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "train: 50 slices" in text and "test: 48 slices" in text and "class pixel shares" in text
    report = json.loads(out.read_text())
    shares = report["splits"]["train"]["class_shares"]
    assert set(shares) == {"background", "GGO", "consolidation"} and sum(shares.values()) == pytest.approx(1)
    assert report["problems"] == []


def test_validate_medseg_label_volume_counts_effusion(shared_data):
    report = validate_path(shared_data / "medseg100/tr_mask.nii.gz")
    volume = report["splits"]["volume"]
    assert report["layout"] == "nifti-labels" and volume["count"] == 100
    assert volume["size_min"] == volume["size_max"] == [512, 512]
    assert volume["label_histogram"]["pleural effusion"] == 34265
    assert volume["label_histogram"]["GGO"] == 1196461 and volume["slices_with_label"]["pleural effusion"] > 0


def test_validate_unlabeled_pool_headers_only(shared_data):
    report = validate_path(shared_data / "unlabeled-ct")
    pool = report["splits"]["all"]
    assert pool["count"] == 4597 and report["problems"] == []
    assert sum(pool["labels"].values()) == 4597 and set(pool["labels"]) == {"COVID", "NonCOVID"}
    assert pool["size_min"] != pool["size_max"]


def test_real_dicom_series_with_a_deleted_file_is_refused_at_the_gap(shared_data, tmp_path):
    import shutil

    from ssinfnet.data.volumes import load_dicom_volume
    from ssinfnet.errors import InputError

    series = shared_data / "real-ct" / "abdomen-20slices-dicom"
    whole = load_dicom_volume(series)
    assert whole.array.shape[2] == 20 and validate_path(series)["problems"] == []
    files = sorted(p for p in series.iterdir() if p.is_file())
    folder = tmp_path / "series"
    folder.mkdir()
    for path in files[:7] + files[8:]:  # one slice deleted (the copy lives in tmp_path, not the repository)
        shutil.copy(path, folder / path.name)
    with pytest.raises(InputError) as err:
        load_dicom_volume(folder)
    assert "gap in the series, about 1 slice(s) missing" in str(err.value)
    assert f"{whole.spacing[2]:.2f} mm apart" in str(err.value)
    assert validate_path(folder)["problems"] == [str(err.value)]
