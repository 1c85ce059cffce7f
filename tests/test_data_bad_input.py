"""Bad input: every case raises InputError with one line naming the file and the problem, and the
CLI turns it into exit code 2 with that one line on stderr and no traceback."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ssinfnet.cli import main
from ssinfnet.data import imageio
from ssinfnet.data.imageio import read_image_2d, read_mask_2d
from ssinfnet.data.readers import (
    detect_layout,
    iter_unlabeled,
    read_dicom_series,
    read_manifest,
    read_nifti_volume,
    read_paired_folder,
)
from ssinfnet.errors import InputError

from test_data_volumes import make_dicom_series


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _grey(rows=16, cols=16) -> np.ndarray:
    return np.arange(rows * cols, dtype=np.uint8).reshape(rows, cols)


def _paired(root: Path, image: np.ndarray, mask: np.ndarray | None, name="a") -> Path:
    _png(root / "images" / f"{name}.png", image)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    if mask is not None:
        _png(root / "masks" / f"{name}.png", mask)
    return root


def _nifti(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    return path


# Each case makes its bad input and returns (reader call, offending file, fragment of the message,
# path and extra arguments for `ssinfnet data validate`).
Case = tuple[Callable[[], object], Path, str, list[str]]


def missing_file(tmp: Path) -> Case:
    path = tmp / "nope.png"
    return lambda: read_image_2d(path), path, "not found", [str(path)]


def folder_instead_of_file(tmp: Path) -> Case:
    folder = tmp / "scan.png"
    folder.mkdir()
    return lambda: read_image_2d(folder), folder, "is a folder", []


def empty_file(tmp: Path) -> Case:
    path = tmp / "pool" / "empty.png"
    path.parent.mkdir()
    path.write_bytes(b"")
    return lambda: read_image_2d(path), path, "empty file", [str(tmp / "pool")]


def non_image_file(tmp: Path) -> Case:
    path = tmp / "pool" / "notes.jpg"
    path.parent.mkdir()
    path.write_text("these are notes, not a JPEG")
    return lambda: read_image_2d(path), path, "not an image", [str(tmp / "pool")]


def truncated_image(tmp: Path) -> Case:
    root = _paired(tmp / "set", _grey(64, 64) * 3, np.zeros((64, 64), np.uint8))
    path = root / "images" / "a.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return lambda: read_image_2d(path), path, "truncated", [str(root)]


def zero_size_image(tmp: Path) -> Case:
    path = tmp / "pool" / "zero.png"
    path.parent.mkdir()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return lambda: read_image_2d(path), path, "zero-size", [str(tmp / "pool")]


def multi_frame_tiff(tmp: Path) -> Case:
    path = tmp / "pool" / "stack.tif"
    path.parent.mkdir()
    frames = [Image.fromarray(_grey()) for _ in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return lambda: read_image_2d(path), path, "3 frames", [str(tmp / "pool")]


def size_mismatch(tmp: Path) -> Case:
    root = _paired(tmp / "set", _grey(16, 16), np.zeros((16, 12), np.uint8))
    return lambda: read_paired_folder(root), root / "masks" / "a.png", "differs from image size", [str(root)]


def unexpected_label_values(tmp: Path) -> Case:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 7
    root = _paired(tmp / "set", _grey(), mask)
    path = root / "masks" / "a.png"
    return lambda: read_mask_2d(path), path, "unexpected label values [0, 7]", [str(root)]


def colour_mask(tmp: Path) -> Case:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[2:5, 2:5] = (255, 0, 0)
    root = _paired(tmp / "set", _grey(), rgb)
    path = root / "masks" / "a.png"
    return lambda: read_mask_2d(path), path, "colour mask", [str(root)]


def missing_mask(tmp: Path) -> Case:
    root = _paired(tmp / "set", _grey(), np.zeros((16, 16), np.uint8))
    _paired(root, _grey(), None, name="b")
    return lambda: read_paired_folder(root), root / "images" / "b.png", "no mask with this name", [str(root)]


def mask_without_image(tmp: Path) -> Case:
    root = _paired(tmp / "set", _grey(), np.zeros((16, 16), np.uint8))
    _png(root / "masks" / "z.png", np.zeros((16, 16), np.uint8))
    return lambda: read_paired_folder(root), root / "masks" / "z.png", "no image with the same name", [str(root)]


def empty_folder(tmp: Path) -> Case:
    folder = tmp / "empty"
    folder.mkdir()
    return lambda: list(iter_unlabeled(folder)), folder, "no image files", [str(folder)]


def paired_folder_without_masks(tmp: Path) -> Case:
    root = tmp / "set"
    _png(root / "images" / "a.png", _grey())
    return lambda: read_paired_folder(root), root, "expected sub-folders", []


def nan_in_nifti(tmp: Path) -> Case:
    volume = np.zeros((4, 4, 2), np.float32)
    volume[1, 1, 1] = np.nan
    volume[2, 2, 0] = np.inf
    path = _nifti(tmp / "nan.nii.gz", volume)
    return lambda: read_nifti_volume(path), path, "2 NaN/inf voxels", [str(path)]


def four_d_nifti(tmp: Path) -> Case:
    path = _nifti(tmp / "series.nii.gz", np.zeros((4, 4, 2, 3), np.float32))
    return lambda: read_nifti_volume(path), path, "4 dimensions", [str(path)]


def label_volume_with_unknown_values(tmp: Path) -> Case:
    image = _nifti(tmp / "ct.nii.gz", np.zeros((4, 4, 2), np.float32))
    labels = np.zeros((4, 4, 2), np.float32)
    labels[0, 0, 0] = 5
    path = _nifti(tmp / "labels.nii.gz", labels)
    return lambda: read_nifti_volume(image, path), path, "unexpected label values [5", []


def label_volume_shape_mismatch(tmp: Path) -> Case:
    image = _nifti(tmp / "ct.nii.gz", np.zeros((4, 4, 2), np.float32))
    path = _nifti(tmp / "labels.nii.gz", np.zeros((4, 4, 3), np.uint8))
    return lambda: read_nifti_volume(image, path), path, "differs from image volume", []


def truncated_nifti(tmp: Path) -> Case:
    path = _nifti(tmp / "cut.nii.gz", np.random.default_rng(0).normal(size=(32, 32, 8)).astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return lambda: read_nifti_volume(path), path, "NIfTI", [str(path)]


def fake_nifti(tmp: Path) -> Case:
    path = tmp / "fake.nii"
    path.write_text("hello")
    return lambda: read_nifti_volume(path), path, "not a readable NIfTI", [str(path)]


def dicom_mixed_series(tmp: Path) -> Case:
    folder = tmp / "dicom"
    make_dicom_series(folder, zs=(0.0, 1.0))
    make_dicom_series(folder, zs=(0.0, 2.0))
    return lambda: read_dicom_series(folder), folder, "2 DICOM series mixed", [str(folder)]


def dicom_folder_without_images(tmp: Path) -> Case:
    folder = tmp / "dicom"
    folder.mkdir()
    (folder / "DICOMDIR.txt").write_text("index only")
    return lambda: read_dicom_series(folder), folder, "no DICOM images", []


def manifest_without_file_column(tmp: Path) -> Case:
    root = tmp / "pool"
    _png(root / "a.png", _grey())
    (root / "manifest.csv").write_text("name,covid_label\na.png,COVID\n")
    path = root / "manifest.csv"
    return lambda: read_manifest(path), path, "'file' column", [str(root)]


def manifest_lists_missing_file(tmp: Path) -> Case:
    root = tmp / "pool"
    _png(root / "a.png", _grey())
    (root / "manifest.csv").write_text("file,covid_label\na.png,COVID\ngone.png,NonCOVID\n")
    return lambda: None, root / "gone.png", "listed in manifest.csv but missing", [str(root)]


def unreadable_file(tmp: Path, monkeypatch) -> Case:
    path = _png(tmp / "pool" / "locked.png", _grey())
    # Tests may run as root, who can read anything: simulate the permission check failing.
    real_access = imageio.os.access
    monkeypatch.setattr(imageio.os, "access", lambda p, *a, **k: Path(p) != path and real_access(p, *a, **k))
    return lambda: read_image_2d(path), path, "permission denied", [str(tmp / "pool")]


def unsupported_file_type(tmp: Path) -> Case:
    path = tmp / "table.xlsx"
    path.write_bytes(b"PK\x03\x04 not a scan")
    return lambda: detect_layout(path), path, "unsupported file type", [str(path)]


CASES = [missing_file, folder_instead_of_file, empty_file, non_image_file, truncated_image, zero_size_image,
         multi_frame_tiff, size_mismatch, unexpected_label_values, colour_mask, missing_mask,
         mask_without_image, empty_folder, paired_folder_without_masks, nan_in_nifti, four_d_nifti,
         label_volume_with_unknown_values, label_volume_shape_mismatch, truncated_nifti, fake_nifti,
         dicom_mixed_series, dicom_folder_without_images, manifest_without_file_column,
         manifest_lists_missing_file, unreadable_file, unsupported_file_type]


def _make(case, tmp_path, monkeypatch) -> Case:
    return case(tmp_path, monkeypatch) if case is unreadable_file else case(tmp_path)


# A manifest naming a missing file is a finding of `data validate` (below), not a reader error.
READER_CASES = [c for c in CASES if c is not manifest_lists_missing_file]


@pytest.mark.parametrize("case", READER_CASES, ids=[c.__name__ for c in READER_CASES])
def test_reader_raises_one_line_error_naming_file(case, tmp_path, monkeypatch):
    read, offending, fragment, _ = _make(case, tmp_path, monkeypatch)
    with pytest.raises(InputError) as err:
        read()
    message = str(err.value)
    assert "\n" not in message
    assert str(offending) in message and fragment in message


# Cases whose reader call needs arguments `data validate` does not take (a label volume, a folder
# named like a file) are covered by the reader test only.
READER_ONLY = (folder_instead_of_file, label_volume_with_unknown_values, label_volume_shape_mismatch,
               paired_folder_without_masks, dicom_folder_without_images)
CLI_CASES = [c for c in CASES if c not in READER_ONLY]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.__name__ for c in CLI_CASES])
def test_cli_validate_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    _, offending, fragment, argv = _make(case, tmp_path, monkeypatch)
    assert main(["data", "validate", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert str(offending) in err[0] and fragment in err[0]


def test_cli_debug_shows_the_traceback(tmp_path):
    with pytest.raises(InputError):
        main(["--debug", "data", "validate", str(tmp_path / "missing")])


def test_4d_nifti_with_single_last_dimension_is_a_volume(tmp_path):
    path = _nifti(tmp_path / "v.nii.gz", np.full((4, 5, 3, 1), -700.0, np.float32))
    assert len(read_nifti_volume(path)) == 3
