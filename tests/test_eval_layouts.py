"""`ssinfnet evaluate` on every labelled layout, scoring what `segment` gives (issue 23).

A generated cohort (chest volumes in HU with label volumes, chest-crop PNGs) and tiny untrained networks
saved as a pipeline folder; one thread, seconds.
"""

import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from pydicom.uid import generate_uid

from ssinfnet.cli import main
from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.data.readers import SEMISEG_FOLDERS, detect_layout, read_dataset
from ssinfnet.errors import InputError
from ssinfnet.evaluation.predict import load_model_under_test, predict_samples
from ssinfnet.inference.predictor import Pipeline, load_pipeline, save_pipeline
from ssinfnet.inference.segment import segment
from ssinfnet.models.registry import build_model
from test_data_volumes import _write_ct


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    cohort = make_demo_cohort(root / "cohort", n_subjects=4, size=64, slices_per_subject=12)
    torch.manual_seed(0)
    save_pipeline(root / "pipeline", Pipeline(build_model("unet", width=4), build_model("multi_unet", width=4),
                                              size=32, threshold=0.45))
    return root, cohort


def _binary_png_folder(cohort, out):
    """A paired folder of the cohort's test PNGs with 0/255 infection masks (the common public format)."""
    images, masks = (cohort / "semiseg" / sub for sub in SEMISEG_FOLDERS["test", "multi"])
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    for image in sorted(images.iterdir()):
        shutil.copyfile(image, out / "images" / image.name)
        mask = np.asarray(Image.open(next(masks.glob(image.stem + ".*"))))
        Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8)).save(out / "masks" / f"{image.stem}.png")
    return out


def _volume_pairs(cohort, out, label_value=None):
    """ct/ + masks/ NIfTI volumes, masks named with MosMed's ``_mask`` ending."""
    (out / "ct").mkdir(parents=True)
    (out / "masks").mkdir()
    for subject in sorted((cohort / "volumes").iterdir())[:2]:
        shutil.copyfile(subject / "ct.nii.gz", out / "ct" / f"{subject.name}.nii.gz")
        label = nib.load(subject / "label.nii.gz")
        data = np.asarray(label.dataobj)
        if label_value is not None:
            data = np.where(data > 0, label_value, 0)
        nib.save(nib.Nifti1Image(data.astype(np.uint8), label.affine), out / "masks" / f"{subject.name}_mask.nii.gz")
    return out


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


def test_binary_png_masks_give_infection_metrics_only(workspace, tmp_path, capsys):
    root, cohort = workspace
    data = _binary_png_folder(cohort, tmp_path / "png")
    assert detect_layout(data) == "paired"
    assert main(["evaluate", "--data", str(data), "--pipeline", str(root / "pipeline"), "--out",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    summary = _summary(tmp_path / "eval")
    assert summary["task"] == "single" and summary["truth"] == "binary (infection only)"
    assert summary["prediction"] == "product" and summary["layout"] == "paired"
    assert "infection" in summary["metrics"] and "Overall" not in summary["metrics"]
    assert not {"ggo", "consolidation", "image_mean"} & set(summary["metrics"])
    out = capsys.readouterr().out
    assert "infection F1" in out and "Overall" not in out


def test_evaluate_scores_exactly_what_segment_gives(workspace, tmp_path):
    """Every pixel of every image: evaluate's labels are segment's labels of the same file, and its lesion call."""
    root, cohort = workspace
    data = _binary_png_folder(cohort, tmp_path / "png")
    model = load_model_under_test(pipeline=root / "pipeline")
    samples = read_dataset(data)
    pipeline = load_pipeline(root / "pipeline", bf16=model.pipeline.bf16)
    called_somewhere = False
    for sample, (prob, labels, lung) in zip(samples, predict_samples(model, samples)):
        result = segment(sample.meta.source, model=pipeline)
        np.testing.assert_array_equal(labels, result.labels)
        np.testing.assert_array_equal(lung, result.lung)
        assert not (prob[~lung] > 0).any()  # the scored probabilities are confined like the labels
        called_somewhere |= bool(labels.any())
    assert called_somewhere  # the comparison is not between two empty label maps


def test_raw_scores_the_whole_slice_and_says_so(workspace, tmp_path):
    root, cohort = workspace
    data = _binary_png_folder(cohort, tmp_path / "png")
    model = load_model_under_test(pipeline=root / "pipeline")
    samples = read_dataset(data)
    raw = [labels for _, labels, lung in predict_samples(model, samples, raw=True) if lung is None]
    product = [labels for _, labels, _ in predict_samples(model, samples)]
    assert len(raw) == len(samples)
    assert any((r > 0).sum() > (p > 0).sum() for r, p in zip(raw, product))  # outside the lung counts in raw
    assert main(["evaluate", "--data", str(data), "--pipeline", str(root / "pipeline"), "--raw", "--out",
                 str(tmp_path / "raw"), "--no-progress"]) == 0
    assert _summary(tmp_path / "raw")["prediction"] == "raw"


def test_nifti_volume_pairs_scored_per_volume(workspace, tmp_path, capsys):
    root, cohort = workspace
    data = _volume_pairs(cohort, tmp_path / "nifti")
    assert main(["evaluate", "--data", str(data), "--pipeline", str(root / "pipeline"), "--out",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    summary = _summary(tmp_path / "eval")
    assert summary["volumes"] == 2 and summary["truth"] == "multi-class"
    with open(tmp_path / "eval" / "volumes.csv", newline="") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    pipeline = load_pipeline(root / "pipeline", bf16=load_model_under_test(pipeline=root / "pipeline").pipeline.bf16)
    for name, row in rows.items():
        truth = np.asarray(nib.load(data / "masks" / f"{name}_mask.nii.gz").dataobj) > 0
        called = segment(data / "ct" / f"{name}.nii.gz", model=pipeline).labels > 0  # in the input's geometry
        tp = np.count_nonzero(truth & called)
        expected = 2 * tp / (truth.sum() + called.sum()) if truth.sum() + called.sum() else float("nan")
        assert float(row["infection_dice"]) == pytest.approx(expected, abs=1e-9)
        voxel_ml = float(np.prod(nib.load(data / "ct" / f"{name}.nii.gz").header.get_zooms()[:3])) / 1000
        assert float(row["truth_lesion_ml"]) == pytest.approx(truth.sum() * voxel_ml, rel=1e-6)
    assert summary["metrics"]["volume"]["infection_dice"]["n"] == 2
    assert "per volume (3D)" in capsys.readouterr().out


def test_label_map_of_effusion_only_is_scored_not_a_crash(workspace, tmp_path):
    """MedSeg's label 3 (pleural effusion) maps to background: a lesion-free truth, infection metrics only."""
    root, cohort = workspace
    data = _volume_pairs(cohort, tmp_path / "nifti", label_value=3)
    assert main(["evaluate", "--data", str(data), "--pipeline", str(root / "pipeline"), "--out",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    summary = _summary(tmp_path / "eval")
    assert summary["truth"] == "binary (infection only)" and "Overall" not in summary["metrics"]


def _dicom_series_with_labels(cohort, out, rows_of=lambda rows: rows[::-1]):
    """The first cohort volume as a DICOM series (HU) + slice_labels.csv, every third slice labelled positive
    (the labels only have to be told apart). Returns (folder, labels by z)."""
    volume = nib.load(sorted((cohort / "volumes").iterdir())[0] / "ct.nii.gz")
    hu = np.asarray(volume.dataobj, dtype=np.float32)
    series, uid = out / "dicom", generate_uid()
    series.mkdir(parents=True)
    rows = []
    for k in range(hu.shape[2]):
        name = f"slice{k}.dcm"
        # rows/cols of the DICOM plane: the NIfTI's x/y axes; what matters here is the matching by position
        _write_ct(series / name, np.round(hu[:, :, k].T + 1024).clip(0, 4095), 10.0 + 2.5 * k, uid)
        rows.append({"file": name, "slice_location_mm": f"{10.0 + 2.5 * k:.2f}",
                     "infection": "1" if k % 3 == 0 else "0"})
    with open(out / "slice_labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows_of(rows))
    return out, {10.0 + 2.5 * k: row["infection"] for k, row in enumerate(rows)}


def test_dicom_series_with_slice_labels_scores_detection(workspace, tmp_path, capsys):
    root, cohort = workspace
    data, by_z = _dicom_series_with_labels(cohort, tmp_path / "case")
    assert detect_layout(data) == "dicom-slice-labels"
    samples = read_dataset(data)
    for sample in samples:  # each slice got its own file's row, whatever the order of the CSV
        geometry = sample.meta.geometry
        z = (np.asarray(geometry["affine"]) @ [0, 0, geometry["slice_index"], 1])[2]  # DICOM slices: array axis 2
        assert sample.meta.label == {"1": "infection", "0": "no infection"}[by_z[round(z, 2)]]
    assert main(["evaluate", "--data", str(data), "--pipeline", str(root / "pipeline"), "--out",
                 str(tmp_path / "eval"), "--no-progress"]) == 0
    detection = _summary(tmp_path / "eval")["detection"]
    assert detection["score"] == "lesion_share_of_lung" and detection["positive_label"] == "infection"
    assert detection["positives"] + detection["negatives"] == len(samples)
    assert 0 <= detection["sensitivity"] <= 1 and 0 <= detection["specificity"] <= 1
    assert "sensitivity" in capsys.readouterr().out


@pytest.mark.parametrize("damage, message", [
    (lambda rows: rows[:-1], "have no row"),
    (lambda rows: rows + [{**rows[0], "file": "missing.dcm"}], "not a readable slice"),
    (lambda rows: [{**rows[0], "infection": "yes"}] + rows[1:], "infection must be 1 or 0"),
])
def test_slice_label_table_problems_are_one_line(workspace, tmp_path, damage, message):
    _, cohort = workspace
    data, _ = _dicom_series_with_labels(cohort, tmp_path / "case", rows_of=damage)
    with pytest.raises(InputError, match=message):
        read_dataset(data)


def _mask_of_another_shape(cohort, tmp_path):
    data = _volume_pairs(cohort, tmp_path / "nifti")
    mask = sorted((data / "masks").iterdir())[0]
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.uint8), np.eye(4)), mask)
    return data, f"{mask}: shape (8, 8, 3) differs from image volume"


def _slice_table_missing_a_row(cohort, tmp_path):
    data, _ = _dicom_series_with_labels(cohort, tmp_path / "case", rows_of=lambda rows: rows[1:])
    return data, f"{data / 'slice_labels.csv'}: 1 of the series' 12 slices have no row"


@pytest.mark.parametrize("make", [_mask_of_another_shape, _slice_table_missing_a_row])
def test_bad_labelled_layouts_are_one_line_exit_2_nothing_written(workspace, tmp_path, capsys, make):
    root, cohort = workspace
    data, message = make(cohort, tmp_path)
    out = tmp_path / "eval"
    assert main(["evaluate", "--data", str(data), "--pipeline", str(root / "pipeline"), "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_validate_knows_the_labelled_layouts(workspace, tmp_path, capsys):
    from ssinfnet.data.validate import validate_path

    _, cohort = workspace
    series, _ = _dicom_series_with_labels(cohort, tmp_path / "case")
    report = validate_path(series)
    assert report["layout"] == "dicom-slice-labels" and report["problems"] == []
    assert report["splits"]["series"]["labels"] == {"infection": 4, "no infection": 8}
    broken, _ = _dicom_series_with_labels(cohort, tmp_path / "broken", rows_of=lambda rows: rows[:-1])
    assert validate_path(broken)["problems"] == [f"{broken / 'slice_labels.csv'}: 1 of the series' 12 slices have no row"]
    volumes = validate_path(_volume_pairs(cohort, tmp_path / "nifti"))
    assert volumes["layout"] == "paired" and volumes["problems"] == []
