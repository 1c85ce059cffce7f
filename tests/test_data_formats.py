"""The one reader registry (``ssinfnet.data.formats``): which reader takes a path, and that no other
module decides formats on its own."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import ssinfnet
from ssinfnet.data import formats
from ssinfnet.data.volumes import Volume
from ssinfnet.errors import InputError
from test_data_volumes import make_dicom_series


def test_reader_for_picks_each_format_and_reads_it(tmp_path):
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), -800, np.int16), np.diag([0.8, 0.8, 2.5, 1])), tmp_path / "ct.nii.gz")
    Image.fromarray(np.full((6, 5), 90, np.uint8)).save(tmp_path / "slice.png")
    make_dicom_series(tmp_path / "series", zs=(0.0, 2.5, 5.0))
    nifti, dicom, image = (formats.reader_for(tmp_path / n) for n in ("ct.nii.gz", "series", "slice.png"))
    assert (nifti, dicom, image) == (formats.NIFTI, formats.DICOM, formats.IMAGE)
    volume = nifti.read(tmp_path / "ct.nii.gz")
    assert isinstance(volume, Volume) and volume.array.shape == (6, 5, 4) and nifti.slice_count(tmp_path / "ct.nii.gz") == 4
    series = dicom.read(tmp_path / "series")
    assert series.array.shape == (4, 5, 3) and series.info["patient_id"] == "P1"
    picture = formats.read(tmp_path / "slice.png")
    assert isinstance(picture, formats.Picture) and picture.modality == "8bit" and picture.array.shape == (6, 5)
    assert formats.list_scans(tmp_path) == [tmp_path / "ct.nii.gz", tmp_path / "series", tmp_path / "slice.png"]


def test_list_scans_visits_each_real_folder_once(tmp_path):
    """Symlinked folders are followed once: a link elsewhere is listed, a second link to the same
    folder and links back up the tree (loops) are not."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    for path in (root / "ct.nii.gz", root / "sub" / "ct2.nii.gz", elsewhere / "other.nii.gz"):
        nib.save(nib.Nifti1Image(np.full((6, 5, 4), -800, np.int16), np.diag([0.8, 0.8, 2.5, 1])), path)
    (root / "away").symlink_to(elsewhere, target_is_directory=True)
    (root / "away2").symlink_to(elsewhere, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "sub" / "up").symlink_to(root, target_is_directory=True)
    assert formats.list_scans(root) == [root / "away" / "other.nii.gz", root / "ct.nii.gz", root / "sub" / "ct2.nii.gz"]


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "nope.nii.gz", "not found"),
    (lambda d: (d / "empty").mkdir() or d / "empty", formats.NO_SCANS),
    (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", formats.UNSUPPORTED),
    (lambda d: make_dicom_series(d / "s", zs=(0.0, 1.0)) and sorted((d / "s").iterdir())[0],
     "a single DICOM file; give the folder that holds the whole series"),
])
def test_reader_for_refuses_with_one_message(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError) as err:
        formats.reader_for(path)
    assert str(err.value) == f"{path}: {message}"


def test_no_module_outside_the_registry_tests_formats():
    """Suffix and DICOM-marker tests are called only by ``data/formats.py`` (and defined in the
    modules that read each format), so every caller goes through one list of readers."""
    root = Path(ssinfnet.__file__).parent
    allowed = {root / "data" / "formats.py", root / "data" / "volumes.py", root / "data" / "imageio.py"}
    tests = re.compile(r"\b(is_nifti_file|is_image_file|is_dicom_file|looks_like_dicom|holds_dicom)\(")
    callers = [f"{path.relative_to(root)}:{n}" for path in sorted(root.rglob("*.py")) if path not in allowed
               for n, line in enumerate(path.read_text().splitlines(), 1) if tests.search(line)]
    assert callers == []
