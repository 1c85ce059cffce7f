"""The one registry of input formats: which reader takes a path, and what it gives back.

Every caller (the training readers, ``data validate``, ``segment``, ``phenotypes``, the datasets)
picks the reader of a path with :func:`reader_for` from :data:`READERS`, so they all accept and
refuse the same inputs with the same messages (like nnU-Net v2's imageio reader registry). A
reader (:class:`Reader`) has:

- ``name``: "nifti", "dicom" or "image" (also the layout name of a single input);
- ``volumetric``: whether ``read`` gives a 3D :class:`~ssinfnet.data.volumes.Volume` (array, RAS
  affine, spacing; oriented into display slices by :func:`ssinfnet.data.volumes.display_view`)
  or a 2D :class:`Picture` (pixels as stored and their modality);
- ``can_read(path)``: the format test (a file suffix, or a folder holding DICOM files);
- ``read(path, series_uid=None, pick_largest=False)``: the image (DICOM options for series folders);
- ``read_labels(path, effusion_to=0)``: a label map, int64 0/1/2, in the layout ``read`` gives;
- ``slice_count(path)``: how many display slices ``read`` gives (from the header where it can).

A DICOM series is a folder (:func:`holds_dicom`); a single DICOM file is refused, naming the fix.
:func:`list_scans` lists every input below a folder (each DICOM folder is one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ssinfnet.data.imageio import is_image_file, read_image_2d, read_mask_2d
from ssinfnet.data.volumes import (
    Volume, display_plane, is_nifti_file, load_dicom_volume, load_label_volume, load_nifti, looks_like_dicom,
    open_nifti,
)
from ssinfnet.errors import InputError

#: A folder is a DICOM series folder when one of its first this many files is DICOM.
DICOM_PROBE_FILES = 20


@dataclass
class Picture:
    """A 2D image file as stored: pixels (rows, cols) or (rows, cols, 3|4) and their modality
    (see :func:`ssinfnet.data.intensity.to_unit_range`)."""

    array: np.ndarray
    modality: str


class Reader(Protocol):
    name: str
    volumetric: bool

    def can_read(self, path: Path) -> bool: ...

    def read(self, path: Path, series_uid: str | None = None, pick_largest: bool = False) -> Volume | Picture: ...

    def read_labels(self, path: Path, effusion_to: int = 0) -> np.ndarray: ...

    def slice_count(self, path: Path) -> int: ...


class NiftiReader:
    """``.nii`` / ``.nii.gz``: a 2D slice or 3D volume (:func:`ssinfnet.data.volumes.load_nifti`)."""

    name, volumetric = "nifti", True

    def can_read(self, path: Path) -> bool:
        return is_nifti_file(path) and path.is_file()

    def read(self, path: Path, series_uid: str | None = None, pick_largest: bool = False) -> Volume:
        return load_nifti(path)

    def read_labels(self, path: Path, effusion_to: int = 0) -> np.ndarray:
        return load_label_volume(path, effusion_to)

    def slice_count(self, path: Path) -> int:
        header = open_nifti(path)  # header only: the voxels stay on disk
        shape = tuple(header.shape[:3]) + (1,) * (3 - len(header.shape[:3]))
        return shape[display_plane(header.affine, shape)["axis"]]


class DicomSeriesReader:
    """A folder holding one DICOM series (or several: ``series_uid`` / ``pick_largest`` chooses),
    in HU with its RAS affine (:func:`ssinfnet.data.volumes.load_dicom_volume`)."""

    name, volumetric = "dicom", True

    def can_read(self, path: Path) -> bool:
        return path.is_dir() and holds_dicom(path)

    def read(self, path: Path, series_uid: str | None = None, pick_largest: bool = False) -> Volume:
        return load_dicom_volume(path, series_uid, pick_largest=pick_largest)

    def read_labels(self, path: Path, effusion_to: int = 0) -> np.ndarray:
        raise InputError("DICOM series hold images, not label maps; give labels as NIfTI", path)

    def slice_count(self, path: Path) -> int:
        volume = self.read(path)
        return volume.array.shape[display_plane(volume.affine, volume.array.shape)["axis"]]


class ImageReader:
    """PNG/JPG/TIFF/BMP: one 2D slice (:mod:`ssinfnet.data.imageio`)."""

    name, volumetric = "image", False

    def can_read(self, path: Path) -> bool:
        return is_image_file(path) and path.is_file()

    def read(self, path: Path, series_uid: str | None = None, pick_largest: bool = False) -> Picture:
        return Picture(*read_image_2d(path))

    def read_labels(self, path: Path, effusion_to: int = 0) -> np.ndarray:
        return read_mask_2d(path)

    def slice_count(self, path: Path) -> int:
        return 1


NIFTI, DICOM, IMAGE = NiftiReader(), DicomSeriesReader(), ImageReader()
#: Every supported format, in the order :func:`reader_for` tries them.
READERS: tuple[Reader, ...] = (NIFTI, DICOM, IMAGE)

UNSUPPORTED = "unsupported file type; expected NIfTI (.nii/.nii.gz), a DICOM series folder, or a PNG/JPG/TIFF/BMP image"
NO_SCANS = "no NIfTI, DICOM or PNG/JPG/TIFF images found in this folder"


def reader_for(path: str | Path) -> Reader:
    """The reader of ``path``, or an InputError saying why there is none."""
    path = Path(path)
    for reader in READERS:
        if reader.can_read(path):
            return reader
    if not path.exists():
        raise InputError("not found", path)
    if path.is_dir():
        raise InputError(NO_SCANS, path)
    if looks_like_dicom(path):
        raise InputError("a single DICOM file; give the folder that holds the whole series", path)
    raise InputError(UNSUPPORTED, path)


def read(path: str | Path, series_uid: str | None = None, pick_largest: bool = False) -> Volume | Picture:
    """``reader_for(path).read(...)``."""
    path = Path(path)
    return reader_for(path).read(path, series_uid, pick_largest)


def is_readable_file(path: Path) -> bool:
    """A file (not a folder) that one of :data:`READERS` reads."""
    return path.is_file() and any(reader.can_read(path) for reader in READERS)


def holds_dicom(folder: Path) -> bool:
    """One of the first :data:`DICOM_PROBE_FILES` files directly in ``folder`` is DICOM (``.dcm`` or
    the ``DICM`` marker; a DICOMDIR index counts, the series then lies in sub-folders)."""
    files = [p for p in folder.iterdir() if p.is_file()]
    return any(looks_like_dicom(p) for p in files[:DICOM_PROBE_FILES])


def natural_key(path: Path) -> list[Any]:
    """Sort ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def list_scans(folder: Path) -> list[Path]:
    """Every input below ``folder`` in natural order: readable files, and each DICOM series folder
    as one input (hidden entries, e.g. a killed writer's temporary folders, skipped).

    Symlinked folders are followed, but each real folder is visited once: a link back up the tree
    (``loop -> ..``) would otherwise list the same scans again under ``loop/loop/...``."""
    seen = {folder.resolve()}

    def walk(parent: Path) -> list[Path]:
        scans: list[Path] = []
        for entry in sorted(parent.iterdir(), key=natural_key):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if entry.resolve() in seen:
                    continue
                seen.add(entry.resolve())
            if any(reader.can_read(entry) for reader in READERS):
                scans.append(entry)
            elif entry.is_dir():
                scans.extend(walk(entry))
        return scans

    return walk(folder)
