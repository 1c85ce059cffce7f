"""3D volumes: NIfTI and DICOM loading (HU, voxel-to-RAS affine, spacing) and slice geometry.

Orientation of volume slices (NIfTI, DICOM). ``orientation="radiological"`` (default) turns every
slice, using the affine, into the usual radiological axial view: rows run anterior -> posterior
(top of the image = front of the patient) and columns run patient right -> patient left (the
patient's right on the viewer's left). ``orientation="array"`` keeps the stored order
(``volume[:, :, k]``). Either way ``meta.geometry`` records the slice axis and index in the
ORIGINAL voxel grid plus the transpose/flips applied. :func:`display_view` is the one orientation
function: every reader's slices and every write-back (:func:`put_slice`, segment's label volumes) are
views of the voxel array through it, so a prediction lands exactly in the original file's grid.

What a scan must pass to be segmented (and what ``data validate`` checks, the same function):
:func:`check_scan`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import nibabel as nib
import numpy as np

from ssinfnet.data.imageio import check_readable_file, require_dir
from ssinfnet.errors import InputError

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: MedSeg label values: 0 background, 1 GGO, 2 consolidation, 3 pleural effusion.
EFFUSION_LABEL = 3
MEDSEG_LABELS = (0, 1, 2, EFFUSION_LABEL)
#: A volume of integers in 0..this is a label map (no CT, not even an 8-bit one, is that dark).
MAX_LABEL_VALUE = 15
#: A CT in Hounsfield units holds air (about -1000 HU) below this; raw scanner values do not.
HU_AIR_MAX = -500.0
#: No CT value (HU, even extended-range HU of metal at about 30000, or raw 16-bit stored values
#: times a rescale slope) comes near this magnitude: beyond it the scale is broken.
MAX_CT_MAGNITUDE = 1e6
#: Voxel sizes outside this range (mm) are refused as broken headers.
SPACING_RANGE_MM = (0.05, 50.0)
#: NIfTI headers promising more voxels are refused before any memory is taken (a chest CT holds
#: well under 1e9; 2**31 float32 voxels are 8 GiB).
MAX_VOXELS = 2**31
#: deflate compresses at most about 1032:1, so a .nii.gz cannot hold more data than this many times its size.
MAX_GZIP_RATIO = 1100


def is_nifti_file(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_dicom_file(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def looks_like_dicom(path: Path) -> bool:
    """Meant as DICOM: a ``.dcm`` name or the ``DICM`` marker."""
    return path.suffix.lower() == ".dcm" or is_dicom_file(path)


@dataclass
class Volume:
    """A 3D array with its voxel-to-RAS affine; ``spacing`` in mm per array axis."""

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    header: Any = None
    """The NIfTI header the volume was read with (None for DICOM)."""
    info: dict[str, Any] = field(default_factory=dict)
    """DICOM: ``series_uid`` and ``patient_id`` (None when absent); empty for NIfTI."""


def load_nifti(path: str | Path) -> Volume:
    """A 2D or 3D NIfTI (4D only with a last dimension of 1) as float32, refusing NaN/inf."""
    path = Path(path)
    image = open_nifti(path)
    try:
        with quiet_nibabel():
            array = np.asarray(image.dataobj, dtype=np.float32)
    except MemoryError:
        raise InputError(f"header shape {tuple(image.shape)} does not fit in memory", path) from None
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise InputError(f"corrupt or truncated NIfTI data: {err}", path) from None
    array = array.reshape(_shape3d(image.shape, path))
    if not np.isfinite(array).all():
        raise InputError(f"NIfTI contains {int((~np.isfinite(array)).sum())} NaN/inf voxels", path)
    zooms = tuple(float(z) for z in (tuple(image.header.get_zooms()) + (1.0, 1.0))[:3])
    return Volume(array=array, affine=np.asarray(image.affine, dtype=np.float64), spacing=zooms,
                  header=image.header)


@contextlib.contextmanager
def quiet_nibabel() -> Iterator[None]:
    """No stray output from nibabel: its header fix-up log lines and numpy warnings while reading.
    What matters in them is checked and refused with a one-line error instead (:func:`open_nifti`)."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def load_label_volume(path: str | Path, effusion_to: int = 0) -> np.ndarray:
    """A MedSeg-convention label NIfTI as int64 0/1/2 (effusion, label 3, becomes ``effusion_to``)."""
    labels = check_label_values(load_nifti(path).array, path)
    return map_effusion(labels, effusion_to)


def looks_like_labels(array: np.ndarray) -> bool:
    """Integers in 0..:data:`MAX_LABEL_VALUE` only: a label map, whatever file it came in."""
    return bool(array.size) and float(array.min()) >= 0 and float(array.max()) <= MAX_LABEL_VALUE \
        and bool(np.array_equal(array, np.round(array)))


def check_label_values(array: np.ndarray, path: str | Path) -> np.ndarray:
    """int64 labels, refusing non-integers and values outside the MedSeg 0-3 convention."""
    values = np.unique(array)
    unexpected = [int(v) if float(v).is_integer() else v for v in values.tolist() if v not in MEDSEG_LABELS]
    if unexpected:
        raise InputError(f"unexpected label values {unexpected[:8]}; expected MedSeg labels 0-3 "
                         "(background, GGO, consolidation, pleural effusion)", path)
    return array.astype(np.int64)


def map_effusion(labels: np.ndarray, effusion_to: int) -> np.ndarray:
    if effusion_to not in (0, 1, 2):
        raise ValueError(f"effusion_to must be 0, 1 or 2, got {effusion_to}")
    return np.where(labels == EFFUSION_LABEL, effusion_to, labels)


def open_nifti(path: Path) -> nib.Nifti1Image:
    """The NIfTI image (data not read yet), refusing headers that promise more data than the file
    can hold (truncated files, decompression bombs) and voxel sizes of 0."""
    check_readable_file(path)
    try:
        with quiet_nibabel():
            image = nib.load(path)
            raw = _raw_header(image, path)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError,
            zlib.error, ValueError) as err:
        raise InputError(f"not a readable NIfTI file: {err}", path) from None
    _shape3d(image.shape, path)
    _check_data_size(image, path)
    zooms = [float(z) for z in raw["pixdim"][1 : 1 + min(3, len(image.shape))]]
    if not all(np.isfinite(z) and z != 0 for z in zooms):
        raise InputError(f"header voxel size (pixdim) {tuple(round(z, 4) for z in zooms)} holds 0 or NaN; "
                         "the header geometry is broken", path)
    return image


def _raw_header(image: nib.Nifti1Image, path: Path) -> Any:
    """The header as stored, before nibabel's fix-ups (it turns a voxel size of 0 into 1)."""
    with nib.openers.ImageOpener(path) as fh:
        return type(image.header).from_fileobj(fh, check=False)


def _check_data_size(image: nib.Nifti1Image, path: Path) -> None:
    header = image.header
    voxels = int(np.prod([int(s) for s in header.get_data_shape()], dtype=object))
    needed = voxels * header.get_data_dtype().itemsize
    size = path.stat().st_size
    if voxels > MAX_VOXELS:
        raise InputError(f"header shape {tuple(image.shape)} promises {voxels:,} voxels "
                         f"(more than {MAX_VOXELS:,}); refused as a broken header or decompression bomb", path)
    if path.name.lower().endswith(".gz"):
        if needed > size * MAX_GZIP_RATIO:
            raise InputError(f"header shape {tuple(image.shape)} promises {needed:,} bytes, more than "
                             f"{size:,} compressed bytes can hold; a broken header or decompression bomb", path)
    elif needed > size - int(header.get_data_offset()):
        raise InputError(f"truncated NIfTI: the header promises {needed:,} bytes of data, the file holds "
                         f"{max(0, size - int(header.get_data_offset())):,}", path)


def _shape3d(shape: Sequence[int], path: Path) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3:
        raise InputError(f"NIfTI has {len(shape)} dimensions {shape}; expected a 2D slice or 3D volume", path)
    if 0 in shape:
        raise InputError(f"NIfTI has an empty dimension {shape}", path)
    return shape


def check_spacing(spacing: Iterable[float], source: str | Path) -> None:
    """Refuse voxel sizes outside :data:`SPACING_RANGE_MM` (0, NaN, 0.001 mm...) as a broken header."""
    low, high = SPACING_RANGE_MM
    values = [float(s) for s in spacing]
    if not all(low <= s <= high for s in values):
        raise InputError(f"voxel spacing {tuple(round(s, 4) for s in values)} mm is outside "
                         f"{low}..{high} mm; the header geometry is broken", source)


def check_affine(affine: np.ndarray, source: str | Path) -> tuple[float, float, float]:
    """Voxel sizes (mm per array axis) of a voxel-to-world affine, refusing singular ones and
    sizes outside :data:`SPACING_RANGE_MM`."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    if not np.isfinite(columns).all() or abs(np.linalg.det(columns)) < 1e-9:
        raise InputError("affine is singular (voxel axes collapse); the header geometry is broken", source)
    voxel_size = tuple(float(v) for v in np.linalg.norm(columns, axis=0))
    check_spacing(voxel_size, source)
    return voxel_size


def value_modality(array: np.ndarray, source: str | Path) -> str:
    """"8bit" when every value is an integer in 0..255 (display values), "hu" when the values reach
    down to air (a chest CT in HU always holds air: about -1000 HU). Refused: a single value (no
    contrast: an empty or blanked export), values beyond :data:`MAX_CT_MAGNITUDE` (a broken scale),
    label maps (integers in 0..:data:`MAX_LABEL_VALUE` only) and anything else (raw scanner values)."""
    low, high = float(array.min()), float(array.max())
    if low == high:
        raise InputError(f"holds one value only ({low:g}): no contrast, not a CT image", source)
    if max(-low, high) > MAX_CT_MAGNITUDE:
        raise InputError(f"values {low:.3g}..{high:.3g} lie far outside any CT range (|value| above "
                         f"{MAX_CT_MAGNITUDE:.0e}); a broken intensity scale (rescale slope)?", source)
    if looks_like_labels(array):
        raise InputError(f"holds only the integers {low:.0f}..{high:.0f}: a label map, not a CT image", source)
    if low >= 0 and high <= 255 and np.array_equal(array, np.round(array)):
        return "8bit"
    if low > HU_AIR_MAX:
        raise InputError(f"values {low:.0f}..{high:.0f} are neither 8-bit nor Hounsfield units (no air below "
                         f"{HU_AIR_MAX:.0f}); raw scanner values without RescaleIntercept?", source)
    return "hu"


def display_plane(affine: np.ndarray, shape: Sequence[int], orientation: str = "radiological") -> dict[str, Any]:
    """Which array axis to slice and how to turn its 2D planes into display slices.

    The slice axis is the one closest to superior/inferior (or the only axis of length 1, for a
    single slice). Radiological display: rows anterior -> posterior, columns patient right -> left.
    """
    if orientation not in ("radiological", "array"):
        raise ValueError(f"orientation must be 'radiological' or 'array', got {orientation!r}")
    singleton = [a for a in range(3) if shape[a] == 1]
    codes = nib.aff2axcodes(affine)
    if len(singleton) == 1:
        axis = singleton[0]
    elif orientation == "radiological" and ("S" in codes or "I" in codes):
        axis = codes.index("S") if "S" in codes else codes.index("I")
    else:
        axis = 2
    plane = {"axis": axis, "transpose": False, "flip_rows": False, "flip_cols": False,
             "orientation": orientation}
    in_plane = [a for a in range(3) if a != axis]
    ap = [a for a in in_plane if codes[a] in ("A", "P")]
    lr = [a for a in in_plane if codes[a] in ("L", "R")]
    if orientation == "array" or not (ap and lr):  # not an axial plane: keep the stored order
        return plane
    plane["transpose"] = ap[0] != in_plane[0]
    plane["flip_rows"] = codes[ap[0]] == "A"
    plane["flip_cols"] = codes[lr[0]] == "R"
    return plane


def in_plane_spacing(spacing: Sequence[float], plane: dict[str, Any]) -> tuple[float, float]:
    rows, cols = (float(spacing[a]) for a in range(3) if a != plane["axis"])
    return (cols, rows) if plane["transpose"] else (rows, cols)


def display_view(volume: np.ndarray, plane: dict[str, Any]) -> np.ndarray:
    """The display slices ``(slices, rows, cols)`` of ``volume`` through ``plane`` (from
    :func:`display_plane`, or a slice's ``geometry``), as a view: writing into it writes into
    ``volume``, so the same function reads slices out and puts predictions back."""
    view = np.moveaxis(volume, plane["axis"], 0)
    if plane["transpose"]:
        view = view.transpose(0, 2, 1)
    if plane["flip_rows"]:
        view = view[:, ::-1, :]
    if plane["flip_cols"]:
        view = view[:, :, ::-1]
    return view


def put_slice(volume: np.ndarray, display: np.ndarray, geometry: dict[str, Any]) -> None:
    """Write a display-oriented 2D array into ``volume`` (shape ``geometry["volume_shape"]``) in place."""
    display_view(volume, geometry)[geometry["slice_index"]] = display


#: Slices tilted more than this from the nearest axial plane are refused (see :func:`check_scan`).
MAX_TILT_DEGREES = 30.0


def check_scan(array: np.ndarray, affine: np.ndarray, source: str | Path) -> tuple[tuple[float, float, float], str]:
    """(voxel sizes in mm per array axis, modality) of a CT volume, refusing single slices, broken
    affines (:func:`check_affine`), strongly oblique slices and values that are not CT
    (:func:`value_modality`). ``segment`` and ``data validate`` both call this, so they accept and
    refuse the same scans.

    Oblique: reslicing along the array axis closest to superior-inferior would show the network
    planes it was never trained on, so scans tilted more than :data:`MAX_TILT_DEGREES` must be
    resampled to axial first (3D Slicer, SimpleITK).
    """
    if sum(size > 1 for size in array.shape) < 3:
        raise InputError(f"holds a single 2D slice (shape {tuple(array.shape)}), not a volume; "
                         "save the slice as PNG/TIFF to segment it as a 2D image", source)
    voxel_size = check_affine(affine, source)
    columns = affine[:3, :3]
    codes = nib.aff2axcodes(affine)
    axis = codes.index("S") if "S" in codes else codes.index("I")
    normal = np.cross(*(columns[:, a] for a in range(3) if a != axis))
    tilt = float(np.degrees(np.arccos(min(1.0, abs(normal[2]) / np.linalg.norm(normal)))))
    if tilt > MAX_TILT_DEGREES:
        raise InputError(f"oblique scan: slices are tilted {tilt:.0f} degrees from the nearest axial plane "
                         f"(at most {MAX_TILT_DEGREES:.0f} accepted); resample it to axial first", source)
    return voxel_size, value_modality(array, source)


#: Margin around the lungs' bounding box when segment crops a scan to it, as a fraction of each dimension
#: (at least 2 voxels): the training slices are chest crops with some border.
CROP_MARGIN = 0.05


def crop_margin(size: int) -> int:
    """Voxels of margin that segment's crop adds on each side of the lungs along a dimension of ``size``."""
    return max(2, int(round(CROP_MARGIN * size)))


# ----------------------------------------------------------------------------- DICOM

#: DICOM patient coordinates are LPS; NIfTI (and our affines) are RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load_dicom_volume(folder: Path, series_uid: str | None = None, *, pick_largest: bool = False) -> Volume:
    """HU volume (rows, cols, slices) of one series in ``folder`` with its RAS affine; ``info``
    holds the series UID and patient id.

    Several series in one folder: choose with ``series_uid``, or ``pick_largest`` (logged), else
    an InputError lists the UIDs.
    """
    import pydicom  # noqa: PLC0415 (only DICOM users pay for the import)

    require_dir(folder)
    series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        header = _dicom_header(path, pydicom)
        if header is not None and "Rows" in header and "ImagePositionPatient" in header:
            series[str(header.get("SeriesInstanceUID", ""))].append((path, header))
    if not series:
        raise InputError("no DICOM images (files with pixel rows and ImagePositionPatient) in this folder", folder)
    uid = _choose_series(folder, series, series_uid, pick_largest)
    files = series[uid]
    for name, value in SHARED_GEOMETRY.items():
        _check_shared(files, name, value)
    row_cos, col_cos = _orientation_cosines(files[0])
    normal = np.cross(row_cos, col_cos)
    files.sort(key=lambda item: float(np.dot(np.asarray(item[1].ImagePositionPatient, float), normal)))
    positions = np.array([np.asarray(h.ImagePositionPatient, float) for _, h in files])
    if len(files) > 1 and np.any(np.linalg.norm(np.diff(positions, axis=0), axis=1) < 1e-3):
        raise InputError("two slices of the series share one position (duplicate files?)", folder)
    _check_slice_steps(folder, [path for path, _ in files], positions @ normal)
    planes = [_hu_plane(path, header) for path, header in files]
    row_spacing, col_spacing = (float(v) for v in files[0][1].get("PixelSpacing", (1.0, 1.0)))
    if len(files) > 1:
        step = (positions[-1] - positions[0]) / (len(files) - 1)
    else:
        step = normal * float(files[0][1].get("SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = col_cos * row_spacing  # down a row = along the column direction cosine
    lps[:3, 1] = row_cos * col_spacing
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    return Volume(array=np.stack(planes, axis=-1), affine=_LPS_TO_RAS @ lps,
                  spacing=(row_spacing, col_spacing, float(np.linalg.norm(step))),
                  info={"series_uid": uid, "patient_id": str(files[0][1].get("PatientID", "")) or None})


#: Steps between neighbouring slices may differ from the series' usual step by this fraction
#: (positions are stored as rounded decimal strings), or by :data:`SLICE_STEP_TOLERANCE_MM`.
SLICE_STEP_TOLERANCE = 0.01
SLICE_STEP_TOLERANCE_MM = 0.01


def _check_slice_steps(folder: Path, paths: list[Path], offsets: np.ndarray) -> None:
    """Refuse a series whose slices are not evenly spaced along the slice normal (a missing file
    leaves a gap; the volume would put every slice after it at the wrong position), naming where.

    The usual step is the most common one (the smallest of equally common ones).
    """
    steps = np.diff(offsets)
    if len(steps) < 2:
        return
    values, counts = np.unique(np.round(steps, 2), return_counts=True)
    usual = float(values[counts == counts.max()].min())
    uneven = np.flatnonzero(np.abs(steps - usual) > max(SLICE_STEP_TOLERANCE * usual, SLICE_STEP_TOLERANCE_MM))
    if not len(uneven):
        return
    k = int(uneven[0])
    step = float(steps[k])
    missing = round(step / usual) - 1
    what = f"gap in the series, about {missing} slice(s) missing" if missing >= 1 else "uneven slice spacing"
    more = f"; {len(uneven) - 1} more uneven step(s)" if len(uneven) > 1 else ""
    raise InputError(f"{what}: {step:.2f} mm between slice {k + 1} ({paths[k].name}, at {offsets[k]:.2f} mm) "
                     f"and slice {k + 2} of {len(paths)} ({paths[k + 1].name}, at {offsets[k + 1]:.2f} mm), "
                     f"where the slices are {usual:.2f} mm apart{more}", folder)


def _choose_series(folder: Path, series: dict[str, list], series_uid: str | None, pick_largest: bool) -> str:
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(f"series {series_uid} not in this folder; found {sorted(series)}", folder)
        return series_uid
    if len(series) == 1:
        return next(iter(series))
    listing = ", ".join(f"{uid} ({len(files)} files)" for uid, files in sorted(series.items()))
    if not pick_largest:
        raise InputError(f"{len(series)} DICOM series mixed in one folder: {listing}; "
                         "choose one with series_uid (or pick_largest)", folder)
    uid = max(series, key=lambda u: len(series[u]))
    log.warning("%s: %d DICOM series in one folder (%s); using the largest, %s", folder, len(series), listing, uid)
    return uid


def _orientation_cosines(item: tuple[Path, Any]) -> tuple[np.ndarray, np.ndarray]:
    path, header = item
    cosines = np.asarray(header.get("ImageOrientationPatient", (1, 0, 0, 0, 1, 0)), dtype=float)
    if cosines.shape != (6,):
        raise InputError("ImageOrientationPatient does not hold 6 values", path)
    return cosines[:3], cosines[3:]


def _dicom_header(path: Path, pydicom: Any) -> Any:
    """The header of a DICOM file, or None for another file (README, ...), which is ignored. A file
    meant as DICOM (:func:`looks_like_dicom`) that cannot be read is refused, naming it: skipping it
    would leave a gap in the series, reported at the neighbouring slices instead."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a broken header is refused below, never warned about
            return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # pydicom raises many types on broken files
        if not looks_like_dicom(path):
            return None
        if isinstance(err, OSError):
            problem = f"cannot read it: {err.strerror or err}"
        elif path.stat().st_size == 0:
            problem = "empty file (0 bytes)"
        elif not is_dicom_file(path):
            problem = f"not a DICOM file ({path.stat().st_size} bytes without the DICM marker)"
        else:
            problem = f"damaged DICOM header: {err}"
        raise InputError(f"{problem}; expected a slice of this series", path) from None


#: Header values every slice of a series must share (the volume has one grid): name -> value of a header.
SHARED_GEOMETRY = {
    "PixelSpacing": lambda h: tuple(round(float(v), 4) for v in h.get("PixelSpacing", (1.0, 1.0))),
    "Rows x Columns": lambda h: (int(h.Rows), int(h.get("Columns", 0))),
}


def _check_shared(files: list[tuple[Path, Any]], name: str, value: Any) -> None:
    """Refuse a series whose slices differ in ``name`` (``value(header)``), naming the first slice
    that differs from the most common value."""
    values = [value(header) for _, header in files]
    usual = max(set(values), key=values.count)
    odd = [(path, v) for (path, _), v in zip(files, values) if v != usual]
    if odd:
        path, v = odd[0]
        more = f" (and {len(odd) - 1} more slice(s))" if len(odd) > 1 else ""
        raise InputError(f"{name} {v} differs from the rest of the series ({usual}, {values.count(usual)} "
                         f"slice(s)){more}; the slices do not form one volume", path)


def _transfer_syntax(header: Any) -> str:
    """A file's transfer syntax as "name (UID)" ("UID (unknown)" for one pydicom does not know)."""
    uid = header.file_meta.get("TransferSyntaxUID")
    if uid is None:
        return "unstated transfer syntax (no file meta)"
    return f"{uid.name} ({uid})" if uid.name != str(uid) else f"{uid} (unknown transfer syntax)"


def _check_decodable(header: Any, path: Path) -> None:
    """Refuse pixel data that no installed pydicom decoder reads, naming the transfer syntax (the
    decoder is python-gdcm, see pyproject.toml)."""
    from pydicom.pixels import get_decoder  # noqa: PLC0415

    uid = header.file_meta.get("TransferSyntaxUID")
    if uid is None:
        return  # pydicom guesses the encoding of files without file meta; decoding says the rest
    try:
        available = get_decoder(uid).is_available
    except NotImplementedError:  # no decoder exists for this UID at all
        available = False
    if not available:
        raise InputError(f"pixel data stored as {_transfer_syntax(header)}, which no installed DICOM decoder "
                         "reads; convert the series to uncompressed DICOM or NIfTI (gdcmconv --raw, dcm2niix)", path)


def _hu_plane(path: Path, header: Any) -> np.ndarray:
    """Stored pixels -> HU with RescaleSlope/RescaleIntercept."""
    import pydicom  # noqa: PLC0415

    _check_decodable(header, path)
    # pydicom warns and goes on at a truncated file's end (dropping the pixel data): the warning is
    # the reason to report, never a stray stderr line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pixels = pydicom.dcmread(path).pixel_array
        except Exception as err:  # pydicom raises many types for broken or truncated pixel data
            reason = "; ".join([str(w.message) for w in caught] + [str(err)])
            raise InputError(f"cannot decode its {_transfer_syntax(header)} pixel data (truncated or damaged "
                             f"file?): {reason}", path) from None
    if pixels.ndim != 2:
        raise InputError(f"DICOM pixel data has shape {pixels.shape}; expected one 2D slice", path)
    slope = float(header.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(header.get("RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float32) * slope + intercept
