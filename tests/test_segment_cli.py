"""``ssinfnet segment`` end to end: a real (tiny, random) pipeline folder, every output file, 2D round
trip, many inputs at once, and one clear error per bad input."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ssinfnet.cli import main
from ssinfnet.data.intensity import LUNG_WINDOW, Window, to_unit_range
from ssinfnet.inference.segment import segment
from test_segment_phantom import (
    CONSOLIDATION,
    GGO,
    ThresholdPipeline,
    centred_affine,
    chest_on_grid,
)


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    """A randomly initialised two-stage pipeline small enough for CI, saved as safetensors + json."""
    import torch

    from ssinfnet.inference.predictor import Pipeline, save_pipeline
    from ssinfnet.models import build_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "pipeline"
    pipeline = Pipeline(build_model("unet", width=4), build_model("multi_unet", width=4), size=32, device="cpu")
    save_pipeline(folder, pipeline)
    return folder


@pytest.fixture
def chest_nifti(tmp_path):
    shape = (48, 40, 6)
    affine = centred_affine(np.diag([-0.8, -0.8, 2.5]), shape)
    path = tmp_path / "chest.nii.gz"
    nib.save(nib.Nifti1Image(chest_on_grid(affine, shape), affine), path)
    return path


def _chest_png(path, size=(50, 70)):
    """A phantom slice as an 8-bit lung-window PNG of size (rows, cols); returns the HU slice."""
    rows, cols = size
    affine = centred_affine(np.array([[0, -0.8, 0], [-0.8, 0, 0], [0, 0, 1.0]]), (rows, cols, 1))  # radiological
    hu = chest_on_grid(affine, (rows, cols, 1))[:, :, 0]
    Image.fromarray(np.round(to_unit_range(hu, "hu") * 255).astype(np.uint8)).save(path)
    return hu


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    return err[0]


def test_cli_writes_every_output_and_refuses_to_overwrite(tmp_path, chest_nifti, tiny_pipeline, capsys):
    out = tmp_path / "out"
    args = ["segment", str(chest_nifti), "--out", str(out), "--model", str(tiny_pipeline), "--no-progress",
            "--probabilities", "--precision", "fp32"]
    assert main(args) == 0
    scan = out / "chest"
    labels = nib.load(scan / "labels.nii.gz")
    assert labels.shape == (48, 40, 6)
    np.testing.assert_array_equal(labels.affine, nib.load(chest_nifti).affine)
    assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2}
    for name in ("lung.nii.gz", "probability_infection.nii.gz", "probability_ggo.nii.gz",
                 "probability_consolidation.nii.gz", "labels.ctbl", "labels_itksnap.txt", "quantities.csv"):
        assert (scan / name).is_file(), name
    assert list((scan / "overlays").glob("overlay_slice*.png"))
    assert not (scan / "image.nii.gz").exists()  # the NIfTI input is recorded as the source instead
    record = json.loads((scan / "quantities.json").read_text())
    assert record["source"] == str(chest_nifti.resolve())
    assert {"ggo_ml", "consolidation_ml", "lesion_ml", "lesion_percent_of_lung", "left_lesion_ml"} <= set(record["quantities"])
    assert "chest" in capsys.readouterr().out
    assert (out / "summary.csv").read_text().count("\n") == 2

    assert main(args) == 2
    assert "exists" in _error_line(capsys)
    assert main(args + ["--overwrite"]) == 0


def test_png_round_trip_keeps_size(tmp_path):
    hu = _chest_png(tmp_path / "slice.png")
    result = segment(tmp_path / "slice.png", model=ThresholdPipeline(), spacing=(0.5, 0.5))
    out = result.save(tmp_path / "out")
    labels = np.asarray(Image.open(out / "labels.png"))
    assert labels.shape == hu.shape == (50, 70)
    np.testing.assert_array_equal(labels, (hu == GGO) * 1 + (hu == CONSOLIDATION) * 2)
    assert np.asarray(Image.open(out / "lung.png")).shape == (50, 70)
    q = result.quantities
    assert q["ggo_pixels"] == (hu == GGO).sum() > 0
    assert q["ggo_mm2"] == pytest.approx(0.25 * (hu == GGO).sum())
    # the Otsu lung mask of the 8-bit slice holds aerated lung and both lesions
    lung_pixels = np.isin(hu, (-850, GGO, CONSOLIDATION)).sum()
    assert q["lung_pixels"] == pytest.approx(lung_pixels, rel=0.05)
    assert (out / "overlays" / "overlay_slice0000.png").is_file()


def test_many_inputs_each_get_a_folder_and_a_bad_one_stops_all_before_any_output(tmp_path, chest_nifti, tiny_pipeline,
                                                                                 capsys):
    scans = tmp_path / "scans"
    scans.mkdir()
    chest_nifti.rename(scans / "a.nii.gz")
    _chest_png(scans / "b.png")
    (scans / "c.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    args = ["segment", str(scans), "--out", str(out), "--model", str(tiny_pipeline), "--no-progress"]
    assert main(args) == 2
    assert f"{scans / 'c.nii.gz'}: " in _error_line(capsys)
    assert not out.exists()  # not a, b and their summary, then the error
    (scans / "c.nii.gz").unlink()
    assert main(args) == 0
    assert (out / "a" / "labels.nii.gz").is_file() and (out / "b" / "labels.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "summary.csv"]  # no temporary leftovers
    assert [row.split(",")[0] for row in (out / "summary.csv").read_text().splitlines()] == ["scan", "a", "b"]


def test_summary_lists_every_scan_folder_under_out(tmp_path, tiny_pipeline, capsys):
    """Segmenting into an existing --out: summary.csv holds the earlier runs' scans too, each row
    that scan folder's quantities.csv."""
    for name in ("first", "second", "third"):
        (tmp_path / name).mkdir()
        _chest_png(tmp_path / name / f"{name}.png")
    out = tmp_path / "out"
    for name in ("first", "second"):
        assert main(["segment", str(tmp_path / name), "--out", str(out), "--model", str(tiny_pipeline), "--no-progress"]) == 0
    summary = (out / "summary.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in summary] == ["scan", "first", "second"]
    assert summary[2] == (out / "second" / "quantities.csv").read_text().splitlines()[1]
    assert str(tmp_path / "first" / "first.png") in summary[1]
    (out / "unrelated").mkdir()  # a folder that is no scan's output is not listed
    assert main(["segment", str(tmp_path / "third"), "--out", str(out), "--model", str(tiny_pipeline), "--no-progress"]) == 0
    assert [row.split(",")[0] for row in (out / "summary.csv").read_text().splitlines()] == ["scan", "first", "second", "third"]


def _nifti(path, data, zooms=(0.8, 0.8, 2.5)):
    nib.save(nib.Nifti1Image(data, np.diag([*zooms, 1.0])), path)
    return path


def _junk(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("junk")
    return path


BAD_INPUTS = {
    "unsupported format": (lambda d: _junk(d / "scan.txt"), "unsupported file type"),
    "2D slice promised as volume": (lambda d: _nifti(d / "flat.nii.gz", np.zeros((32, 32), np.int16)),
                                    "single 2D slice"),
    "NaN voxels": (lambda d: _nifti(d / "nan.nii.gz", np.full((8, 8, 4), np.nan, np.float32)), "NaN"),
    "absurd spacing": (lambda d: _nifti(d / "tiny.nii.gz", np.zeros((8, 8, 4), np.int16), (0.01, 0.01, 2.5)),
                       "spacing"),
    "raw values, not HU": (lambda d: _nifti(d / "raw.nii.gz", np.arange(8 * 8 * 4, dtype=np.int16).reshape(8, 8, 4) + 1000),
                           "Hounsfield"),
    "DICOM folder whose .dcm is junk": (lambda d: _junk(d / "dicom" / "x.dcm").parent,
                                        "x.dcm: not a DICOM file (4 bytes without the DICM marker)"),
    "single DICOM file": (lambda d: _junk(d / "x.dcm"), "single DICOM file"),
    "empty folder": (lambda d: (d / "empty").mkdir() or d / "empty", "no NIfTI, DICOM"),
    "missing path": (lambda d: d / "nope.nii.gz", "not found"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_line_error(tmp_path, tiny_pipeline, capsys, case):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    rc = main(["segment", str(path), "--out", str(tmp_path / "out"), "--model", str(tiny_pipeline), "--no-progress"])
    assert rc == 2
    line = _error_line(capsys)
    assert message in line and str(path) in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_device_is_refused(tmp_path, chest_nifti, tiny_pipeline, capsys):
    rc = main(["segment", str(chest_nifti), "--out", str(tmp_path / "out"), "--model", str(tiny_pipeline),
               "--device", "gpu0"])
    assert rc == 2 and "unknown device 'gpu0'" in _error_line(capsys)


def test_absurd_2d_spacing_is_refused(tmp_path, tiny_pipeline, capsys):
    _chest_png(tmp_path / "slice.png")
    rc = main(["segment", str(tmp_path / "slice.png"), "--out", str(tmp_path / "out"), "--model", str(tiny_pipeline),
               "--spacing", "80", "80"])
    assert rc == 2 and "spacing" in _error_line(capsys)


@pytest.mark.realdata
def test_real_slices_keep_their_size(shared_data, tmp_path, tiny_pipeline):
    images = [shared_data / "covid-semiseg" / "TestingSet" / "MultiClassInfection-Test" / "Imgs" / "36.jpg",
              shared_data / "medseg100" / "lung_only_512" / "i050.png"]
    out = tmp_path / "out"
    assert main(["segment", *map(str, images), "--out", str(out), "--model", str(tiny_pipeline), "--no-progress"]) == 0
    for image in images:
        labels = Image.open(out / image.stem / "labels.png")
        assert labels.size == Image.open(image).size
        assert set(np.unique(np.asarray(labels))) <= {0, 1, 2}


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_chest_in_a_lung_window_or_in_hu_gets_no_warning(tmp_path, chest_nifti, caplog):
    _chest_png(tmp_path / "lung.png")
    with caplog.at_level(logging.WARNING):
        assert segment(tmp_path / "lung.png", model=ThresholdPipeline()).lung.any()
        assert segment(chest_nifti, model=ThresholdPipeline()).lung.any()
    assert _warnings(caplog) == []


def test_a_soft_tissue_window_export_is_said_to_hide_the_lungs(shared_data, tmp_path, caplog):
    """The real healthy chest exported in a soft-tissue window (W400 L40): lungs and the air around the
    body are one black, so no lung is found; one line says so and how to export instead."""
    from ssinfnet.inference.segment import read_scan

    scan = read_scan(shared_data / "real-ct" / "chest-2slices-dicom")
    hu = np.asarray(scan.stack[0], dtype=np.float32)
    for name, window in (("lung.png", LUNG_WINDOW), ("mediastinum.png", Window(level=40.0, width=400.0))):
        Image.fromarray(np.round(to_unit_range(hu, "hu", window) * 255).astype(np.uint8)).save(tmp_path / name)
    with caplog.at_level(logging.WARNING):
        assert segment(tmp_path / "lung.png", model=ThresholdPipeline()).lung.any()
        assert _warnings(caplog) == []
        result = segment(tmp_path / "mediastinum.png", model=ThresholdPipeline())
    assert not result.lung.any() and not result.labels.any()
    (line,) = _warnings(caplog)
    assert "mediastinum.png" in line and "no lung found" in line and "export with a lung window" in line


def test_soft_tissue_far_from_its_hounsfield_units_is_warned_about(tmp_path, chest_nifti, caplog):
    """Air where CT has it, but soft tissue 400 HU too bright (a wrong rescale): one warning line."""
    image = nib.load(chest_nifti)
    hu = np.asarray(image.dataobj, np.int16)
    shifted = tmp_path / "shifted.nii.gz"
    nib.save(nib.Nifti1Image(np.where(hu < -500, hu, hu + 400).astype(np.int16), image.affine), shifted)
    with caplog.at_level(logging.WARNING):
        segment(shifted, model=ThresholdPipeline())
    assert any("shifted.nii.gz" in line and "Hounsfield units?" in line for line in _warnings(caplog))
