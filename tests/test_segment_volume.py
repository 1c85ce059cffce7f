"""Volumes in, labels out in the input's exact geometry, with mL matching the planted lesions.

The HU-threshold stand-in model (``ThresholdPipeline``) makes these checks about geometry and
quantification only.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from ssinfnet.errors import InputError
from ssinfnet.inference.segment import segment
from test_segment_phantom import (
    CONSOLIDATION,
    GGO,
    ThresholdPipeline,
    centred_affine,
    chest_on_grid,
    chest_hu,
    expected_quantities,
)


def _rotation_x(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])


# (voxel axes as RAS columns, array shape): an LPS-like flip (x and y reversed), slices stored first
# with x running to the patient's right (neurological order), and a 10-degree gantry-like tilt.
GRIDS = {
    "lps_flip": (np.diag([-0.8, -0.8, 2.5]), (64, 64, 20)),
    "slices_first": (np.array([[0, 0, 0.8], [0, -0.8, 0], [2.5, 0, 0]]), (20, 64, 64)),
    "tilted_10deg": (_rotation_x(10) @ np.diag([-0.8, 0.8, 2.5]), (64, 64, 20)),
}


def _write_nifti(path, columns, shape):
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = centred_affine(columns, shape)
    hu = chest_on_grid(affine, shape)
    image = nib.Nifti1Image(hu, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    nib.save(image, path)
    return hu, affine


def _assert_matches(quantities, expected, tolerance=0.05):
    for key, value in expected.items():
        assert quantities[key] == pytest.approx(value, rel=tolerance), key


@pytest.mark.parametrize("grid", GRIDS)
def test_nifti_labels_keep_geometry_and_volumes(tmp_path, grid):
    columns, shape = GRIDS[grid]
    hu, affine = _write_nifti(tmp_path / "chest.nii.gz", columns, shape)
    result = segment(tmp_path / "chest.nii.gz", model=ThresholdPipeline())
    assert result.labels.shape == shape and result.labels.dtype == np.uint8
    # every voxel's label is the phantom's class at that voxel: nothing transposed or flipped
    np.testing.assert_array_equal(result.labels, (hu == GGO) * 1 + (hu == CONSOLIDATION) * 2)
    voxel_mm3 = abs(np.linalg.det(columns))
    _assert_matches(result.quantities, expected_quantities(hu, voxel_mm3))
    # GGO was planted in the patient's left lung, consolidation in the right one
    assert result.quantities["left_ggo_voxels"] == (hu == GGO).sum() > 0
    assert result.quantities["right_consolidation_voxels"] == (hu == CONSOLIDATION).sum() > 0
    assert result.quantities["left_consolidation_voxels"] == result.quantities["right_ggo_voxels"] == 0

    out = result.save(tmp_path / "out")
    for name in ("labels.nii.gz", "lung.nii.gz"):
        saved = nib.load(out / name)
        original = nib.load(tmp_path / "chest.nii.gz")
        assert saved.shape == shape
        np.testing.assert_array_equal(saved.affine, original.affine)
        assert saved.header.get_sform(coded=True)[1] == saved.header.get_qform(coded=True)[1] == 1
        assert nib.aff2axcodes(saved.affine) == nib.aff2axcodes(affine)
    np.testing.assert_array_equal(np.asarray(nib.load(out / "labels.nii.gz").dataobj), result.labels)


def test_probability_maps_are_uint8_scaled_to_unit_range(tmp_path):
    columns, shape = GRIDS["lps_flip"]
    hu, _ = _write_nifti(tmp_path / "chest.nii.gz", columns, shape)
    result = segment(tmp_path / "chest.nii.gz", model=ThresholdPipeline(), probabilities=True)
    out = result.save(tmp_path / "out")
    ggo = nib.load(out / "probability_ggo.nii.gz").get_fdata()
    assert ggo.shape == shape
    np.testing.assert_allclose(ggo, (hu == GGO).astype(float), atol=1e-6)
    np.testing.assert_array_equal(result.probability("consolidation") == 1.0, hu == CONSOLIDATION)


def test_slices_are_predicted_in_bounded_batches_between_lung_apex_and_base(tmp_path):
    columns, shape = GRIDS["lps_flip"][0], (64, 64, 40)
    hu, _ = _write_nifti(tmp_path / "chest.nii.gz", columns, shape)
    pipeline = ThresholdPipeline()
    result = segment(tmp_path / "chest.nii.gz", model=pipeline, batch_size=6)
    # lungs span z = -20..20 mm: slices 12..27 of 40 at 2.5 mm, plus a 2-slice margin each side
    assert pipeline.batches == [6, 6, 6, 2]
    np.testing.assert_array_equal(result.labels, (hu == GGO) * 1 + (hu == CONSOLIDATION) * 2)


def test_array_api_with_and_without_affine(tmp_path):
    columns, shape = GRIDS["lps_flip"]
    affine = centred_affine(columns, shape)
    hu = chest_on_grid(affine, shape)
    from_affine = segment(hu, model=ThresholdPipeline(), affine=affine)
    assert from_affine.labels.shape == shape
    # the same anatomy as a (slices, rows, cols) radiological stack with spacing, as from SimpleITK;
    # the grid's axes already run to the patient's left (x), posterior (y) and superior (z)
    stack = np.moveaxis(hu, 2, 0).transpose(0, 2, 1)
    from_stack = segment(stack, model=ThresholdPipeline(), spacing=(2.5, 0.8, 0.8))
    assert from_stack.labels.shape == stack.shape
    for key in ("ggo_ml", "consolidation_ml", "left_ggo_ml", "right_consolidation_ml", "lung_ml"):
        assert from_stack.quantities[key] == pytest.approx(from_affine.quantities[key]), key


def _write_dicom_series(folder, uid, n_slices, rows=64, cols=64, spacing=(0.8, 0.8), step=2.5, seed=0):
    """An axial CT series (LPS patient coordinates), files written in shuffled order."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    origin = np.array([-(cols - 1) / 2 * spacing[1], -(rows - 1) / 2 * spacing[0], -(n_slices - 1) / 2 * step])
    volume = np.zeros((rows, cols, n_slices), dtype=np.int16)
    order = np.random.default_rng(seed).permutation(n_slices)
    for k in order:
        position = origin + [0, 0, k * step]
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        lps = np.stack([position[0] + c * spacing[1], position[1] + r * spacing[0],
                        np.full(r.shape, position[2])], axis=-1)
        hu = chest_hu(lps * [-1, -1, 1]).astype(np.int16)  # LPS -> RAS
        volume[:, :, k] = hu
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{uid[-4:]}_{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.SeriesInstanceUID = "CT", "phantom", uid
        ds.InstanceNumber = int(n_slices - k)  # deliberately not in position order
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = step
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.uint16).tobytes()
        ds.save_as(folder / f"{uid[-4:]}_{k}.dcm", enforce_file_format=True)
    expected_affine = np.array([
        [0, -spacing[1], 0, -origin[0]],
        [-spacing[0], 0, 0, -origin[1]],
        [0, 0, step, origin[2]],
        [0, 0, 0, 1],
    ])
    return volume, expected_affine


def test_dicom_series_largest_chosen_with_affine_from_dicom(tmp_path, caplog):
    volume, expected_affine = _write_dicom_series(tmp_path / "series", "1.2.3.4.1001", 20)
    _write_dicom_series(tmp_path / "series", "1.2.3.4.2002", 3, seed=1)  # a small scout series beside it
    result = segment(tmp_path / "series", model=ThresholdPipeline())
    assert "1.2.3.4.1001" in caplog.text  # the choice is said
    assert result.details["series_uid"] == "1.2.3.4.1001"
    np.testing.assert_allclose(result.affine, expected_affine, atol=1e-6)
    np.testing.assert_array_equal(result.labels, (volume == GGO) * 1 + (volume == CONSOLIDATION) * 2)
    _assert_matches(result.quantities, expected_quantities(volume, 0.8 * 0.8 * 2.5))
    assert result.quantities["left_ggo_voxels"] == (volume == GGO).sum()
    out = result.save(tmp_path / "out")
    saved = nib.load(out / "labels.nii.gz")
    assert saved.shape == volume.shape
    np.testing.assert_allclose(saved.affine, expected_affine, atol=1e-4)
    image = nib.load(out / "image.nii.gz")  # the series as NIfTI, on the labels' grid
    np.testing.assert_array_equal(np.asarray(image.dataobj), volume)
    np.testing.assert_allclose(image.affine, saved.affine)
    assert "phantom" not in (out / "quantities.json").read_text()  # no patient id copied


def test_dicom_series_uid_chooses_series(tmp_path):
    _write_dicom_series(tmp_path / "series", "1.2.3.4.1001", 20)
    _write_dicom_series(tmp_path / "series", "1.2.3.4.2002", 3, seed=1)
    result = segment(tmp_path / "series", model=ThresholdPipeline(), series_uid="1.2.3.4.2002")
    assert result.labels.shape == (64, 64, 3)


@pytest.mark.parametrize("degrees", [40, 90 - 40])
def test_oblique_scan_is_refused(tmp_path, degrees):
    columns = _rotation_x(degrees) @ np.diag([-0.8, 0.8, 2.5])
    _write_nifti(tmp_path / "oblique.nii.gz", columns, (32, 32, 8))
    with pytest.raises(InputError, match="oblique.*tilted 40 degrees"):
        segment(tmp_path / "oblique.nii.gz", model=ThresholdPipeline())


class RecordingPipeline(ThresholdPipeline):
    """The threshold stand-in that remembers the image shapes it saw."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def predict(self, images, batch_size=8):
        self.shapes += [image.shape for image in images]
        return super().predict(images, batch_size)


def test_model_sees_lung_crop_in_the_radiological_view(tmp_path):
    columns, shape = GRIDS["lps_flip"]
    hu, _ = _write_nifti(tmp_path / "chest.nii.gz", columns, shape)
    pipeline = RecordingPipeline()
    result = segment(tmp_path / "chest.nii.gz", model=pipeline)
    np.testing.assert_array_equal(result.labels, (hu == GGO) * 1 + (hu == CONSOLIDATION) * 2)
    # rows anterior -> posterior: lungs span [-11, 11] mm (y) x [-16, 16] mm (x) at 0.8 mm voxels,
    # plus a 3-voxel margin
    assert set(pipeline.shapes) == {(28 + 6, 40 + 6)}


def test_api_refuses_what_it_cannot_segment(tmp_path):
    with pytest.raises(InputError, match="single 2D slice"):
        segment(np.zeros((32, 32), np.int16), model=ThresholdPipeline(), affine=np.eye(4))
    with pytest.raises(InputError, match="spacing=\\(slice, row, col\\)"):
        segment(np.zeros((4, 32, 32), np.int16), model=ThresholdPipeline())
    with pytest.raises(InputError, match="NaN"):
        segment(np.full((4, 32, 32), np.nan), model=ThresholdPipeline(), spacing=(1, 1, 1))
    columns, shape = GRIDS["lps_flip"]
    _write_nifti(tmp_path / "scans" / "a.nii.gz", columns, shape)
    with pytest.raises(InputError, match="a folder of scans"):
        segment(tmp_path / "scans", model=ThresholdPipeline())


@pytest.mark.parametrize("grid", GRIDS)
def test_segment_sees_the_training_readers_slices(grid, tmp_path):
    """One orientation: segment's display stack is the training reader's slices, and its label
    volumes go back through the same view (``put_slice`` rebuilds the stored array)."""
    from ssinfnet.data import volumes
    from ssinfnet.data.readers import read_nifti_volume
    from ssinfnet.inference.segment import read_scan

    columns, shape = GRIDS[grid]
    path = tmp_path / "scan.nii.gz"
    _write_nifti(path, columns, shape)
    scan = read_scan(path)
    samples = read_nifti_volume(path)
    assert len(samples) == len(scan.stack)
    rebuilt = np.zeros(shape, np.float32)
    for sample, stack_slice in zip(samples, scan.stack):
        np.testing.assert_array_equal(sample.hu, stack_slice)
        volumes.put_slice(rebuilt, sample.hu, sample.meta.geometry)
    np.testing.assert_array_equal(rebuilt, scan.to_input(scan.stack))
