"""Compressed DICOM (issue 23): series stored as JPEG Lossless, JPEG-LS, JPEG 2000 or RLE read exactly
(python-gdcm decodes them for pydicom), and a slice that cannot be decoded (a transfer syntax no
installed decoder reads, a truncated file) is refused by ``data validate`` and ``segment`` with one
line naming that slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, JPEGLSLossless, RLELossless, generate_uid

from ssinfnet.cli import main
from ssinfnet.data import formats
from test_bad_input_table import _error_line, _leftovers, _segment, stand_in_model  # noqa: F401 (a fixture)
from test_data_volumes import _write_ct

#: pydicom's UID of each syntax -> GDCM's name of it (GDCM writes them; pydicom writes none but RLE).
GDCM_SYNTAX = {JPEGLosslessSV1: "JPEGLosslessProcess14_1", JPEGLSLossless: "JPEGLSLossless",
               JPEG2000Lossless: "JPEG2000Lossless", RLELossless: "RLELossless"}
INTERCEPT = -1024.0  # _write_ct's RescaleIntercept: stored 0 is air


def compress(path: Path, syntax: str) -> None:
    """Re-encode a DICOM file in place with GDCM (lossless syntaxes only)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read(), path
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, GDCM_SYNTAX[syntax])))
    change.SetInput(reader.GetImage())
    assert change.Change(), syntax
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(path))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write(), path


def compressed_series(folder: Path, syntax: str, rows: int = 16, cols: int = 12) -> list[np.ndarray]:
    """Three slices (files 0, 1, 2 at z = 0, 2.5, 5 mm) of random stored values 0..3000 (air to
    bone), compressed as ``syntax``; returns the stored pixels in slice order."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    series_uid = generate_uid()
    stored = []
    for k, z in enumerate((0.0, 2.5, 5.0)):
        pixels = rng.integers(0, 3000, (rows, cols)).astype(np.uint16)
        _write_ct(folder / f"{k}.dcm", pixels, z, series_uid)
        compress(folder / f"{k}.dcm", syntax)
        stored.append(pixels)
    return stored


@pytest.mark.parametrize("syntax", GDCM_SYNTAX, ids=[uid.name.split(" ")[0] + uid[-3:] for uid in GDCM_SYNTAX])
def test_compressed_series_reads_exactly(syntax, tmp_path, capsys):
    folder = tmp_path / "series"
    stored = compressed_series(folder, syntax)
    assert {pydicom.dcmread(p).file_meta.TransferSyntaxUID for p in folder.iterdir()} == {syntax}
    volume = formats.read(folder)
    assert volume.array.shape == (16, 12, 3)
    for k, pixels in enumerate(stored):
        np.testing.assert_array_equal(volume.array[:, :, k], pixels.astype(np.float32) + INTERCEPT)
    assert main(["data", "validate", str(folder)]) == 0
    assert "problems: 0" in capsys.readouterr().out


def truncated_slice(tmp: Path) -> tuple[Path, Path, str]:
    folder = tmp / "series"
    compressed_series(folder, JPEGLosslessSV1)
    broken = folder / "1.dcm"
    broken.write_bytes(broken.read_bytes()[:-200])  # cut inside the last JPEG fragment
    return folder, broken, ("cannot decode its JPEG Lossless, Non-Hierarchical, First-Order Prediction "
                            "(Process 14 [Selection Value 1]) (1.2.840.10008.1.2.4.70) pixel data (truncated")


def _restamp(path: Path, syntax: str) -> None:
    """Give a file another transfer syntax UID (its pixel data unchanged)."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path)


def syntax_without_a_decoder(tmp: Path) -> tuple[Path, Path, str]:
    folder = tmp / "series"
    compressed_series(folder, RLELossless)
    _restamp(folder / "2.dcm", "1.2.840.10008.1.2.4.100")
    return folder, folder / "2.dcm", ("pixel data stored as MPEG2 Main Profile / Main Level "
                                      "(1.2.840.10008.1.2.4.100), which no installed DICOM decoder reads")


def unknown_syntax(tmp: Path) -> tuple[Path, Path, str]:
    folder = tmp / "series"
    compressed_series(folder, RLELossless)
    _restamp(folder / "0.dcm", "1.2.3.4.5")
    return folder, folder / "0.dcm", ("pixel data stored as 1.2.3.4.5 (unknown transfer syntax), "
                                      "which no installed DICOM decoder reads")


def decoder_not_installed(tmp: Path, monkeypatch) -> tuple[Path, Path, str]:
    """What a machine without python-gdcm met before (pydicom: "all plugins are missing dependencies")."""
    import pydicom.pixels

    folder = tmp / "series"
    compressed_series(folder, JPEGLosslessSV1)
    real = pydicom.pixels.get_decoder

    class Missing:
        is_available = False

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Missing() if uid == JPEGLosslessSV1 else real(uid))
    return folder, folder / "0.dcm", ("pixel data stored as JPEG Lossless, Non-Hierarchical, First-Order Prediction "
                                      "(Process 14 [Selection Value 1]) (1.2.840.10008.1.2.4.70), which no installed "
                                      "DICOM decoder reads")


BAD_SERIES = [truncated_slice, syntax_without_a_decoder, unknown_syntax, decoder_not_installed]


@pytest.mark.parametrize("verb", ["validate", "segment"])
@pytest.mark.parametrize("case", BAD_SERIES, ids=[c.__name__ for c in BAD_SERIES])
def test_undecodable_slice_is_one_line_naming_it(case, verb, tmp_path, capsys, monkeypatch, stand_in_model):
    folder, broken, fragment = case(tmp_path, monkeypatch) if case is decoder_not_installed else case(tmp_path)
    if verb == "validate":
        assert main(["data", "validate", str(folder)]) == 2
    else:
        assert _segment([folder], tmp_path / "out") == 2
        assert _leftovers(tmp_path / "out") == []
    line = _error_line(capsys)
    assert f"{broken}: {fragment}" in line, line


# ----------------------------------------------------------------------------- real series

REAL_SERIES = {"covid-ct-md-normal001": 154, "covid-ct-md-P001": 148}


@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL_SERIES)
def test_real_jpeg_lossless_series_read_in_hu_and_validate(name, shared_data, capsys):
    folder = shared_data / "real-ct" / name / "dicom"
    assert {pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID
            for p in sorted(folder.iterdir())[:3]} == {JPEGLosslessSV1}
    volume = formats.read(folder)
    assert volume.array.shape == (512, 512, REAL_SERIES[name])
    assert volume.spacing[2] == pytest.approx(2.0)
    hu = volume.array[::4, ::4]  # every 16th voxel: enough for the shares below
    assert hu.min() >= -1100 and 1000 < hu.max() < 4000  # air at about -1024, bone above 1000
    assert np.mean(hu < -900) > 0.15  # outside air and aerated lung (about 20% here)
    assert np.mean((hu > -100) & (hu < 100)) > 0.1  # soft tissue
    assert main(["data", "validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"series: {REAL_SERIES[name]} slices" in out and "modes: hu" in out and "problems: 0" in out
