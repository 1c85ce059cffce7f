"""CT lesion phenotypes: engineered features of one scan's GGO / consolidation label map.

Every feature is declared once in :data:`FEATURES` (name, unit, formula); :func:`scan_phenotypes`
returns exactly those keys, and :func:`write_data_dictionary` writes the registry beside a table so
that every column of a phenotype table is documented where it is used.

Conventions shared by all features:

- Burden and left/right (lung region = lung mask OR lesion, percentages of it, the midline) follow
  :mod:`ssinfnet.core.burden`, the definition ``segment`` reports too.
- Volumes come from the affine: one voxel is ``|det(A[:3, :3])|`` mm^3; 1 mL = 1000 mm^3.
- Lesions are 3D connected components of GGO OR consolidation, 26-connectivity (face, edge or corner).
- Patient left/right comes from the affine (NIfTI world space is RAS+: +x points to the patient's right).
- Peripheral/central: in each axial slice (the voxel axis closest to world superior-inferior), the
  in-plane Euclidean distance of every lung-region pixel to the region's edge, divided by the largest
  distance in that slice; the outer third of that depth (<= 1/3) is *peripheral*, the rest *central*.
  This follows how radiologists read axial slices (pleura -> hilum); it is depth-based, so the
  peripheral zone holds more than a third of the lung area.
- Undefined ratios (e.g. a share of zero lesion volume) are NaN, never 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from ssinfnet.core import burden
from ssinfnet.errors import InputError
from ssinfnet.fileio import write_json, write_text

#: Lesion size bins (mL) for the size-distribution counts: [0, 1), [1, 10), [10, inf).
SIZE_BINS_ML = (1.0, 10.0)
PERIPHERAL_DEPTH = 1.0 / 3.0
HU_PERCENTILES = (10, 50, 90)


@dataclass(frozen=True)
class Feature:
    name: str
    unit: str
    formula: str
    group: str


def _features() -> dict[str, Feature]:
    region = "lung region (lung OR lesion)"
    rows = [
        ("lung_volume_ml", "mL", f"voxels in the {region} x voxel volume", "burden"),
        ("lesion_volume_ml", "mL", "voxels labelled GGO or consolidation x voxel volume", "burden"),
        ("ggo_volume_ml", "mL", "voxels labelled GGO (1) x voxel volume", "burden"),
        ("consolidation_volume_ml", "mL", "voxels labelled consolidation (2) x voxel volume", "burden"),
        ("lesion_pct", "% of lung", "100 x lesion_volume_ml / lung_volume_ml", "burden"),
        ("ggo_pct", "% of lung", "100 x ggo_volume_ml / lung_volume_ml", "burden"),
        ("consolidation_pct", "% of lung", "100 x consolidation_volume_ml / lung_volume_ml", "burden"),
        ("consolidation_ggo_ratio", "ratio", "consolidation_volume_ml / ggo_volume_ml (NaN if no GGO)", "burden"),
        ("consolidation_share_pct", "% of lesion", "100 x consolidation_volume_ml / lesion_volume_ml (NaN if no lesion)", "burden"),
        ("n_lesions", "count", "3D connected components (26-connectivity) of the lesion mask", "lesions"),
        ("n_lesions_lt_1ml", "count", "components smaller than 1 mL", "lesions"),
        ("n_lesions_1_10ml", "count", "components of 1 mL up to (not incl.) 10 mL", "lesions"),
        ("n_lesions_ge_10ml", "count", "components of 10 mL or more", "lesions"),
        ("lesion_size_median_ml", "mL", "median component volume (NaN if no lesion)", "lesions"),
        ("lesion_size_max_ml", "mL", "largest component volume (0 if no lesion)", "lesions"),
        ("largest_lesion_share_pct", "% of lesion", "100 x lesion_size_max_ml / lesion_volume_ml (NaN if no lesion)", "lesions"),
        ("lesion_hu_mean", "HU", "mean HU over lesion voxels (NaN without HU or lesion)", "intensity"),
        ("lesion_hu_sd", "HU", "standard deviation (ddof=0) of HU over lesion voxels", "intensity"),
        *[(f"lesion_hu_p{p}", "HU", f"{p}th percentile of HU over lesion voxels", "intensity") for p in HU_PERCENTILES],
        ("ggo_hu_mean", "HU", "mean HU over GGO voxels (NaN without HU or GGO)", "intensity"),
        ("consolidation_hu_mean", "HU", "mean HU over consolidation voxels (NaN without HU or consolidation)", "intensity"),
        ("right_lesion_pct", "% of right lung", "100 x lesion voxels / lung-region voxels on the patient's right of the midline (or on it)", "side"),
        ("left_lesion_pct", "% of left lung", "100 x lesion voxels / lung-region voxels on the patient's left of the midline", "side"),
        ("right_lesion_share_pct", "% of lesion", "100 x lesion voxels on the right / all lesion voxels (NaN if no lesion)", "side"),
        ("peripheral_lesion_pct", "% of peripheral lung", "100 x lesion voxels / lung-region voxels in the outer third (per-slice depth)", "zone"),
        ("central_lesion_pct", "% of central lung", "100 x lesion voxels / lung-region voxels in the inner two thirds", "zone"),
        ("peripheral_lesion_share_pct", "% of lesion", "100 x peripheral lesion voxels / all lesion voxels (NaN if no lesion)", "zone"),
    ]
    return {name: Feature(name, unit, formula, group) for name, unit, formula, group in rows}


#: The registry: every phenotype column, its unit and formula.
FEATURES: dict[str, Feature] = _features()


def scan_phenotypes(labels: np.ndarray, lung: np.ndarray, affine: np.ndarray, hu: np.ndarray | None = None) -> dict[str, float]:
    """All :data:`FEATURES` of one scan. ``labels``: 0 bg / 1 GGO / 2 consolidation, 3D (or 2D = one slice).

    ``hu`` is the CT in Hounsfield units on the same grid, or None (intensity features are NaN then).
    """
    labels, lung = _as_3d(labels), _as_3d(lung).astype(bool)
    hu = None if hu is None else _as_3d(hu)
    affine = np.asarray(affine, dtype=float)
    ggo, cons = labels == 1, labels == 2
    lesion = ggo | cons
    region = burden.lung_region(labels, lung)
    if not region.any():
        raise InputError("lung mask and label map are both empty: no lung region to measure")
    # Rounded so that e.g. 5 x 5 x 5 mm gives exactly 125 mm^3 (LU round-off would move lesions across bins).
    voxel_ml = round(abs(np.linalg.det(affine[:3, :3])), 6) / 1000.0
    parts = burden.measure(labels, lung, burden.Lateral.from_affine(affine))
    whole, right = parts[burden.WHOLE], parts[burden.RIGHT]
    out = {
        "lung_volume_ml": whole.lung * voxel_ml,
        "lesion_volume_ml": whole.lesion * voxel_ml,
        "ggo_volume_ml": whole.ggo * voxel_ml,
        "consolidation_volume_ml": whole.consolidation * voxel_ml,
        "lesion_pct": whole.percent_of_lung("lesion"),
        "ggo_pct": whole.percent_of_lung("ggo"),
        "consolidation_pct": whole.percent_of_lung("consolidation"),
        "consolidation_ggo_ratio": _ratio(whole.consolidation, whole.ggo),
        "consolidation_share_pct": _pct(whole.consolidation, whole.lesion),
        "right_lesion_pct": right.percent_of_lung("lesion"),
        "left_lesion_pct": parts[burden.LEFT].percent_of_lung("lesion"),
        "right_lesion_share_pct": _pct(right.lesion, whole.lesion),
    }
    out.update(_lesion_sizes(lesion, voxel_ml))
    out.update(_intensity(hu, lesion, ggo, cons))
    out.update(_zones(region, lesion, affine))
    return {name: float(out[name]) for name in FEATURES}


def _as_3d(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array[..., None] if array.ndim == 2 else array


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def _pct(num: float, den: float) -> float:
    return 100.0 * _ratio(num, den)


def _lesion_sizes(lesion: np.ndarray, voxel_ml: float) -> dict[str, float]:
    components, n = ndimage.label(lesion, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(components.ravel())[1:] * voxel_ml
    small, large = SIZE_BINS_ML
    total = sizes.sum()
    return {
        "n_lesions": n,
        "n_lesions_lt_1ml": int((sizes < small).sum()),
        "n_lesions_1_10ml": int(((sizes >= small) & (sizes < large)).sum()),
        "n_lesions_ge_10ml": int((sizes >= large).sum()),
        "lesion_size_median_ml": float(np.median(sizes)) if n else float("nan"),
        "lesion_size_max_ml": float(sizes.max()) if n else 0.0,
        "largest_lesion_share_pct": _pct(sizes.max(), total) if n else float("nan"),
    }


def _intensity(hu: np.ndarray | None, lesion: np.ndarray, ggo: np.ndarray, cons: np.ndarray) -> dict[str, float]:
    def values(mask: np.ndarray) -> np.ndarray:
        return np.empty(0) if hu is None else hu[mask].astype(np.float64)

    def mean(mask: np.ndarray) -> float:
        v = values(mask)
        return float(v.mean()) if v.size else float("nan")

    v = values(lesion)
    stats = {f"lesion_hu_p{p}": (float(np.percentile(v, p)) if v.size else float("nan")) for p in HU_PERCENTILES}
    stats["lesion_hu_mean"] = mean(lesion)
    stats["lesion_hu_sd"] = float(v.std()) if v.size else float("nan")
    stats["ggo_hu_mean"] = mean(ggo)
    stats["consolidation_hu_mean"] = mean(cons)
    return stats


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis that runs superior-inferior in world space (slices are taken across it)."""
    codes = nib.aff2axcodes(affine)
    return next(axis for axis, code in enumerate(codes) if code in ("S", "I"))


def _zones(region: np.ndarray, lesion: np.ndarray, affine: np.ndarray) -> dict[str, float]:
    axis = axial_axis(affine)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    in_plane = [spacing[a] for a in range(3) if a != axis]
    counts = np.zeros((2, 2))  # [peripheral?][lesion?]
    for k in range(region.shape[axis]):
        reg = np.take(region, k, axis=axis)
        if not reg.any():
            continue
        # Zero padding: a region touching the array border still has its edge there.
        depth = ndimage.distance_transform_edt(np.pad(reg, 1), sampling=in_plane)[1:-1, 1:-1]
        peripheral = reg & (depth <= PERIPHERAL_DEPTH * depth.max())
        les = np.take(lesion, k, axis=axis)
        for zone, zone_mask in ((1, peripheral), (0, reg & ~peripheral)):
            counts[zone, 0] += np.count_nonzero(zone_mask)
            counts[zone, 1] += np.count_nonzero(zone_mask & les)
    return {
        "peripheral_lesion_pct": _pct(counts[1, 1], counts[1, 0]),
        "central_lesion_pct": _pct(counts[0, 1], counts[0, 0]),
        "peripheral_lesion_share_pct": _pct(counts[1, 1], counts[:, 1].sum()),
    }


def write_data_dictionary(folder: str | Path, stem: str = "features") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.json`` documenting every phenotype column; returns both paths."""
    folder = Path(folder)
    md_path, json_path = folder / f"{stem}.md", folder / f"{stem}.json"
    lines = [
        "# Lesion phenotype data dictionary",
        "",
        "Written by `ssinfnet phenotypes`; definitions in `ssinfnet/analysis/phenotypes.py`.",
        "Identifier columns: `patient_id`, `scan_id`, `n_scans` (scans of the patient in the input).",
        "",
        "| feature | unit | group | formula |",
        "|---|---|---|---|",
        *[f"| `{f.name}` | {f.unit} | {f.group} | {f.formula} |" for f in FEATURES.values()],
        "",
        _conventions(),
    ]
    write_text(md_path, "\n".join(lines) + "\n")
    write_json(json_path, {"features": [asdict(f) for f in FEATURES.values()], "conventions": _conventions()})
    return md_path, json_path


def _conventions() -> str:
    doc = __doc__ or ""
    return doc[doc.index("Conventions shared") :].strip()

