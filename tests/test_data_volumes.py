"""NIfTI and DICOM volumes on generated files: orientation, exact mapping back, HU, spacing, labels."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ssinfnet.data.intensity import Window
from ssinfnet.data.readers import detect_layout, read_dicom_series, read_nifti_volume
from ssinfnet.data.volumes import load_dicom_volume, put_slice
from ssinfnet.errors import InputError

# Affines with different axis orders and directions; codes are what nibabel reports for them.
AFFINES = {
    "RAS": np.diag([0.7, 0.8, 2.5, 1.0]),
    "LAS": np.diag([-0.7, 0.8, 2.5, 1.0]),
    "LPS": np.diag([-0.7, -0.8, 2.5, 1.0]),
    "ARI": np.array([[0, 0.7, 0, 0], [0.8, 0, 0, 0], [0, 0, -2.5, 0], [0, 0, 0, 1.0]]),
    "SPL": np.array([[0, 0, -0.7, 0], [0, -0.8, 0, 0], [2.5, 0, 0, 0], [0, 0, 0, 1.0]]),
}


def _save(array, affine, path):
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_nifti_slices_are_radiological_and_map_back_exactly(tmp_path, name):
    affine = AFFINES[name]
    assert "".join(nib.aff2axcodes(affine)) == name
    shape = (6, 7, 5)
    hu = np.random.default_rng(0).uniform(-1000, 200, shape).astype(np.float32)
    # Marker in the most anterior, most patient-right voxel of every slice: radiological view puts
    # it top-left (anterior up, patient right on the viewer's left).
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    superior_axis = int(np.argmax(np.abs(affine[2, :3])))
    score = world[..., 1] + world[..., 0]  # RAS: anterior is +y, patient right is +x
    for k in range(shape[superior_axis]):
        index = [slice(None)] * 3
        index[superior_axis] = k
        plane_score = score[tuple(index)]
        plane = hu[tuple(index)]
        plane[np.unravel_index(np.argmax(plane_score), plane_score.shape)] = 500.0
    path = _save(hu, affine, tmp_path / "vol.nii.gz")
    samples = read_nifti_volume(path)
    assert len(samples) == shape[superior_axis]
    rebuilt = np.zeros(shape, np.float32)
    for sample in samples:
        assert sample.meta.geometry["axis"] == superior_axis
        assert sample.hu[0, 0] == 500.0
        put_slice(rebuilt, sample.hu, sample.meta.geometry)
    np.testing.assert_array_equal(rebuilt, hu)


def test_nifti_labels_effusion_lung_spacing_and_groups(tmp_path):
    hu = np.full((8, 6, 3), -800.0, np.float32)
    labels = np.zeros((8, 6, 3), np.uint8)
    labels[1:3, 1:3, 0] = 1
    labels[4:6, 2:4, 1] = 2
    labels[6:8, 0:2, 2] = 3  # pleural effusion
    lungs = np.zeros((8, 6, 3), np.uint8)
    lungs[:, :3] = 1
    affine = AFFINES["LAS"]
    image = _save(hu, affine, tmp_path / "case7.nii.gz")
    label = _save(labels, affine, tmp_path / "case7_labels.nii.gz")
    lung = _save(lungs, affine, tmp_path / "case7_lungs.nii.gz")
    samples = read_nifti_volume(image, label, lung_path=lung)
    assert [s.meta.id for s in samples] == ["case7#0", "case7#1", "case7#2"]
    assert {s.meta.group for s in samples} == {"case7"}
    assert [int(s.mask.max()) for s in samples] == [1, 2, 0]  # effusion -> background by default
    assert samples[0].lung.dtype == bool and samples[0].lung.sum() == 8 * 3
    # LAS is transposed for display, so the row spacing is the A axis (0.8) and columns 0.7 mm.
    assert samples[0].meta.spacing == pytest.approx((0.8, 0.7)) and samples[0].meta.slice_thickness == 2.5
    assert samples[0].image.shape == (6, 8) and samples[0].meta.original_size == (6, 8)
    assert samples[2].mask.dtype == np.int64
    as_consolidation = read_nifti_volume(image, label, effusion_to=2)
    assert as_consolidation[2].mask.sum() == 4 * 2


def test_hu_window_is_configurable(tmp_path):
    hu = np.array([-1350.0, -600.0, 150.0, 40.0], np.float32).reshape(2, 2, 1)
    path = _save(hu, np.eye(4), tmp_path / "w.nii")
    lung = read_nifti_volume(path, orientation="array")[0].image
    np.testing.assert_allclose(lung.ravel(), [0.0, 0.5, 1.0, 1390 / 1500], atol=1e-6)
    soft = read_nifti_volume(path, window=Window(level=40, width=400), orientation="array")[0].image
    np.testing.assert_allclose(soft.ravel(), [0.0, 0.0, 310 / 400, 0.5], atol=1e-6)


def _write_ct(path, pixels, z, series_uid, patient="P1", slope=1.0, intercept=-1024.0):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = patient
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.ImagePositionPatient = [-100.0, -120.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.6, 0.7]
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def make_dicom_series(folder, zs=(30.0, 25.0, 27.5), series_uid=None, rows=4, cols=5):
    """Files written in an order that is not the position order; slice k holds 1000 + 10 * rank."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    ranks = {z: r for r, z in enumerate(sorted(zs))}
    for i, z in enumerate(zs):
        pixels = np.full((rows, cols), 1000 + 10 * ranks[z], np.uint16)
        pixels[0, 1] = 2000  # marks the first row (anterior) and second column
        _write_ct(folder / f"{series_uid[-6:]}_{i}.dcm", pixels, z, series_uid, slope=2.0)
    return series_uid


def test_dicom_series_sorted_by_position_in_hu_with_ras_affine(tmp_path):
    folder = tmp_path / "series"
    make_dicom_series(folder)
    (folder / "README.txt").write_text("ignored: not DICOM")
    assert detect_layout(folder) == "dicom"
    samples = read_dicom_series(folder)
    assert len(samples) == 3
    assert [float(s.hu[2, 2]) for s in samples] == [2 * 1000 - 1024, 2 * 1010 - 1024, 2 * 1020 - 1024]
    assert samples[0].hu[0, 1] == 2 * 2000 - 1024  # standard axial DICOM is already radiological
    meta = samples[1].meta
    assert meta.spacing == pytest.approx((0.6, 0.7)) and meta.slice_thickness == pytest.approx(2.5)
    assert meta.group == "P1" and meta.modality == "hu" and meta.geometry["kind"] == "dicom"
    affine = np.array(meta.geometry["affine"])
    # Voxel (row 0, col 0, slice 0) is at LPS (-100, -120, 25) = RAS (100, 120, 25).
    np.testing.assert_allclose(affine @ [0, 0, 0, 1], [100, 120, 25, 1])
    np.testing.assert_allclose(affine @ [1, 1, 1, 1], [100, 120 - 0.6, 25 + 2.5, 1] + np.array([-0.7, 0, 0, 0]))
    assert nib.aff2axcodes(affine) == ("P", "L", "S")


def test_dicom_mixed_series_choose_or_refuse(tmp_path, caplog):
    folder = tmp_path / "mixed"
    big = make_dicom_series(folder, zs=(0.0, 1.0, 2.0))
    small = make_dicom_series(folder, zs=(0.0, 5.0))
    with pytest.raises(InputError) as err:
        read_dicom_series(folder)
    assert "2 DICOM series" in str(err.value) and big in str(err.value) and small in str(err.value)
    assert len(read_dicom_series(folder, series_uid=small)) == 2
    with caplog.at_level(logging.WARNING):
        volume = load_dicom_volume(folder, pick_largest=True)
    assert volume.info["series_uid"] == big and volume.array.shape == (4, 5, 3)
    assert "using the largest" in caplog.text
    with pytest.raises(InputError, match="not in this folder"):
        read_dicom_series(folder, series_uid="1.2.3")


def test_dicom_series_with_a_missing_slice_is_refused_naming_the_gap(tmp_path):
    folder = tmp_path / "gap"
    uid = make_dicom_series(folder, zs=(0.0, 2.5, 5.0, 7.5, 15.0, 17.5, 20.0))  # 10.0 and 12.5 missing
    with pytest.raises(InputError) as err:
        load_dicom_volume(folder)
    message = str(err.value)
    assert message.startswith(f"{folder}: gap in the series, about 2 slice(s) missing: 7.50 mm between slice 4 "
                              f"({uid[-6:]}_3.dcm, at 7.50 mm) and slice 5 of 7 ({uid[-6:]}_4.dcm, at 15.00 mm), "
                              "where the slices are 2.50 mm apart")
    with pytest.raises(InputError, match="gap in the series"):
        read_dicom_series(folder)


def test_dicom_series_unevenly_spaced_is_refused(tmp_path):
    folder = tmp_path / "uneven"
    make_dicom_series(folder, zs=(0.0, 2.5, 5.0, 6.0, 8.5, 9.5))
    with pytest.raises(InputError, match=r"uneven slice spacing: 1.00 mm between slice 3 .* 2.50 mm apart; "
                                         r"1 more uneven step"):
        load_dicom_volume(folder)


def test_dicom_positions_rounded_in_the_header_are_even(tmp_path):
    folder = tmp_path / "rounded"
    make_dicom_series(folder, zs=(0.0, 1.2501, 2.4999, 3.75, 5.0002))  # 1.25 mm, stored to 4 decimals
    volume = load_dicom_volume(folder)
    assert volume.array.shape[2] == 5 and volume.spacing[2] == pytest.approx(1.25, abs=1e-3)
    two = tmp_path / "two"
    make_dicom_series(two, zs=(0.0, 7.0))  # two slices: one step, nothing to compare it with
    assert load_dicom_volume(two).spacing[2] == pytest.approx(7.0)
