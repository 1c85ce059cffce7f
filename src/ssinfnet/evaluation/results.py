"""An evaluation as a results folder keeps it: small files next to each other, named by one stem, from
which the report redraws its tables and figures without the evaluation folder.

    <stem>.json            the evaluation's summary.json
    <stem>-roc.json        its roc.json, each curve thinned to KEPT_CURVE_POINTS points (AUCs as computed)
    <stem>-gallery/        its gallery.json and gallery/*.png (best, median and worst slices, <= 256 px)

``keep`` writes them (``reproduce`` at the end of each stage), ``restore`` lays them out as an
evaluation folder again (``scripts/regenerate_results.py``, for ``ssinfnet report``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ssinfnet import fileio
from ssinfnet.core.folders import read_json
from ssinfnet.evaluation.evaluate import ROC_JSON, SUMMARY_JSON, read_curves
from ssinfnet.evaluation.gallery import GALLERY_JSON
from ssinfnet.evaluation.roc import Roc

#: Points per kept ROC curve: enough for a 4-inch plot, a few kB per curve.
KEPT_CURVE_POINTS = 100
#: Decimals of the kept curve points.
KEPT_DECIMALS = 5


ROC_SUFFIX, GALLERY_SUFFIX = "-roc", "-gallery"


def kept_paths(folder: Path, stem: str) -> tuple[Path, Path, Path]:
    """(summary, ROC curves, gallery folder) of ``stem`` in results folder ``folder``."""
    return folder / f"{stem}.json", folder / f"{stem}{ROC_SUFFIX}.json", folder / f"{stem}{GALLERY_SUFFIX}"


def kept_stems(folder: Path) -> list[str]:
    """Stems of the evaluation summaries (``eval-*.json``) that ``folder`` keeps, sorted; not their ROC files."""
    return [path.stem for path in sorted(folder.glob("eval-*.json")) if not path.stem.endswith(ROC_SUFFIX)]


def keep(evaluation: Path, folder: Path, stem: str) -> None:
    """Copy what the report needs of evaluation folder ``evaluation`` into results folder ``folder``."""
    summary, curves, gallery = kept_paths(folder, stem)
    fileio.write_bytes(summary, (evaluation / SUMMARY_JSON).read_bytes())
    if (evaluation / ROC_JSON).is_file():
        fileio.write_json(curves, {level: _small(curve) for level, curve in read_curves(evaluation).items()})
    if (evaluation / GALLERY_JSON).is_file():  # replaced as a whole: no slice of an earlier gallery stays
        with fileio.atomic_dir(gallery, overwrite=True) as tmp:
            fileio.write_bytes(tmp / GALLERY_JSON, (evaluation / GALLERY_JSON).read_bytes())
            for entry in read_json(evaluation / GALLERY_JSON).get("items", []):
                for part in ("image", "truth", "prediction"):
                    fileio.write_bytes(tmp / entry[part], (evaluation / entry[part]).read_bytes())


def restore(folder: Path, stem: str, dest: Path) -> Path:
    """An evaluation folder at ``dest`` (new) from what ``folder`` keeps of ``stem``: the summary always,
    the ROC curves and the gallery where they were kept (the report says which are missing)."""
    summary, curves, gallery = kept_paths(folder, stem)
    if gallery.is_dir():
        shutil.copytree(gallery, dest)
    else:
        dest.mkdir(parents=True)
    shutil.copy(summary, dest / SUMMARY_JSON)
    if curves.is_file():
        shutil.copy(curves, dest / ROC_JSON)
    return dest


def _small(curve: Roc) -> dict:
    thinned = curve.thinned(KEPT_CURVE_POINTS).as_dict()
    for axis in ("fpr", "tpr"):
        thinned[axis] = [round(value, KEPT_DECIMALS) for value in thinned[axis]]
    return thinned
