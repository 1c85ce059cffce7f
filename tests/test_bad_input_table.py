"""The bad-input table of issue 13 for the data and inference stages, grouped by verb.

Each case makes one bad input, runs the verb through ``ssinfnet.cli.main`` and checks what a user
sees: exit code 2, exactly one line on stderr that names the file or option and the problem, no
traceback, and no output (or temporary) left behind.
"""

from __future__ import annotations

import errno
import gzip
import os
import struct
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from ssinfnet import fileio
from ssinfnet.cli import main
from ssinfnet.errors import InputError
from test_data_volumes import _write_ct, make_dicom_series
from test_segment_phantom import ThresholdPipeline, centred_affine, chest_on_grid


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------- bad files

def dicom_gap(tmp: Path) -> tuple[Path, str]:
    """Slice at 7.5 mm missing from a 2.5 mm series."""
    folder = tmp / "series"
    make_dicom_series(folder, zs=(0.0, 2.5, 5.0, 10.0, 12.5))
    return folder, "gap in the series, about 1 slice(s) missing: 5.00 mm between slice 3"


def _five_slices(tmp: Path) -> Path:
    folder = tmp / "series"
    make_dicom_series(folder, zs=(0.0, 2.5, 5.0, 7.5, 10.0))
    return folder


def dicom_empty_slice(tmp: Path) -> tuple[Path, str]:
    """One slice of five is 0 bytes: named, not reported as a gap between its neighbours."""
    broken = sorted(_five_slices(tmp).iterdir())[2]
    broken.write_bytes(b"")
    return broken.parent, f"{broken}: empty file (0 bytes); expected a slice of this series"


def dicom_garbage_slice(tmp: Path) -> tuple[Path, str]:
    broken = sorted(_five_slices(tmp).iterdir())[3]
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return broken.parent, f"{broken}: not a DICOM file (3000 bytes without the DICM marker)"


def dicom_other_pixel_spacing(tmp: Path) -> tuple[Path, str]:
    import pydicom

    odd = sorted(_five_slices(tmp).iterdir())[1]
    ds = pydicom.dcmread(odd)
    ds.PixelSpacing = [0.6, 0.8]
    ds.save_as(odd)
    return odd.parent, f"{odd}: PixelSpacing (0.6, 0.8) differs from the rest of the series ((0.6, 0.7), 4 slice(s))"


def dicom_other_slice_size(tmp: Path) -> tuple[Path, str]:
    folder = _five_slices(tmp)
    uid = _series_uid(folder)
    odd = folder / "odd.dcm"
    _write_ct(odd, np.full((5, 5), 1000, np.uint16), 12.5, uid)
    return folder, f"{odd}: Rows x Columns (5, 5) differs from the rest of the series ((4, 5), 5 slice(s))"


def _series_uid(folder: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(sorted(folder.iterdir())[0]).SeriesInstanceUID)


def nifti_voxel_size_0(tmp: Path) -> tuple[Path, str]:
    image = nib.Nifti1Image(np.full((8, 8, 4), -800, np.int16), np.eye(4))
    image.header.set_zooms((0.0, 0.8, 2.5))
    nib.save(image, tmp / "zero.nii.gz")
    return tmp / "zero.nii.gz", "voxel size (pixdim) (0.0, 0.8, 2.5)"


def nifti_sform_voxel_size_0(tmp: Path) -> tuple[Path, str]:
    image = nib.Nifti1Image(np.full((8, 8, 4), -800, np.int16), None)
    image.header.set_sform(np.diag([0.0, 0.8, 2.5, 1.0]), code=1)
    nib.save(image, tmp / "sform0.nii.gz")
    return tmp / "sform0.nii.gz", "affine is singular"


def nifti_label_values_0_to_7(tmp: Path) -> tuple[Path, str]:
    labels = np.zeros((8, 8, 4), np.uint8)
    labels.flat[:8] = np.arange(8)
    nib.save(nib.Nifti1Image(labels, np.diag([0.8, 0.8, 2.5, 1])), tmp / "labels.nii.gz")
    return tmp / "labels.nii.gz", "label"  # validate: "unexpected label values [4, 5, 6, 7]"; segment: "a label map"


def _huge_header() -> bytes:
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header.set_data_shape((30000, 30000, 30000))
    return image.header.binaryblock + b"\0" * 36


def nifti_huge_header(tmp: Path) -> tuple[Path, str]:
    (tmp / "huge.nii").write_bytes(_huge_header())
    return tmp / "huge.nii", "decompression bomb"


def nifti_gz_huge_header(tmp: Path) -> tuple[Path, str]:
    (tmp / "huge.nii.gz").write_bytes(gzip.compress(_huge_header()))
    return tmp / "huge.nii.gz", "decompression bomb"


def nifti_gz_bomb_under_the_voxel_cap(tmp: Path) -> tuple[Path, str]:
    """512^3 float32 voxels (0.5 GiB) promised by a file of a few hundred bytes."""
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header.set_data_shape((512, 512, 512))
    (tmp / "bomb.nii.gz").write_bytes(gzip.compress(image.header.binaryblock + b"\0" * 4 + b"\0" * 4096))
    return tmp / "bomb.nii.gz", "more than"


def nifti_truncated(tmp: Path) -> tuple[Path, str]:
    path = tmp / "cut.nii"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(32, 32, 8)).astype(np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:20000])
    return path, "truncated NIfTI"


def nifti_gz_truncated(tmp: Path) -> tuple[Path, str]:
    path = tmp / "cut.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(32, 32, 8)).astype(np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:5000])
    return path, "truncated"


def nifti_header_only_half(tmp: Path) -> tuple[Path, str]:
    path = tmp / "head.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:200])
    return path, "not a readable NIfTI"


def _png_header_only(path: Path, rows: int, cols: int) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def png_decompression_bomb(tmp: Path) -> tuple[Path, str]:
    return _png_header_only(tmp / "bomb.png", 100000, 100000), "decompression bomb"


def png_over_the_pil_limit(tmp: Path) -> tuple[Path, str]:
    """10^8 pixels: PIL only warns (to stderr) below twice its limit."""
    return _png_header_only(tmp / "big.png", 10000, 10000), "decompression bomb"


def dicom_without_air(tmp: Path) -> tuple[Path, str]:
    """Stored values of 976..2976 HU: raw scanner values, not a CT in HU."""
    make_dicom_series(tmp / "raw", zs=(0.0, 2.5, 5.0))
    return tmp / "raw", "neither 8-bit nor Hounsfield units"


def dicom_single_file(tmp: Path) -> tuple[Path, str]:
    make_dicom_series(tmp / "series", zs=(0.0, 2.5, 5.0))
    return sorted((tmp / "series").iterdir())[0], "a single DICOM file; give the folder"


def nifti_single_slice(tmp: Path) -> tuple[Path, str]:
    nib.save(nib.Nifti1Image(np.full((16, 16), -800, np.int16), np.diag([0.8, 0.8, 2.5, 1])), tmp / "slice.nii.gz")
    return tmp / "slice.nii.gz", "holds a single 2D slice"


def nifti_oblique(tmp: Path) -> tuple[Path, str]:
    t = np.radians(45)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]]) @ np.diag([0.8, 0.8, 2.5])
    nib.save(nib.Nifti1Image(np.full((16, 16, 4), -800, np.int16), affine), tmp / "oblique.nii.gz")
    return tmp / "oblique.nii.gz", "oblique scan: slices are tilted 45 degrees"


def nifti_raw_values(tmp: Path) -> tuple[Path, str]:
    nib.save(nib.Nifti1Image(np.arange(16 * 16 * 4, dtype=np.int16).reshape(16, 16, 4) + 24, np.diag([0.8, 0.8, 2.5, 1])),
             tmp / "raw.nii.gz")
    return tmp / "raw.nii.gz", "neither 8-bit nor Hounsfield units"


def nifti_nan(tmp: Path) -> tuple[Path, str]:
    data = np.full((16, 16, 4), -800, np.float32)
    data[2, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1])), tmp / "nan.nii.gz")
    return tmp / "nan.nii.gz", "NIfTI contains 1 NaN/inf voxels"


def nifti_constant(tmp: Path) -> tuple[Path, str]:
    """-1000 everywhere: an empty export, no contrast to segment."""
    nib.save(nib.Nifti1Image(np.full((16, 16, 4), -1000, np.int16), np.diag([0.8, 0.8, 2.5, 1])), tmp / "air.nii.gz")
    return tmp / "air.nii.gz", "holds one value only (-1000): no contrast, not a CT image"


def nifti_scaled_1e30(tmp: Path) -> tuple[Path, str]:
    """A chest times 1e30 (a broken scale slope): segment used to call it a scan without lung."""
    path = _chest(tmp / "chest.nii.gz")
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj, np.float32) * 1e30, image.affine), tmp / "scaled.nii.gz")
    return tmp / "scaled.nii.gz", "values -1e+33..2e+32 lie far outside any CT range"


def png_truncated(tmp: Path) -> tuple[Path, str]:
    path = tmp / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:1500])
    return path, "corrupt or truncated image"


def unsupported_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "scan.txt").write_text("not a scan")
    return tmp / "scan.txt", "unsupported file type"


BAD_FILES = [dicom_gap, dicom_empty_slice, dicom_garbage_slice, dicom_other_pixel_spacing, dicom_other_slice_size,
             nifti_constant, nifti_scaled_1e30, nifti_voxel_size_0, nifti_sform_voxel_size_0, nifti_label_values_0_to_7, nifti_huge_header, nifti_gz_huge_header,
             nifti_gz_bomb_under_the_voxel_cap, nifti_truncated, nifti_gz_truncated, nifti_header_only_half,
             png_decompression_bomb, png_over_the_pil_limit, dicom_without_air, dicom_single_file, nifti_single_slice,
             nifti_oblique, nifti_raw_values, nifti_nan, png_truncated, unsupported_file]


def dicom_ct(tmp: Path) -> Path:
    """A small CT series in HU with air (stored 0 = -1024 HU)."""
    (tmp / "ct").mkdir()
    pixels = np.full((16, 16), 1024 + 40, np.uint16)
    pixels[4:12, 3:7] = pixels[4:12, 9:13] = 200
    pixels[0] = 0
    for k, z in enumerate((0.0, 2.5, 5.0)):
        _write_ct(tmp / "ct" / f"{k}.dcm", pixels, z, "1.2.826.0.1.3680043.8.498.1")
    return tmp / "ct"


GOOD_FILES = {
    "nifti chest": lambda tmp: _chest(tmp / "chest.nii.gz"),
    "dicom series": dicom_ct,
    "png slice": lambda tmp: Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp / "slice.png") or tmp / "slice.png",
}


# ----------------------------------------------------------------------------- data validate

@pytest.mark.parametrize("case", BAD_FILES, ids=[c.__name__ for c in BAD_FILES])
def test_validate_refuses_with_one_line(case, tmp_path, capsys):
    path, fragment = case(tmp_path)
    assert main(["data", "validate", str(path)]) == 2
    line = _error_line(capsys)
    assert str(path) in line and fragment in line, line


def test_validate_json_onto_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "pool").mkdir()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "pool" / "a.png")
    (tmp_path / "report.json").mkdir()
    assert main(["data", "validate", str(tmp_path / "pool"), "--json", str(tmp_path / "report.json")]) == 2
    line = _error_line(capsys)
    assert f"{tmp_path / 'report.json'}: is a folder; expected a file" in line
    assert list((tmp_path / "report.json").iterdir()) == []


def test_validate_json_into_a_folder_it_may_not_write_names_the_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "pool").mkdir()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "pool" / "a.png")

    def denied(*args, dir=None, **kwargs):  # mkstemp names its temporary, not the file asked for
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / ".report.json.h-pid1.x.tmp"))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    out = tmp_path / "report.json"
    assert main(["data", "validate", str(tmp_path / "pool"), "--json", str(out)]) == 2
    assert _error_line(capsys) == f"ssinfnet: error: {out}: permission denied"


def test_validate_json_on_a_full_disk_names_the_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "pool").mkdir()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "pool" / "a.png")

    def full(self, data):  # write() on a full disk: an OSError that names no file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "out" / "report.json"
    assert main(["data", "validate", str(tmp_path / "pool"), "--json", str(out)]) == 2
    assert _error_line(capsys) == f"ssinfnet: error: {out}: cannot write: no space left on device"
    assert _leftovers(tmp_path / "out") == []


def test_validate_prints_no_stray_nibabel_lines(tmp_path):
    """nibabel logs its header fix-ups (here a negative voxel size made positive) to the stderr it
    found at import; nothing but the report shows (a subprocess: pytest's capture hides that stream)."""
    import subprocess

    path = tmp_path / "negative.nii"
    nib.save(nib.Nifti1Image(np.arange(-1000, -744, dtype=np.int16).reshape(8, 8, 4), np.diag([0.8, 0.8, 2.5, 1])), path)
    data = bytearray(path.read_bytes())
    data[80:84] = struct.pack("<f", -0.8)  # pixdim[1]
    path.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "ssinfnet", "data", "validate", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "problems: 0" in proc.stdout
    assert proc.stderr == ""


def _validate_problem(path: Path) -> str | None:
    from ssinfnet.data.validate import validate_path

    try:
        problems = validate_path(path)["problems"]
    except InputError as err:
        return str(err)
    return problems[0] if problems else None


def _segment_problem(path: Path) -> str | None:
    from ssinfnet.inference.segment import read_scan

    try:
        read_scan(path)
    except InputError as err:
        return str(err)
    return None


@pytest.mark.parametrize("case", BAD_FILES, ids=[c.__name__ for c in BAD_FILES])
def test_validate_and_segment_refuse_with_the_same_message(case, tmp_path):
    """One reader registry and one scan check: the same problem line, except that validate checks a
    volume of small integers as labels (its values), where segment says it is a label map."""
    path, fragment = case(tmp_path)
    problem, refusal = _validate_problem(path), _segment_problem(path)
    assert problem is not None and refusal is not None
    if case is not nifti_label_values_0_to_7:
        assert problem == refusal and fragment in problem


@pytest.mark.parametrize("case", GOOD_FILES)
def test_validate_and_segment_accept_the_same_inputs(case, tmp_path):
    path = GOOD_FILES[case](tmp_path)
    assert _validate_problem(path) is None and _segment_problem(path) is None


def test_8bit_volume_is_display_values_to_validate_and_segment(tmp_path):
    """A uint8 0..255 NIfTI (a display export) is "8bit", not HU, to both verbs."""
    from ssinfnet.data.validate import format_report, validate_path
    from ssinfnet.inference.segment import read_scan

    path = tmp_path / "display.nii.gz"
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 4)).astype(np.uint8)
    nib.save(nib.Nifti1Image(pixels, np.diag([0.8, 0.8, 2.5, 1])), path)
    report = validate_path(path)
    assert report["problems"] == [] and report["splits"]["volume"]["modes"] == {"8bit": 4}
    assert "stored values: 0 .. 255" in format_report(report)  # not "(HU)"
    assert read_scan(path).modality == "8bit"


def test_all_zero_volume_is_an_empty_label_map_to_validate_and_no_scan_to_segment(tmp_path):
    """All zeros is what the labels of a scan without lesions hold, so validate checks it as labels;
    segment refuses it as an image without contrast."""
    from ssinfnet.data.validate import validate_path

    path = tmp_path / "zeros.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 4), np.int16), np.diag([0.8, 0.8, 2.5, 1])), path)
    report = validate_path(path)
    assert report["layout"] == "nifti-labels" and report["problems"] == []
    assert _segment_problem(path) == f"{path}: holds one value only (0): no contrast, not a CT image"


def test_validate_manifest_of_random_bytes_is_refused(tmp_path, capsys):
    root = tmp_path / "pool"
    root.mkdir()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(root / "a.png")
    (root / "manifest.csv").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    assert main(["data", "validate", str(root)]) == 2
    line = _error_line(capsys)
    assert str(root / "manifest.csv") in line and "not a text CSV table: binary data" in line


# ----------------------------------------------------------------------------- segment

@pytest.fixture
def stand_in_model(monkeypatch):
    """The HU-threshold stand-in instead of a network; records whether segment got as far as the model."""
    from ssinfnet.inference import segment

    calls = []
    monkeypatch.setattr(segment, "resolve_pipeline", lambda *a, **k: calls.append(a) or ThresholdPipeline())
    return calls


def _segment(inputs, out: Path, *extra: str) -> int:
    return main(["segment", *map(str, inputs), "--out", str(out), "--no-progress", *extra])


def _chest(path: Path) -> Path:
    shape = (48, 40, 6)
    affine = centred_affine(np.diag([-0.8, -0.8, 2.5]), shape)
    nib.save(nib.Nifti1Image(chest_on_grid(affine, shape), affine), path)
    return path


@pytest.mark.parametrize("case", BAD_FILES, ids=[c.__name__ for c in BAD_FILES])
def test_segment_refuses_with_one_line_and_writes_nothing(case, tmp_path, capsys, stand_in_model):
    path, fragment = case(tmp_path)
    assert _segment([path], tmp_path / "out") == 2
    line = _error_line(capsys)
    assert str(path) in line and fragment in line, line
    assert _leftovers(tmp_path / "out") == []


def test_segment_reads_every_input_before_writing_anything(tmp_path, capsys, stand_in_model):
    """A folder of 4 slices, the third truncated: one line naming it, no scan folder, no summary.csv
    (before: 3 folders and summary.csv, then the error), and the model is never loaded."""
    folder = tmp_path / "slices"
    folder.mkdir()
    for k in range(4):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(folder / f"s{k}.png")
    cut = png_truncated(tmp_path)[0].rename(folder / "s2.png")
    assert _segment([folder], tmp_path / "out") == 2
    assert _error_line(capsys) == f"ssinfnet: error: {cut}: corrupt or truncated image: image file is truncated"
    assert stand_in_model == [] and _leftovers(tmp_path / "out") == []


def test_segment_failing_after_reading_lists_only_whole_scan_folders(tmp_path, capsys, stand_in_model, monkeypatch):
    """A scan the model refuses after the others were written: its folder is absent, the whole folders
    of the others are in summary.csv."""
    from ssinfnet.inference import segment

    real = segment.segment
    monkeypatch.setattr(segment, "segment", lambda scan, **kw: real(scan, **kw) if scan.name != "b" else
                        (_ for _ in ()).throw(InputError("image 0: values must be finite and in [0, 1]")))
    for name in ("a", "b", "c"):
        _chest(tmp_path / f"{name}.nii.gz")
    out = tmp_path / "out"
    assert _segment([tmp_path / f"{n}.nii.gz" for n in "abc"], out) == 2
    assert f"{tmp_path / 'b.nii.gz'}: image 0: values must be finite" in _error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["a", "summary.csv"]
    assert [row.split(",")[0] for row in (out / "summary.csv").read_text().splitlines()] == ["scan", "a"]


def test_segment_refuses_a_non_utf8_file_name_before_any_work(tmp_path, capsys, stand_in_model):
    name = os.fsdecode(b"scan\xff.nii.gz")
    _chest(tmp_path / name)
    assert _segment([tmp_path], tmp_path / "out") == 2
    line = _error_line(capsys)
    assert "scan\\xff.nii.gz: file name is not valid UTF-8" in line
    assert stand_in_model == [] and _leftovers(tmp_path / "out") == []


def test_segment_out_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, stand_in_model):
    scan = _chest(tmp_path / "chest.nii.gz")
    (tmp_path / "out").write_text("a file")
    assert _segment([scan], tmp_path / "out") == 2
    assert f"{tmp_path / 'out'}: --out is a file" in _error_line(capsys)
    assert stand_in_model == []


def test_segment_read_only_out_is_refused_before_any_work(tmp_path, capsys, stand_in_model, monkeypatch):
    scan = _chest(tmp_path / "chest.nii.gz")

    def read_only(*args, **kwargs):  # what mkdir meets on a read-only mount (root included)
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".probe"))

    monkeypatch.setattr(fileio.tempfile, "mkdtemp", read_only)
    assert _segment([scan], tmp_path / "out") == 2
    assert _error_line(capsys) == f"ssinfnet: error: {tmp_path / 'out'}: cannot write: read-only file system"
    assert stand_in_model == [] and not (tmp_path / "out").exists()


def test_segment_on_a_full_disk_names_the_folder_and_leaves_nothing(tmp_path, capsys, stand_in_model, monkeypatch):
    from ssinfnet.inference import outputs

    scan = _chest(tmp_path / "chest.nii.gz")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.nib, "save", full)
    assert _segment([scan], tmp_path / "out") == 2
    assert _error_line(capsys) == f"ssinfnet: error: {tmp_path / 'out' / 'chest'}: cannot write: no space left on device"
    assert _leftovers(tmp_path / "out") == []


def test_segment_names_the_scan_when_an_error_names_no_file(tmp_path, capsys, stand_in_model, monkeypatch):
    """The model refuses an image by its index ("image 0"): the line names the scan instead."""
    from ssinfnet.inference import segment

    def refusing(*args, **kwargs):
        raise InputError("image 0: values must be finite and in [0, 1]")

    monkeypatch.setattr(segment, "segment", refusing)
    scan = _chest(tmp_path / "chest.nii.gz")
    assert _segment([scan], tmp_path / "out") == 2
    assert f"{scan}: image 0: values must be finite" in _error_line(capsys)
    assert _leftovers(tmp_path / "out") == []


def test_segment_segments_each_scan_once_in_a_folder_with_symlink_loops(tmp_path, stand_in_model):
    """``loop -> ..`` used to be followed as loop/loop/... (ct, ct-1 ... ct-15)."""
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    _chest(scans / "ct.nii.gz")
    (scans / "loop").symlink_to(scans, target_is_directory=True)
    (scans / "sub" / "up").symlink_to(scans, target_is_directory=True)
    (scans / "self").symlink_to(scans / "self")  # a link to itself: no folder at all
    out = tmp_path / "out"
    assert _segment([scans], out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ct", "summary.csv"]


def test_segment_cleans_what_a_killed_run_left(tmp_path, capsys, stand_in_model):
    """A SIGKILLed run leaves its temporary folder; the next run removes it, and phenotypes never
    counts it as a scan."""
    from ssinfnet.analysis.scans import find_scans

    scan = _chest(tmp_path / "chest.nii.gz")
    out = tmp_path / "out"
    assert _segment([scan], out) == 0
    dead = 2**22 + 12345  # above the default pid_max: no process has it
    stale = out / f".chest.{fileio._host()}-pid{dead}.abcd1234.tmp"
    stale.mkdir()
    for name in ("labels.nii.gz", "lung.nii.gz"):
        (stale / name).write_bytes((out / "chest" / name).read_bytes())
    assert [s.scan_id for s in find_scans([out])] == ["chest"]
    capsys.readouterr()
    assert _segment([scan], out, "--overwrite") == 0
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["chest", "summary.csv"]


# ----------------------------------------------------------------------------- every verb

OPTION_CASES = {
    "evaluate --threshold 1.5": (["evaluate", "--threshold", "1.5"], "--threshold must be a probability threshold in 0..1, got 1.5"),
    "evaluate --threshold nan": (["evaluate", "--threshold", "nan"], "--threshold must be a finite number, got nan"),
    "evaluate --gallery -3": (["evaluate", "--gallery", "-3"], "--gallery must be 0 or more, got -3"),
    "evaluate --batch-size 0": (["evaluate", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    "segment --batch-size 0": (["segment", "x.nii.gz", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    "segment --spacing inf": (["segment", "x.png", "--spacing", "inf", "1"], "--spacing must be a finite number"),
    "segment --spacing 0": (["segment", "x.png", "--spacing", "0", "1"], "--spacing must be positive (mm), got 0 1"),
    "models --width 0": (["models", "--width", "0"], "--width must be at least 1, got 0"),
}


@pytest.mark.parametrize("case", OPTION_CASES)
def test_option_out_of_range_is_refused_before_any_work(case, tmp_path, capsys):
    argv, message = OPTION_CASES[case]
    out = tmp_path / "out"
    where = {"evaluate": ["--data", str(tmp_path), "--single", str(tmp_path), "--out", str(out)],
             "segment": ["--out", str(out)], "models": []}[argv[0]]
    assert main([*argv, *where]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


OUT_UNDER_A_FILE = {
    "evaluate": ["evaluate", "--data", "missing", "--single", "missing", "--out", "{out}"],
    "export": ["export", "--single", "missing", "--out", "{out}"],
    "compare": ["compare", "missing", "missing", "--out", "{out}"],
    "crossval": ["crossval", "missing", "--out", "{out}"],
    "validate --json": ["data", "validate", "missing", "--json", "{out}"],
    "segment": ["segment", "missing", "--out", "{out}"],
    "clinical --out": ["clinical", "missing.csv", "--out", "{out}"],
    "clinical --report": ["clinical", "missing.csv", "--report", "{out}"],
    "phenotypes": ["phenotypes", "missing", "--out", "{out}"],
    "mediate": ["mediate", "--table", "missing.csv", "--exposure", "x", "--mediator", "m", "--outcome", "y",
                "--out", "{out}"],
    "report": ["report", "missing", "--out", "{out}"],
    "pseudolabel": ["pseudolabel", "missing", "--model", "missing", "--out", "{out}"],
}


@pytest.mark.parametrize("verb", OUT_UNDER_A_FILE)
def test_out_under_a_file_names_the_file_before_any_work(verb, tmp_path, capsys):
    """``--out notes.txt/sub``: the line names notes.txt as a file where a folder is needed (not
    "already exists"), before the inputs (all missing here) are read."""
    (tmp_path / "notes.txt").write_text("a file")
    out = tmp_path / "notes.txt" / "sub" / "out"
    assert main([arg.format(out=out) for arg in OUT_UNDER_A_FILE[verb]]) == 2
    line = _error_line(capsys)
    assert line == f"ssinfnet: error: {tmp_path / 'notes.txt'}: is a file, not a folder, so {out} cannot be written in it"
    assert (tmp_path / "notes.txt").read_text() == "a file"


def test_atomic_writers_name_a_file_in_the_way(tmp_path):
    (tmp_path / "notes.txt").write_text("a file")
    for writer in (lambda p: fileio.write_text(p, "x"), lambda p: fileio.atomic_dir(p).__enter__()):
        with pytest.raises(InputError, match="is a file, not a folder") as err:
            writer(tmp_path / "notes.txt" / "deeper" / "out")
        assert err.value.path == str(tmp_path / "notes.txt")
    assert _leftovers(tmp_path) == [tmp_path / "notes.txt"]


def test_os_error_of_any_verb_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    import types

    def denied(out, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(out / "ct.nii.gz"))

    monkeypatch.setitem(sys.modules, "ssinfnet.data.demo_cohort", types.SimpleNamespace(make_demo_cohort=denied))
    assert main(["data", "make-demo", str(tmp_path / "demo")]) == 2
    assert _error_line(capsys) == f"ssinfnet: error: {tmp_path / 'demo' / 'ct.nii.gz'}: permission denied"
    with pytest.raises(PermissionError):
        main(["--debug", "data", "make-demo", str(tmp_path / "demo")])


def test_a_read_only_file_system_is_named(tmp_path, capsys, monkeypatch):
    import types

    def read_only(out, **kwargs):
        os.mkdir(out)  # what really fails on a read-only mount

    monkeypatch.setitem(sys.modules, "ssinfnet.data.demo_cohort", types.SimpleNamespace(make_demo_cohort=read_only))
    monkeypatch.setattr(os, "mkdir", lambda path, *a: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system", str(path))))
    assert main(["data", "make-demo", str(tmp_path / "demo")]) == 2
    assert _error_line(capsys) == f"ssinfnet: error: {tmp_path / 'demo'}: cannot write: read-only file system"


# ----------------------------------------------------------------------------- messages

def test_multi_line_problems_become_one_line():
    yaml_like = ('while parsing a flow sequence\n  in "<unicode string>", line 2, column 11:\n'
                 '      epochs: [1, 2\n              ^\nexpected \',\' or \']\', but got \'<stream end>\'')
    text = str(InputError(yaml_like, "config.yaml"))
    assert "\n" not in text
    assert text.startswith("config.yaml: while parsing a flow sequence in") and text.endswith("'<stream end>'")


def test_long_problems_are_capped_keeping_both_ends():
    listing = ", ".join(f"1.2.826.0.1.3680043.{i} (1 files)" for i in range(100))
    text = str(InputError(f"100 DICOM series mixed in one folder: {listing}; choose one", "/data/dicom"))
    assert len(text) < 700
    assert text.startswith("/data/dicom: 100 DICOM series mixed") and text.endswith("; choose one")
    assert "characters left out" in text


def test_many_mixed_series_give_a_short_line(tmp_path, capsys):
    folder = tmp_path / "mixed"
    for k in range(30):
        make_dicom_series(folder, zs=(float(k),), rows=2, cols=2)
    assert main(["data", "validate", str(folder)]) == 2
    line = _error_line(capsys)
    assert str(folder) in line and "30 DICOM series mixed" in line and len(line) < 800


def test_file_names_that_are_not_utf8_print_as_escapes():
    name = os.fsdecode(b"/data/scan\xff.nii.gz")
    text = str(InputError(f"no mask for {name}", name))
    assert text == "/data/scan\\xff.nii.gz: no mask for /data/scan\\xff.nii.gz"
    text.encode("utf-8")  # printable as it is


# ----------------------------------------------------------------------------- evaluate

def test_evaluate_names_the_file_of_an_image_the_model_refuses(tmp_path, capsys):
    """A float TIFF holding NaN reaches the model as NaN: the line names the TIFF, not "image 0"."""
    import torch

    from ssinfnet.models.registry import build_model
    from ssinfnet.models.weights import save_model

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(data / "images" / "good.png")
    pixels = np.linspace(-1000, 200, 256, dtype=np.float32).reshape(16, 16)
    pixels[3, 3] = np.nan
    Image.fromarray(pixels, mode="F").save(data / "images" / "nan.tif")
    for name in ("good", "nan"):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "masks" / f"{name}.png")
    torch.manual_seed(0)
    save_model(build_model("unet", width=4), tmp_path / "single.safetensors")
    out = tmp_path / "out"
    assert main(["evaluate", "--data", str(data), "--single", str(tmp_path / "single.safetensors"),
                 "--size", "16", "--threshold", "0.5", "--no-progress", "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{data / 'images' / 'nan.tif'}: values must be finite" in line, line
    assert "image 1" not in line and not out.exists()


# ----------------------------------------------------------------------------- pseudolabel

def test_pseudolabel_refuses_a_manifest_naming_a_missing_file(tmp_path, capsys, stand_in_model):
    """It used to label one slice fewer than the manifest lists, without a word."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for k in (0, 1, 3):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(pool / f"covid_{k}.png")
    (pool / "manifest.csv").write_text("file,covid_label\n" + "".join(f"covid_{k}.png,COVID\n" for k in range(4)))
    out = tmp_path / "pseudo"
    assert main(["pseudolabel", str(pool), "--model", "pipeline", "--out", str(out), "--no-progress"]) == 2
    assert _error_line(capsys) == (f"ssinfnet: error: {pool / 'covid_2.png'}: listed in {pool / 'manifest.csv'} "
                                   "but not found (1 listed file(s) missing)")
    assert stand_in_model == [] and not out.exists()


# ----------------------------------------------------------------------------- weights

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_holding_nan_or_inf_are_refused_on_loading(bad, tmp_path, capsys):
    """A pipeline whose single network holds NaN used to give 0.00 mL without a word."""
    import torch
    from safetensors.torch import load_file, save_file

    from ssinfnet.inference.predictor import Pipeline, save_pipeline
    from ssinfnet.models.registry import build_model

    torch.manual_seed(0)
    folder = tmp_path / "pipeline"
    save_pipeline(folder, Pipeline(build_model("unet", width=4), build_model("multi_unet", width=4), size=32, device="cpu"))
    weights = folder / "single.safetensors"
    state = load_file(str(weights))
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name].view(-1)[:3] = bad
    save_file(state, str(weights))
    out = tmp_path / "out"
    assert main(["segment", str(_chest(tmp_path / "chest.nii.gz")), "--model", str(folder), "--out", str(out),
                 "--no-progress"]) == 2
    assert _error_line(capsys) == (f"ssinfnet: error: {weights}: weights hold NaN/inf values (3 in {name!r}, 1 tensor(s) "
                                   "in all): not a usable model (a diverged training?)")
    assert _leftovers(out) == []


# ----------------------------------------------------------------------------- analysis verbs

def test_clinical_refuses_a_file_of_random_bytes(tmp_path, capsys):
    path = tmp_path / "clinical.csv"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    out = tmp_path / "parsed.csv"
    assert main(["clinical", str(path), "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{path}: not a text CSV table: binary data" in line, line
    assert not out.exists()


CSV_CASES = {
    "header only": (b"age,severe\n", "no rows: the table has only its header line (age, severe)"),
    "separated by ;": (b"age;severe\n61;1\n70;0\n", "separated by ';', not by commas (one column 'age;severe')"),
    "separated by tabs": (b"age\tsevere\n61\t1\n", "separated by '\\t', not by commas"),
    "random bytes": (np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
                     "not a text CSV table: binary data"),
}


@pytest.mark.parametrize("case", CSV_CASES)
def test_clinical_refuses_a_table_it_cannot_read_as_comma_separated_rows(case, tmp_path, capsys):
    """The shared CSV reader refuses (does not guess at) a ;-separated export: its numbers may hold
    decimal commas."""
    data, problem = CSV_CASES[case]
    path = tmp_path / "clinical.csv"
    path.write_bytes(data)
    out = tmp_path / "parsed.csv"
    assert main(["clinical", str(path), "--out", str(out)]) == 2
    assert _error_line(capsys).startswith(f"ssinfnet: error: {path}: {problem}")
    assert not out.exists()


@pytest.mark.parametrize("case", CSV_CASES)
def test_compare_refuses_a_per_image_table_it_cannot_read(case, tmp_path, capsys):
    data, problem = CSV_CASES[case]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "per_image.csv").write_text("id,f1\nx,0.5\ny,0.7\n")
    (tmp_path / "b" / "per_image.csv").write_bytes(data)
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 2
    assert _error_line(capsys).startswith(f"ssinfnet: error: {tmp_path / 'b' / 'per_image.csv'}: {problem}")
    assert not out.exists()


def test_phenotypes_refuses_a_binary_patient_map(tmp_path, capsys):
    path = tmp_path / "patients.csv"
    path.write_bytes(CSV_CASES["random bytes"][0])
    out = tmp_path / "phenotypes"
    assert main(["phenotypes", "--patient-map", str(path), "--out", str(out)]) == 2
    assert f"{path}: not a text CSV table: binary data" in _error_line(capsys)
    assert not out.exists()


def test_mediate_names_a_column_holding_inf_as_non_finite(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = ["x,m,y"] + [f"{rng.normal():.3f},{rng.normal():.3f},{int(rng.random() < 0.5)}" for _ in range(40)]
    rows[5] = "inf,0.1,1"
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert main(["mediate", "--table", str(path), "--exposure", "x", "--mediator", "m", "--outcome", "y",
                 "--sims", "20", "--imputations", "0", "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{path}: column 'x' has 1 non-finite value(s) (inf)" in line, line
    assert "does not vary" not in line and not out.exists()


@pytest.mark.parametrize("odd", ["labels", "lung"])
def test_phenotypes_scan_names_the_file_whose_grid_differs(odd, tmp_path, capsys):
    """--scan IMAGE LABELS LUNG: the file of another shape is named with both shapes (a label map of
    another shape used to be blamed on the lung mask)."""
    affine = np.diag([0.8, 0.8, 2.5, 1])
    shapes = {"image": (16, 16, 4), "labels": (16, 16, 4), "lung": (16, 16, 4), odd: (12, 16, 4)}
    paths = {name: tmp_path / f"{name}.nii.gz" for name in shapes}
    for name, shape in shapes.items():
        data = np.full(shape, -800, np.int16) if name == "image" else np.zeros(shape, np.uint8)
        nib.save(nib.Nifti1Image(data, affine), paths[name])
    out = tmp_path / "phenotypes"
    assert main(["phenotypes", "--scan", *map(str, paths.values()), "--out", str(out)]) == 2
    assert _error_line(capsys) == (f"ssinfnet: error: {paths[odd]}: shape (12, 16, 4) differs from the CT image's "
                                   f"(16, 16, 4) ({paths['image']}): they must share one voxel grid")
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_phenotypes_refuses_a_broken_label_volume_with_one_line(damage, tmp_path, capsys):
    scan = tmp_path / "outputs" / "chest"
    scan.mkdir(parents=True)
    affine = np.diag([0.8, 0.8, 2.5, 1])
    labels = np.random.default_rng(0).integers(0, 3, (64, 64, 16), dtype=np.uint8)  # compresses little
    nib.save(nib.Nifti1Image(labels, affine), scan / "labels.nii.gz")
    nib.save(nib.Nifti1Image((labels > 0).astype(np.uint8), affine), scan / "lung.nii.gz")
    data = (scan / "labels.nii.gz").read_bytes()
    broken = data[: len(data) // 2] if damage == "truncated" else \
        np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    (scan / "labels.nii.gz").write_bytes(broken)
    out = tmp_path / "phenotypes"
    assert main(["phenotypes", str(tmp_path / "outputs"), "--out", str(out)]) == 2
    line = _error_line(capsys)
    problem = "truncated" if damage == "truncated" else "not a readable NIfTI file"
    assert f"{scan / 'labels.nii.gz'}: " in line and problem in line, line
    assert not out.exists()
