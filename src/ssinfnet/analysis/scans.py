"""Find segmentation outputs on disk, load them, and turn them into a phenotype table.

Accepted inputs (see :func:`find_scans`):

- an ``ssinfnet segment`` output folder: ``labels.nii.gz`` + ``lung.nii.gz``, with the CT taken from
  ``ct.nii.gz`` / ``image.nii.gz`` beside them or else the NIfTI ``source`` recorded in ``quantities.json``
  (a DICOM source gives no HU features: convert it to NIfTI, or pass a triplet);
- a generated-cohort subject folder: ``ct.nii.gz`` + ``label.nii.gz`` + ``lung.nii.gz``;
- a folder whose sub-folders are either of the above (e.g. the demo cohort's ``volumes/``);
- explicit (image, labels, lung) NIfTI triplets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ssinfnet.analysis.phenotypes import FEATURES, scan_phenotypes
from ssinfnet.core.folders import read_csv, read_text
from ssinfnet.data import formats
from ssinfnet.data.volumes import HU_AIR_MAX, Volume
from ssinfnet.errors import InputError
from ssinfnet.fileio import is_temporary

SEGMENT_LABELS, SEGMENT_LUNG = "labels.nii.gz", "lung.nii.gz"
SEGMENT_IMAGES = ("ct.nii.gz", "image.nii.gz")
COHORT_FILES = ("ct.nii.gz", "label.nii.gz", "lung.nii.gz")
ID_COLUMNS = ("patient_id", "scan_id")


@dataclass(frozen=True)
class ScanFiles:
    scan_id: str
    labels: Path
    lung: Path
    image: Path | None = None


def find_scans(inputs: list[str | Path] = (), triplets: list[tuple[str, str, str]] = ()) -> list[ScanFiles]:
    scans = [_scan_from_triplet(t) for t in triplets]
    for path in map(Path, inputs):
        if not path.is_dir():
            raise InputError("not a folder (give segment output folders, a cohort volumes folder, or --scan triplets)", path)
        found = _scan_in_folder(path)
        if found is None:
            found = [s for sub in sorted(p for p in path.iterdir() if p.is_dir() and not is_temporary(p)) if (s := _scan_in_folder(sub))]
            if not found:
                raise InputError(
                    f"no segmentation outputs found: expected {SEGMENT_LABELS} + {SEGMENT_LUNG}, or "
                    f"{' + '.join(COHORT_FILES)}, in the folder or its sub-folders", path)
            scans.extend(found)
        else:
            scans.append(found)
    if not scans:
        raise InputError("no scans given")
    ids = [s.scan_id for s in scans]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"scan ids are not unique (folder names repeat): {', '.join(duplicates)}")
    return scans


def _scan_from_triplet(triplet: tuple[str, str, str]) -> ScanFiles:
    image, labels, lung = map(Path, triplet)
    for p in (image, labels, lung):
        if not p.is_file():
            raise InputError("file not found", p)
    return ScanFiles(scan_id=_stem(labels), labels=labels, lung=lung, image=image)


def _stem(path: Path) -> str:
    return path.name.split(".")[0]


def _scan_in_folder(folder: Path) -> ScanFiles | None:
    if (folder / SEGMENT_LABELS).is_file() and (folder / SEGMENT_LUNG).is_file():
        image = next((folder / n for n in SEGMENT_IMAGES if (folder / n).is_file()), None)
        return ScanFiles(folder.name, folder / SEGMENT_LABELS, folder / SEGMENT_LUNG, image or _recorded_input(folder))
    if all((folder / n).is_file() for n in COHORT_FILES):
        ct, label, lung = (folder / n for n in COHORT_FILES)
        return ScanFiles(folder.name, label, lung, ct)
    return None


def _recorded_input(folder: Path) -> Path | None:
    """The scan that ``ssinfnet segment`` read, when its ``quantities.json`` names an existing NIfTI file."""
    quantities = folder / "quantities.json"
    if not quantities.is_file():
        return None
    try:
        source = json.loads(read_text(quantities)).get("source")
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise InputError(f"unreadable quantities record ({err})", quantities) from err
    if isinstance(source, str) and formats.NIFTI.can_read(Path(source)):
        return Path(source)
    return None


def _load(path: Path) -> Volume:
    """A volume through the reader registry (truncated, NaN-holding and broken files refused there)."""
    reader = formats.reader_for(path)
    if not reader.volumetric:
        raise InputError("not a volume; phenotypes need NIfTI files (voxel sizes from the affine)", path)
    return reader.read(path)


def load_scan(scan: ScanFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(labels int, lung bool, affine, HU or None), checked to share one grid."""
    label_volume = _load(scan.labels)
    labels = label_volume.array
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1, 2}:
        raise InputError(f"unexpected label values {sorted(values - {0, 1, 2})} (expected 0 bg, 1 GGO, 2 consolidation)", scan.labels)
    lung = _load(scan.lung).array
    image = None if scan.image is None else _load(scan.image).array
    _check_grid(scan, image, labels, lung)
    hu = image if image is not None and image.min() <= HU_AIR_MAX else None  # HU when it holds air (about -1000 HU)
    return labels.astype(np.int64), lung > 0, label_volume.affine, hu


def _check_grid(scan: ScanFiles, image: np.ndarray | None, labels: np.ndarray, lung: np.ndarray) -> None:
    """Label map and lung mask on the grid of the CT they were made on (of the label map without
    the CT): the file named is the one that differs, with both shapes."""
    reference = ("CT image", scan.image, image) if image is not None else ("label map", scan.labels, labels)
    for path, array in ((scan.labels, labels), (scan.lung, lung)):
        if array.shape != reference[2].shape:
            raise InputError(f"shape {array.shape} differs from the {reference[0]}'s {reference[2].shape} "
                             f"({reference[1]}): they must share one voxel grid", path)


def read_patient_map(path: str | Path) -> dict[str, str]:
    """``scan_id -> patient_id`` from a CSV with those two columns."""
    table = read_csv(path, dtype=str, keep_default_na=False)
    if table.empty or not {"scan_id", "patient_id"} <= set(table.columns):
        raise InputError("patient map needs columns scan_id and patient_id", path)
    return dict(zip(table["scan_id"], table["patient_id"]))


def phenotype_table(scans: list[ScanFiles], patient_of: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per scan: ``patient_id``, ``scan_id``, then every feature of :data:`FEATURES`.

    Scans missing from ``patient_of`` are their own patient (id = scan id).
    """
    rows = []
    for scan in scans:
        labels, lung, affine, hu = load_scan(scan)
        try:
            features = scan_phenotypes(labels, lung, affine, hu)
        except InputError as err:
            raise InputError(err.problem, scan.labels) from err
        patient = (patient_of or {}).get(scan.scan_id, scan.scan_id)
        rows.append({"patient_id": patient, "scan_id": scan.scan_id, **features})
    return pd.DataFrame(rows, columns=[*ID_COLUMNS, *FEATURES])


def per_patient(table: pd.DataFrame, how: str = "worst") -> pd.DataFrame:
    """One row per patient: ``worst`` keeps the scan with the largest ``lesion_pct`` (peak disease, which
    is what severity reflects); ``mean`` averages every feature over the patient's scans."""
    counts = table.groupby("patient_id", sort=False).size().rename("n_scans")
    if how == "worst":
        order = table.sort_values("lesion_pct", ascending=False, kind="stable")
        picked = order.drop_duplicates("patient_id").set_index("patient_id")
    elif how == "mean":
        picked = table.groupby("patient_id", sort=False)[list(FEATURES)].mean()
        picked.insert(0, "scan_id", table.groupby("patient_id", sort=False)["scan_id"].agg(";".join))
    else:
        raise InputError(f"unknown per-patient rule {how!r} (use worst or mean)")
    picked.insert(1, "n_scans", counts)
    return picked.loc[counts.index].reset_index()
