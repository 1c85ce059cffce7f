"""Readers for every supported layout; each returns :class:`~ssinfnet.data.sample.Sample` objects.

Layouts: the COVID-SemiSeg folders, a generic paired folder (``images/`` + ``masks/`` of 2D slices
with binary 0/1, 0/255 or 0/1/2 masks, or ``ct/`` + ``masks/`` of NIfTI volumes as COVID-19-CT-Seg,
MosMed and MedSeg ship them), NIfTI volumes (MedSeg labels 0-3), DICOM series folders, a DICOM series
with per-slice labels (``slice_labels.csv``, as COVID-CT-MD gives them), and unlabeled folders of mixed
formats.
:func:`read_dataset` picks the layout from what is on disk; each file's format is read by the one
reader registry, :mod:`ssinfnet.data.formats`.

Volumes (NIfTI, DICOM) are loaded and oriented by :mod:`ssinfnet.data.volumes`.
Note on the public data: the COVID-SemiSeg PNGs are crops of ``medseg100/tr_mask.nii.gz`` slices in
stored array order (``orientation="array"``, tested). By that file's affine (LAS) this is the
radiological view turned by 90 degrees (the lungs lie above each other, not side by side); the
default radiological reading of the same NIfTI shows them side by side. :func:`read_semiseg` therefore
turns those slices into the radiological view by default, so that training data, unlabeled data and
users' scans share one orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ssinfnet.core.folders import read_csv
from ssinfnet.data import formats
from ssinfnet.data.formats import natural_key
from ssinfnet.data.imageio import check_readable_file, read_image_2d, require_dir
from ssinfnet.data.intensity import LUNG_WINDOW, Window, to_unit_range
from ssinfnet.data.sample import Sample, SampleMeta
from ssinfnet.data.volumes import Volume, display_plane, display_view, in_plane_spacing
from ssinfnet.errors import InputError
from ssinfnet.fileio import is_temporary

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
PAIRED_IMAGE_DIRS = ("images", "imgs", "Imgs", "ct", "volumes")
PAIRED_MASK_DIRS = ("masks", "labels", "GT", "infection_masks", "Infection_Mask")
#: Endings of mask file names that pair them with the image of the same name without it (MosMed:
#: ``study_0255.nii.gz`` + ``study_0255_mask.nii.gz``).
MASK_SUFFIXES = ("_mask", "_seg", "_label", "_labels")
#: A DICOM series folder's per-slice labels: columns ``file`` and ``infection`` (1 / 0).
SLICE_LABELS_CSV = "slice_labels.csv"
#: Slice labels given to the slices of such a series (``evaluate`` scores detection of the first).
SLICE_LABEL_NAMES = {"1": "infection", "0": "no infection"}


# ----------------------------------------------------------------------------- file names


def file_stem(path: Path) -> str:
    """Name without its suffix; ``.nii.gz`` counts as one suffix."""
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def list_slice_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Image and NIfTI files in ``folder`` (hidden files and the writers' temporary folders left by
    a killed run skipped), in natural order."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    files = [p for p in pattern if not p.name.startswith(".") and formats.is_readable_file(p)
             and not any(is_temporary(part) for part in p.relative_to(folder).parts)]
    return sorted(files, key=natural_key)


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


def mask_stem(path: Path) -> str:
    """The image name a mask file pairs with: its stem, less one of :data:`MASK_SUFFIXES`."""
    stem = file_stem(path)
    return next((stem[: -len(end)] for end in MASK_SUFFIXES if stem.endswith(end) and len(stem) > len(end)), stem)


def match_by_stem(image_dir: Path, mask_dir: Path) -> Pairing:
    require_dir(image_dir)
    require_dir(mask_dir)
    images = list_slice_files(image_dir)
    if not images:
        raise InputError("no image files (PNG/JPG/TIFF/BMP/NIfTI) in this folder", image_dir)
    masks = {mask_stem(p): p for p in list_slice_files(mask_dir)}
    image_stems = {file_stem(p) for p in images}
    return Pairing(
        pairs=[(p, masks[file_stem(p)]) for p in images if file_stem(p) in masks],
        missing_masks=[p for p in images if file_stem(p) not in masks],
        orphan_masks=[p for stem, p in sorted(masks.items()) if stem not in image_stems],
    )


def read_pair(image_path: Path, mask_path: Path, *, window: Window = LUNG_WINDOW,
              effusion_to: int = 0, orientation: str = "radiological") -> list[Sample]:
    """One image/mask pair: a 2D slice (PNG/JPG/...) or a NIfTI slice/volume with its label file."""
    if formats.reader_for(image_path).volumetric:
        return read_nifti_volume(image_path, mask_path, effusion_to=effusion_to, window=window,
                                 orientation=orientation)
    sample = read_slice_2d(image_path, window=window)
    mask = _single_slice(formats.reader_for(mask_path).read_labels(mask_path, effusion_to), mask_path)
    if mask.shape != sample.image.shape:
        raise InputError(f"mask size {mask.shape[0]}x{mask.shape[1]} differs from image size "
                         f"{sample.image.shape[0]}x{sample.image.shape[1]} ({image_path.name})", mask_path)
    sample.mask = mask
    return [sample]


def _single_slice(labels: np.ndarray, path: Path) -> np.ndarray:
    """A label map as (rows, cols), to pair with a 2D image file: a one-slice label volume in stored order."""
    if labels.ndim == 2:
        return labels
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
    require_dir(root)
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
    require_dir(root)
    image_dir = next((root / n for n in PAIRED_IMAGE_DIRS if (root / n).is_dir()), None)
    mask_dir = next((root / n for n in PAIRED_MASK_DIRS if (root / n).is_dir()), None)
    if image_dir is None or mask_dir is None:
        raise InputError(f"expected sub-folders {PAIRED_IMAGE_DIRS[0]}/ and {PAIRED_MASK_DIRS[0]}/", root)
    return image_dir, mask_dir


def _read_paired_dirs(image_dir: Path, mask_dir: Path, **options: Any) -> list[Sample]:
    pairing = match_by_stem(image_dir, mask_dir)
    pairing.raise_problems(mask_dir)
    return [s for image, mask in pairing.pairs for s in read_pair(image, mask, **options)]


# ----------------------------------------------------------------------------- volumes


def read_nifti_volume(image_path: str | Path, label_path: str | Path | None = None, effusion_to: int = 0,
                      *, lung_path: str | Path | None = None, window: Window = LUNG_WINDOW,
                      orientation: str = "radiological") -> list[Sample]:
    """Slices of a NIfTI CT volume in HU, with optional label (MedSeg 0-3) and lung-mask volumes.

    The group id of every slice is the volume name, so splits never separate slices of a volume.
    """
    image_path = Path(image_path)
    volume = formats.NIFTI.read(image_path)
    labels = None if label_path is None else formats.reader_for(label_path).read_labels(Path(label_path), effusion_to)
    lungs = None if lung_path is None else formats.NIFTI.read(Path(lung_path)).array > 0
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
    spacing = in_plane_spacing(volume.spacing, plane)
    stack, masks, lung_masks = (None if a is None else display_view(a, plane) for a in (volume.array, labels, lungs))
    samples = []
    for k, hu in enumerate(stack):
        geometry = {"kind": kind, **plane, "slice_index": k, "affine": volume.affine.tolist(),
                    "volume_shape": list(volume.array.shape), **(extra_geometry or {})}
        meta = SampleMeta(source=str(source), id=f"{name}#{k}", group=group,
                          original_size=(int(hu.shape[0]), int(hu.shape[1])), spacing=spacing,
                          slice_thickness=float(volume.spacing[plane["axis"]]), geometry=geometry, modality="hu")
        samples.append(Sample(
            image=to_unit_range(hu, "hu", window), meta=meta, hu=np.ascontiguousarray(hu, dtype=np.float32),
            mask=None if masks is None else np.ascontiguousarray(masks[k]),
            lung=None if lung_masks is None else np.ascontiguousarray(lung_masks[k]),
        ))
    return samples


# ----------------------------------------------------------------------------- DICOM

def read_dicom_series(folder: str | Path, series_uid: str | None = None, *, pick_largest: bool = False,
                      window: Window = LUNG_WINDOW, orientation: str = "radiological") -> list[Sample]:
    """A DICOM series folder as HU slices; ``geometry["affine"]`` is RAS (NIfTI convention) for the
    volume array (rows, cols, slices) sorted along the slice normal."""
    folder = Path(folder)
    volume = formats.DICOM.read(folder, series_uid, pick_largest=pick_largest)
    name = folder.name or "dicom"
    return volume_samples(volume, None, None, source=folder, name=name, group=volume.info["patient_id"] or name,
                          kind="dicom", window=window, orientation=orientation,
                          extra_geometry={"series_uid": volume.info["series_uid"]})


def slice_labelled_series(folder: Path) -> Path | None:
    """The series folder of a DICOM series with per-slice labels: ``folder`` holds
    :data:`SLICE_LABELS_CSV` and a DICOM series, itself or in its one sub-folder. None otherwise."""
    if not (folder / SLICE_LABELS_CSV).is_file():
        return None
    candidates = [folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))]
    series = [p for p in candidates if formats.DICOM.can_read(p)]
    return series[0] if len(series) == 1 else None


def read_slice_labelled_series(folder: str | Path, *, window: Window = LUNG_WINDOW) -> list[Sample]:
    """A DICOM series with a per-slice label CSV (:data:`SLICE_LABELS_CSV`: one row per file, ``file`` and
    ``infection`` 1/0): its slices with ``meta.label`` from :data:`SLICE_LABEL_NAMES` and no masks.

    Rows are matched to slices by the position of each listed file (its ImagePositionPatient), not by the
    order of the rows, so any sorting of the CSV works; every slice must have exactly one row.
    """
    import pydicom  # noqa: PLC0415 (only DICOM users pay for the import)

    folder = Path(folder)
    series = slice_labelled_series(folder)
    if series is None:
        raise InputError(f"expected {SLICE_LABELS_CSV} beside one DICOM series folder", folder)
    table = folder / SLICE_LABELS_CSV
    rows = _read_label_rows(table)
    samples = read_dicom_series(series, window=window)
    affine = np.asarray(samples[0].meta.geometry["affine"])
    axis = samples[0].meta.geometry["axis"]
    corner = np.zeros(3)
    corner[axis] = 1.0
    step, origin = affine[:3, :3] @ corner, affine[:3, 3]  # RAS position of display slice k: origin + k * step
    labels: dict[int, str] = {}
    for row in rows:
        path = series / row["file"]
        try:
            position = np.asarray(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient, float)
        except (OSError, AttributeError, ValueError, pydicom.errors.InvalidDicomError) as err:
            raise InputError(f"{SLICE_LABELS_CSV} names a file that is not a readable slice: {err}", path) from None
        k = float((np.diag([-1.0, -1.0, 1.0]) @ position - origin) @ step / (step @ step))  # LPS -> RAS
        if abs(k - round(k)) > 0.25 or not 0 <= round(k) < len(samples) or round(k) in labels:
            raise InputError(f"{row['file']} is not one slice of the series in {series.name}", table)
        labels[round(k)] = SLICE_LABEL_NAMES[row["infection"]]
    if len(labels) != len(samples):
        raise InputError(f"{len(samples) - len(labels)} of the series' {len(samples)} slices have no row", table)
    for k, sample in enumerate(samples):
        sample.meta.label = labels[k]
    return samples


def _read_label_rows(table: Path) -> list[dict[str, str]]:
    rows = _csv_rows(table)
    if not {"file", "infection"} <= set(rows[0]):
        raise InputError("expected columns 'file' and 'infection' (1 / 0), one row per slice", table)
    for number, row in enumerate(rows, start=2):
        row["infection"] = (row["infection"] or "").strip()
        if row["infection"] not in SLICE_LABEL_NAMES:
            raise InputError(f"line {number}: infection must be 1 or 0, got {row['infection']!r}", table)
    return rows


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV table as text (empty cells ""), read and checked by ``core.folders.read_csv``."""
    check_readable_file(path)
    return read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig").to_dict("records")


# ----------------------------------------------------------------------------- unlabeled


def read_manifest(path: str | Path) -> dict[str, str | None]:
    """Manifest CSV: column ``file`` (relative to the data root) and optional ``covid_label``/``label``."""
    path = Path(path)
    rows = _csv_rows(path)
    if "file" not in rows[0]:
        raise InputError("manifest needs a 'file' column", path)
    label_column = next((c for c in ("covid_label", "label") if c in rows[0]), None)
    return {row["file"]: (row[label_column] or None) if label_column else None for row in rows}


def list_unlabeled_files(root: str | Path) -> list[Path]:
    """Every image/NIfTI file below ``root`` (recursive); a single file is its own list."""
    root = Path(root)
    if root.is_file():
        return [root]
    require_dir(root)
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
    reader = formats.reader_for(path)
    if not reader.volumetric:
        return [read_slice_2d(path, window=window, sample_id=sample_id, label=label)]
    samples = volume_samples(reader.read(path), None, None, source=path, name=sample_id, group=sample_id,
                             kind=reader.name, window=window, orientation="radiological")
    for s in samples:
        s.meta.label = label
    return samples


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
    """"semiseg", "paired", "dicom", "dicom-slice-labels", "unlabeled", "nifti" or "image" (a single 2D file)."""
    path = Path(path)
    if not path.exists():
        raise InputError("path not found", path)
    if path.is_file():
        return formats.reader_for(path).name  # a single DICOM file is refused: give its series folder
    if (path / "TrainingSet").is_dir() or (path / "TestingSet").is_dir():
        return "semiseg"
    names = {p.name for p in path.iterdir() if p.is_dir()}
    if names & set(PAIRED_IMAGE_DIRS) and names & set(PAIRED_MASK_DIRS):
        return "paired"
    if slice_labelled_series(path) is not None:
        return "dicom-slice-labels"
    if formats.DICOM.can_read(path):
        return "dicom"
    return "unlabeled"


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
        return read_dicom_series(path, series_uid, window=window)
    if layout == "dicom-slice-labels":
        return read_slice_labelled_series(path, window=window)
    if layout == "image":
        return [read_slice_2d(path, window=window)]
    return list(iter_unlabeled(path, path / "manifest.csv" if (path / "manifest.csv").is_file() else None,
                               window=window))
