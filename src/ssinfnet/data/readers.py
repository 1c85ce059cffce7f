"""Readers for every supported layout; each returns :class:`~ssinfnet.data.sample.Sample` objects.

Layouts: the COVID-SemiSeg folders, a generic paired folder (``images/`` + ``masks/``), NIfTI
volumes (MedSeg labels 0-3), DICOM series folders, and unlabeled folders of mixed formats.
:func:`read_dataset` picks the reader from what is on disk.

Orientation of volume slices (NIfTI, DICOM). ``orientation="radiological"`` (default) turns every
slice, using the affine, into the usual radiological axial view: rows run anterior -> posterior
(top of the image = front of the patient) and columns run patient right -> patient left (the
patient's right on the viewer's left). ``orientation="array"`` keeps the stored order
(``volume[:, :, k]``). Either way ``meta.geometry`` records the slice axis and index in the
ORIGINAL voxel grid plus the transpose/flips applied, and :func:`slice_to_volume_plane` undoes
them exactly, so a prediction can be written back into the original file's grid.
Note on the public data: the COVID-SemiSeg PNGs are crops of ``medseg100/tr_mask.nii.gz`` slices in
stored array order (``orientation="array"``, tested). By that file's affine (LAS) this is the
radiological view turned by 90 degrees (the lungs lie above each other, not side by side); the
default radiological reading of the same NIfTI shows them side by side. :func:`read_semiseg` therefore
turns those slices into the radiological view by default, so that training data, unlabeled data and
users' scans share one orientation.
"""

from __future__ import annotations

import csv
import logging
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import nibabel as nib
import numpy as np

from ssinfnet.data.imageio import check_readable_file, is_image_file, read_image_2d, read_mask_2d
from ssinfnet.data.intensity import LUNG_WINDOW, Window, to_unit_range
from ssinfnet.data.sample import Sample, SampleMeta
from ssinfnet.errors import InputError

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: MedSeg label values: 0 background, 1 GGO, 2 consolidation, 3 pleural effusion.
EFFUSION_LABEL = 3
MEDSEG_LABELS = (0, 1, 2, EFFUSION_LABEL)

#: COVID-SemiSeg sub-folders (image dir, mask dir) for each (split, task). The test GT folder holds
#: 0/1/2 PNGs equal to GT-1 (GGO) and GT-2 (consolidation) combined, so GT is read directly.
SEMISEG_FOLDERS = {
    ("train", "multi"): ("TrainingSet/MultiClassInfection-Train/Imgs", "TrainingSet/MultiClassInfection-Train/GT"),
    ("test", "multi"): ("TestingSet/MultiClassInfection-Test/Imgs", "TestingSet/MultiClassInfection-Test/GT"),
    ("train", "single"): ("TrainingSet/LungInfection-Train/Doctor-label/Imgs",
                          "TrainingSet/LungInfection-Train/Doctor-label/GT"),
    ("test", "single"): ("TestingSet/LungInfection-Test/Imgs", "TestingSet/LungInfection-Test/GT"),
}

#: Accepted sub-folder names of a paired folder.
PAIRED_IMAGE_DIRS = ("images", "imgs", "Imgs")
PAIRED_MASK_DIRS = ("masks", "labels", "GT")


# ----------------------------------------------------------------------------- file names


def is_nifti_file(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def file_stem(path: Path) -> str:
    """Name without its suffix; ``.nii.gz`` counts as one suffix."""
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def natural_key(path: Path) -> list[Any]:
    """Sort ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def list_slice_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Image and NIfTI files in ``folder`` (hidden files skipped), in natural order."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    files = [p for p in pattern if p.is_file() and not p.name.startswith(".")
             and (is_image_file(p) or is_nifti_file(p))]
    return sorted(files, key=natural_key)


def _require_dir(path: Path) -> None:
    if not path.exists():
        raise InputError("folder not found", path)
    if not path.is_dir():
        raise InputError("is a file; expected a folder", path)


# ----------------------------------------------------------------------------- 2D pairs


@dataclass
class Pairing:
    """Images matched to masks by file stem, plus what could not be matched."""

    pairs: list[tuple[Path, Path]]
    missing_masks: list[Path]
    orphan_masks: list[Path]

    def raise_problems(self, mask_dir: Path) -> None:
        if self.missing_masks:
            raise InputError(f"no mask with this name in {mask_dir}", self.missing_masks[0])
        if self.orphan_masks:
            raise InputError("mask has no image with the same name", self.orphan_masks[0])


def match_by_stem(image_dir: Path, mask_dir: Path) -> Pairing:
    _require_dir(image_dir)
    _require_dir(mask_dir)
    images = list_slice_files(image_dir)
    if not images:
        raise InputError("no image files (PNG/JPG/TIFF/BMP/NIfTI) in this folder", image_dir)
    masks = {file_stem(p): p for p in list_slice_files(mask_dir)}
    image_stems = {file_stem(p) for p in images}
    return Pairing(
        pairs=[(p, masks[file_stem(p)]) for p in images if file_stem(p) in masks],
        missing_masks=[p for p in images if file_stem(p) not in masks],
        orphan_masks=[p for s, p in sorted(masks.items()) if s not in image_stems],
    )


def read_pair(image_path: Path, mask_path: Path, *, window: Window = LUNG_WINDOW,
              effusion_to: int = 0, orientation: str = "radiological") -> list[Sample]:
    """One image/mask pair: a 2D slice (PNG/JPG/...) or a NIfTI slice/volume with its label file."""
    if is_nifti_file(image_path):
        return read_nifti_volume(image_path, mask_path, effusion_to=effusion_to, window=window,
                                 orientation=orientation)
    sample = read_slice_2d(image_path, window=window)
    mask = _single_slice_labels(mask_path, effusion_to) if is_nifti_file(mask_path) else read_mask_2d(mask_path)
    if mask.shape != sample.image.shape:
        raise InputError(f"mask size {mask.shape[0]}x{mask.shape[1]} differs from image size "
                         f"{sample.image.shape[0]}x{sample.image.shape[1]} ({image_path.name})", mask_path)
    sample.mask = mask
    return [sample]


def _single_slice_labels(path: Path, effusion_to: int) -> np.ndarray:
    """A one-slice label NIfTI as (rows, cols) in stored order, to pair with a 2D image file."""
    labels = load_label_volume(path, effusion_to)
    if labels.shape[2] != 1:
        raise InputError(f"label volume has {labels.shape[2]} slices; a 2D image needs a one-slice mask", path)
    return labels[:, :, 0]


def read_slice_2d(path: Path, *, window: Window = LUNG_WINDOW, group: str | None = None,
                  sample_id: str | None = None, label: str | None = None) -> Sample:
    """An unlabeled 2D image file as a Sample (intensity policy applied)."""
    array, modality = read_image_2d(path)
    sample_id = sample_id or file_stem(path)
    meta = SampleMeta(source=str(path), id=sample_id, group=group or sample_id,
                      original_size=(int(array.shape[0]), int(array.shape[1])),
                      geometry={"kind": "image2d"}, label=label, modality=modality)
    return Sample(image=to_unit_range(array, modality, window), mask=None, meta=meta)


#: np.rot90 turns that take a stored COVID-SemiSeg slice to the radiological view (see the module doc):
#: clockwise, so the anterior side (stored on the left) comes to the top.
SEMISEG_TO_RADIOLOGICAL = -1


def read_semiseg(root: str | Path, split: str = "train", task: str = "multi", *,
                 window: Window = LUNG_WINDOW, orientation: str = "radiological") -> list[Sample]:
    """COVID-SemiSeg: ``split`` "train" (50 slices) / "test" (48); ``task`` "multi" (masks 0/1/2) or
    "single" (the binary LungInfection view, masks 0/1).

    ``orientation="radiological"`` (default) turns each slice by 90 degrees into the radiological view
    that the unlabeled slices, NIfTI and DICOM readers give, so a model trained on this set sees lungs the
    way it will see them in a user's scan; ``meta.original_size`` is then the turned shape and
    ``meta.geometry["rot90"]`` the turn applied. ``orientation="array"`` keeps the stored order.
    The data set has no patient ids, so every slice is its own group.
    """
    if (split, task) not in SEMISEG_FOLDERS:
        raise ValueError(f"split must be train/test and task multi/single, got {split!r}, {task!r}")
    if orientation not in ("radiological", "array"):
        raise ValueError(f"orientation must be 'radiological' or 'array', got {orientation!r}")
    root = Path(root)
    _require_dir(root)
    image_dir, mask_dir = (root / sub for sub in SEMISEG_FOLDERS[split, task])
    samples = _read_paired_dirs(image_dir, mask_dir, window=window)
    if orientation == "radiological":
        for sample in samples:
            _turn(sample, SEMISEG_TO_RADIOLOGICAL)
    return samples


def _turn(sample: Sample, k: int) -> None:
    """Rotate a 2-D sample in place by ``k`` quarter turns (np.rot90) and record it in its geometry."""
    for name in ("image", "mask", "lung", "hu"):
        array = getattr(sample, name)
        if array is not None:
            setattr(sample, name, np.ascontiguousarray(np.rot90(array, k)))
    stored = sample.meta.original_size
    sample.meta.original_size = tuple(sample.image.shape)
    if sample.meta.spacing is not None and k % 2:
        sample.meta.spacing = sample.meta.spacing[::-1]
    sample.meta.geometry = {**sample.meta.geometry, "rot90": k, "stored_size": list(stored)}


def read_paired_folder(root: str | Path, *, window: Window = LUNG_WINDOW, effusion_to: int = 0,
                       orientation: str = "radiological") -> list[Sample]:
    """``root/images`` + ``root/masks`` (or imgs/labels/GT) matched by file stem."""
    image_dir, mask_dir = paired_dirs(Path(root))
    return _read_paired_dirs(image_dir, mask_dir, window=window, effusion_to=effusion_to,
                             orientation=orientation)


def paired_dirs(root: Path) -> tuple[Path, Path]:
    _require_dir(root)
    image_dir = next((root / n for n in PAIRED_IMAGE_DIRS if (root / n).is_dir()), None)
    mask_dir = next((root / n for n in PAIRED_MASK_DIRS if (root / n).is_dir()), None)
    if image_dir is None or mask_dir is None:
        raise InputError(f"expected sub-folders {PAIRED_IMAGE_DIRS[0]}/ and {PAIRED_MASK_DIRS[0]}/", root)
    return image_dir, mask_dir


def _read_paired_dirs(image_dir: Path, mask_dir: Path, **options: Any) -> list[Sample]:
    pairing = match_by_stem(image_dir, mask_dir)
    pairing.raise_problems(mask_dir)
    return [s for image, mask in pairing.pairs for s in read_pair(image, mask, **options)]


# ----------------------------------------------------------------------------- NIfTI


@dataclass
class Volume:
    """A 3D array with its voxel-to-RAS affine; ``spacing`` in mm per array axis."""

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]


def load_nifti(path: str | Path) -> Volume:
    """A 2D or 3D NIfTI (4D only with a last dimension of 1) as float32, refusing NaN/inf."""
    path = Path(path)
    image = open_nifti(path)
    try:
        array = np.asarray(image.dataobj, dtype=np.float32)
    except (OSError, EOFError, zlib.error, ValueError) as err:
        raise InputError(f"corrupt or truncated NIfTI data: {err}", path) from None
    array = array.reshape(_shape3d(image.shape, path))
    if not np.isfinite(array).all():
        raise InputError(f"NIfTI contains {int((~np.isfinite(array)).sum())} NaN/inf voxels", path)
    zooms = tuple(float(z) for z in (tuple(image.header.get_zooms()) + (1.0, 1.0))[:3])
    return Volume(array=array, affine=np.asarray(image.affine, dtype=np.float64), spacing=zooms)


def load_label_volume(path: str | Path, effusion_to: int = 0) -> np.ndarray:
    """A MedSeg-convention label NIfTI as int64 0/1/2 (effusion, label 3, becomes ``effusion_to``)."""
    labels = check_label_values(load_nifti(path).array, path)
    return map_effusion(labels, effusion_to)


def check_label_values(array: np.ndarray, path: str | Path) -> np.ndarray:
    """int64 labels, refusing non-integers and values outside the MedSeg 0-3 convention."""
    values = np.unique(array)
    unexpected = [v for v in values.tolist() if v not in MEDSEG_LABELS]
    if unexpected:
        raise InputError(f"unexpected label values {unexpected[:8]}; expected MedSeg labels 0-3 "
                         "(background, GGO, consolidation, pleural effusion)", path)
    return array.astype(np.int64)


def map_effusion(labels: np.ndarray, effusion_to: int) -> np.ndarray:
    if effusion_to not in (0, 1, 2):
        raise ValueError(f"effusion_to must be 0, 1 or 2, got {effusion_to}")
    return np.where(labels == EFFUSION_LABEL, effusion_to, labels)


def open_nifti(path: Path) -> nib.Nifti1Image:
    check_readable_file(path)
    try:
        image = nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as err:
        raise InputError(f"not a readable NIfTI file: {err}", path) from None
    _shape3d(image.shape, path)
    return image


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


def read_nifti_volume(image_path: str | Path, label_path: str | Path | None = None, effusion_to: int = 0,
                      *, lung_path: str | Path | None = None, window: Window = LUNG_WINDOW,
                      orientation: str = "radiological") -> list[Sample]:
    """Slices of a NIfTI CT volume in HU, with optional label (MedSeg 0-3) and lung-mask volumes.

    The group id of every slice is the volume name, so splits never separate slices of a volume.
    """
    image_path = Path(image_path)
    volume = load_nifti(image_path)
    labels = None if label_path is None else load_label_volume(label_path, effusion_to)
    lungs = None if lung_path is None else load_nifti(lung_path).array > 0
    for extra, path in ((labels, label_path), (lungs, lung_path)):
        if extra is not None and extra.shape != volume.array.shape:
            raise InputError(f"shape {extra.shape} differs from image volume {volume.array.shape} "
                             f"({image_path.name})", path)
    return volume_samples(volume, labels, lungs, source=image_path, name=file_stem(image_path),
                          group=file_stem(image_path), kind="nifti", window=window, orientation=orientation)


def volume_samples(volume: Volume, labels: np.ndarray | None, lungs: np.ndarray | None, *, source: Path,
                   name: str, group: str, kind: str, window: Window, orientation: str,
                   extra_geometry: dict[str, Any] | None = None) -> list[Sample]:
    """Cut a HU volume into oriented slices (see the module doc for the orientation)."""
    plane = display_plane(volume.affine, volume.array.shape, orientation)
    spacing = _in_plane_spacing(volume.spacing, plane)
    samples = []
    for k in range(volume.array.shape[plane["axis"]]):
        geometry = {"kind": kind, **plane, "slice_index": k, "affine": volume.affine.tolist(),
                    "volume_shape": list(volume.array.shape), **(extra_geometry or {})}
        hu = volume_plane_to_slice(volume.array, geometry)
        meta = SampleMeta(source=str(source), id=f"{name}#{k}", group=group,
                          original_size=(int(hu.shape[0]), int(hu.shape[1])), spacing=spacing,
                          slice_thickness=float(volume.spacing[plane["axis"]]), geometry=geometry, modality="hu")
        samples.append(Sample(
            image=to_unit_range(hu, "hu", window), meta=meta, hu=np.ascontiguousarray(hu, dtype=np.float32),
            mask=None if labels is None else np.ascontiguousarray(volume_plane_to_slice(labels, geometry)),
            lung=None if lungs is None else np.ascontiguousarray(volume_plane_to_slice(lungs, geometry)),
        ))
    return samples


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


def _in_plane_spacing(spacing: Sequence[float], plane: dict[str, Any]) -> tuple[float, float]:
    rows, cols = (float(spacing[a]) for a in range(3) if a != plane["axis"])
    return (cols, rows) if plane["transpose"] else (rows, cols)


def volume_plane_to_slice(volume: np.ndarray, geometry: dict[str, Any]) -> np.ndarray:
    """The display slice described by ``geometry`` (a view into ``volume`` where possible)."""
    index: list[Any] = [slice(None)] * volume.ndim
    index[geometry["axis"]] = geometry["slice_index"]
    plane = volume[tuple(index)]  # basic indexing: a view, unlike np.take's copy
    if geometry["transpose"]:
        plane = plane.T
    if geometry["flip_rows"]:
        plane = plane[::-1, :]
    if geometry["flip_cols"]:
        plane = plane[:, ::-1]
    return plane


def slice_to_volume_plane(display: np.ndarray, geometry: dict[str, Any]) -> np.ndarray:
    """Undo :func:`volume_plane_to_slice`: a display-oriented 2D array (e.g. a prediction) in the
    original voxel grid's plane, to be placed at ``geometry["slice_index"]`` along
    ``geometry["axis"]`` (see :func:`put_slice`)."""
    plane = display
    if geometry["flip_cols"]:
        plane = plane[:, ::-1]
    if geometry["flip_rows"]:
        plane = plane[::-1, :]
    if geometry["transpose"]:
        plane = plane.T
    return plane


def put_slice(volume: np.ndarray, display: np.ndarray, geometry: dict[str, Any]) -> None:
    """Write a display-oriented 2D array into ``volume`` (shape ``geometry["volume_shape"]``) in place."""
    index = [slice(None)] * volume.ndim
    index[geometry["axis"]] = geometry["slice_index"]
    volume[tuple(index)] = slice_to_volume_plane(display, geometry)


# ----------------------------------------------------------------------------- DICOM

#: DICOM patient coordinates are LPS; NIfTI (and our affines) are RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def read_dicom_series(folder: str | Path, series_uid: str | None = None, *, pick_largest: bool = False,
                      window: Window = LUNG_WINDOW, orientation: str = "radiological") -> list[Sample]:
    """A DICOM series folder as HU slices; ``geometry["affine"]`` is RAS (NIfTI convention) for the
    volume array (rows, cols, slices) sorted along the slice normal."""
    folder = Path(folder)
    volume, info = load_dicom_volume(folder, series_uid, pick_largest=pick_largest)
    name = folder.name or "dicom"
    return volume_samples(volume, None, None, source=folder, name=name, group=info["patient_id"] or name,
                          kind="dicom", window=window, orientation=orientation,
                          extra_geometry={"series_uid": info["series_uid"]})


def load_dicom_volume(folder: Path, series_uid: str | None = None, *,
                      pick_largest: bool = False) -> tuple[Volume, dict[str, Any]]:
    """HU volume (rows, cols, slices) of one series in ``folder`` with its RAS affine.

    Several series in one folder: choose with ``series_uid``, or ``pick_largest`` (logged), else
    an InputError lists the UIDs.
    """
    import pydicom  # noqa: PLC0415 (only DICOM users pay for the import)

    _require_dir(folder)
    series: dict[str, list[tuple[Path, Any]]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError, AttributeError):
            continue  # not DICOM (README, DICOMDIR index, ...): ignored, only image files count
        if "Rows" in header and "ImagePositionPatient" in header:
            series[str(header.get("SeriesInstanceUID", ""))].append((path, header))
    if not series:
        raise InputError("no DICOM images (files with pixel rows and ImagePositionPatient) in this folder", folder)
    uid = _choose_series(folder, series, series_uid, pick_largest)
    files = series[uid]
    row_cos, col_cos = _orientation_cosines(files[0])
    normal = np.cross(row_cos, col_cos)
    files.sort(key=lambda item: float(np.dot(np.asarray(item[1].ImagePositionPatient, float), normal)))
    positions = np.array([np.asarray(h.ImagePositionPatient, float) for _, h in files])
    if len(files) > 1 and np.any(np.linalg.norm(np.diff(positions, axis=0), axis=1) < 1e-3):
        raise InputError("two slices of the series share one position (duplicate files?)", folder)
    planes = [_hu_plane(path, pydicom) for path, _ in files]
    if len({p.shape for p in planes}) > 1:
        raise InputError(f"slices of the series differ in size: {sorted({p.shape for p in planes})}", folder)
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
    volume = Volume(array=np.stack(planes, axis=-1), affine=_LPS_TO_RAS @ lps,
                    spacing=(row_spacing, col_spacing, float(np.linalg.norm(step))))
    return volume, {"series_uid": uid, "patient_id": str(files[0][1].get("PatientID", "")) or None}


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


def _hu_plane(path: Path, pydicom: Any) -> np.ndarray:
    """Stored pixels -> HU with RescaleSlope/RescaleIntercept."""
    ds = pydicom.dcmread(path)
    try:
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for missing decoders or broken data
        raise InputError(f"cannot decode DICOM pixel data: {err}", path) from None
    if pixels.ndim != 2:
        raise InputError(f"DICOM pixel data has shape {pixels.shape}; expected one 2D slice", path)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float32) * slope + intercept


# ----------------------------------------------------------------------------- unlabeled


def read_manifest(path: str | Path) -> dict[str, str | None]:
    """Manifest CSV: column ``file`` (relative to the data root) and optional ``covid_label``/``label``."""
    path = Path(path)
    check_readable_file(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"not a readable CSV: {err}", path) from None
    if not rows or "file" not in rows[0]:
        raise InputError("manifest needs a 'file' column", path)
    label_column = next((c for c in ("covid_label", "label") if c in rows[0]), None)
    return {row["file"]: (row[label_column] or None) if label_column else None for row in rows}


def list_unlabeled_files(root: str | Path) -> list[Path]:
    """Every image/NIfTI file below ``root`` (recursive); a single file is its own list."""
    root = Path(root)
    if root.is_file():
        return [root]
    _require_dir(root)
    files = list_slice_files(root, recursive=True)
    if not files:
        raise InputError("no image files (PNG/JPG/TIFF/BMP/NIfTI) found in this folder", root)
    return files


def read_unlabeled_file(path: Path, root: Path | None = None, label: str | None = None, *,
                        window: Window = LUNG_WINDOW) -> list[Sample]:
    """One unlabeled file: one Sample for a 2D image, one per slice for a NIfTI volume.

    The id is the path relative to ``root`` without suffix, unique even when sub-folders reuse names.
    """
    rel = path.relative_to(root) if root is not None and root in path.parents else Path(path.name)
    sample_id = str(rel.with_name(file_stem(rel)))
    if is_nifti_file(path):
        volume = load_nifti(path)
        samples = volume_samples(volume, None, None, source=path, name=sample_id, group=sample_id,
                                 kind="nifti", window=window, orientation="radiological")
        for s in samples:
            s.meta.label = label
        return samples
    return [read_slice_2d(path, window=window, sample_id=sample_id, label=label)]


def iter_unlabeled(root: str | Path, manifest: str | Path | None = None, *,
                   window: Window = LUNG_WINDOW) -> Iterator[Sample]:
    """Unlabeled slices below ``root``, decoded one file at a time; ``manifest`` gives slice labels."""
    root = Path(root)
    labels = read_manifest(manifest) if manifest is not None else {}
    for path in list_unlabeled_files(root):
        key = path.relative_to(root).as_posix() if root in path.parents else path.name
        yield from read_unlabeled_file(path, root, labels.get(key), window=window)


# ----------------------------------------------------------------------------- auto-detection


def detect_layout(path: str | Path) -> str:
    """"semiseg", "paired", "dicom", "unlabeled", "nifti" or "image" (a single 2D file)."""
    path = Path(path)
    if not path.exists():
        raise InputError("path not found", path)
    if path.is_file():
        if is_nifti_file(path):
            return "nifti"
        if is_image_file(path):
            return "image"
        if is_dicom_file(path):
            return "dicom"
        raise InputError("unsupported file type; expected a folder, NIfTI, PNG/JPG/TIFF/BMP or DICOM", path)
    if (path / "TrainingSet").is_dir() or (path / "TestingSet").is_dir():
        return "semiseg"
    names = {p.name for p in path.iterdir() if p.is_dir()}
    if names & set(PAIRED_IMAGE_DIRS) and names & set(PAIRED_MASK_DIRS):
        return "paired"
    if any(is_dicom_file(p) for p in _first_files(path, 20)):
        return "dicom"
    return "unlabeled"


def is_dicom_file(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble."""
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _first_files(folder: Path, n: int) -> list[Path]:
    files = []
    for p in folder.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            files.append(p)
            if len(files) == n:
                break
    return files


def read_dataset(path: str | Path, *, split: str = "train", task: str = "multi", series_uid: str | None = None,
                 label_path: str | Path | None = None, effusion_to: int = 0,
                 window: Window = LUNG_WINDOW) -> list[Sample]:
    """Read whatever ``path`` holds (see :func:`detect_layout`); unlabeled data comes back with
    ``mask=None``. ``split``/``task`` apply to COVID-SemiSeg, ``label_path`` to a NIfTI volume."""
    path = Path(path)
    layout = detect_layout(path)
    if layout == "semiseg":
        return read_semiseg(path, split, task, window=window)
    if layout == "paired":
        return read_paired_folder(path, window=window, effusion_to=effusion_to)
    if layout == "nifti":
        return read_nifti_volume(path, label_path, effusion_to, window=window)
    if layout == "dicom":
        return read_dicom_series(path if path.is_dir() else path.parent, series_uid, window=window)
    if layout == "image":
        return [read_slice_2d(path, window=window)]
    return list(iter_unlabeled(path, path / "manifest.csv" if (path / "manifest.csv").is_file() else None,
                               window=window))
