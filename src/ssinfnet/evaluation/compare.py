"""Compare evaluations of several models on the same images: paired t-test and Wilcoxon signed-rank.

The first evaluation is the reference; every other model is tested against it, image by image
(pairs where either value is NaN are dropped). The table is shaped like the paper's Tables II/III:
one row per class and metric, mean and 95% CI error per model, ``*`` where the paired t-test gives
p < 0.05 and ``^`` where the Wilcoxon test does, with the p-values in their own columns.
(The authors' code used an unpaired Mann-Whitney test; on the same images a paired test is right.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ssinfnet import fileio
from ssinfnet.errors import InputError
from ssinfnet.evaluation.evaluate import ID_COLUMNS, TRUTH_LESION_FRACTION, LESION_FRACTION
from ssinfnet.evaluation.metrics import mean_ci

SIGNIFICANCE = 0.05
#: Table order of the metric groups: the paper's Table III order, then the single-stage protocols.
GROUP_ORDER = ("GGO", "consolidation", "background", "Overall", "infection", "infnet")
#: Per-image columns that describe the slice rather than a model's quality.
NOT_COMPARED = {TRUTH_LESION_FRACTION, LESION_FRACTION}


@dataclass
class Comparison:
    models: list[str]
    paths: list[str]
    images: int
    rows: list[dict[str, Any]]
    """One per (group, metric): {"group", "metric", "models": {name: summary}, "tests": {name: test}}."""

    @property
    def reference(self) -> str:
        return self.models[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "comparison", "reference": self.reference, "models": self.models,
            "evaluations": self.paths, "images": self.images, "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Comparison":
        return cls(models=data["models"], paths=data["evaluations"], images=data["images"], rows=data["rows"])


def read_per_image(eval_dir: str | Path) -> pd.DataFrame:
    path = Path(eval_dir) / "per_image.csv"
    if not path.is_file():
        raise InputError("not an evaluation folder (no per_image.csv)", eval_dir)
    table = pd.read_csv(path, dtype={"id": str, "label": str, "group": str})
    if table["id"].duplicated().any():
        raise InputError("image ids are not unique, so images cannot be paired", path)
    return table.set_index("id")


def compare(eval_dirs: list[str | Path], names: list[str] | None = None) -> Comparison:
    """Paired tests of every evaluation against the first, on the metrics they all have."""
    if len(eval_dirs) < 2:
        raise InputError("compare needs at least two evaluation folders")
    names = names or _model_names(eval_dirs)
    tables = [read_per_image(path) for path in eval_dirs]
    reference_ids = set(tables[0].index)
    for path, table in zip(eval_dirs[1:], tables[1:]):
        if set(table.index) != reference_ids:
            missing, extra = len(reference_ids - set(table.index)), len(set(table.index) - reference_ids)
            raise InputError(
                f"image set differs from {eval_dirs[0]} ({missing} missing, {extra} extra): "
                "models must be evaluated on the same images", path,
            )
    order = sorted(reference_ids)
    tables = [table.loc[order] for table in tables]
    columns = [c for c in tables[0].columns if c not in ID_COLUMNS and c not in NOT_COMPARED
               and all(c in t.columns for t in tables)]
    rows = []
    for column in sorted(columns, key=_column_order):
        group, _, metric = column.rpartition(".")
        values = [table[column].to_numpy(dtype=float) for table in tables]
        rows.append({
            "group": group, "metric": metric,
            "models": {name: mean_ci(v).as_dict() for name, v in zip(names, values)},
            "tests": {name: paired_tests(values[0], v) for name, v in zip(names[1:], values[1:])},
        })
    return Comparison(models=names, paths=[str(p) for p in eval_dirs], images=len(order), rows=rows)


def paired_tests(reference: np.ndarray, other: np.ndarray) -> dict[str, float | int]:
    """Paired t-test and Wilcoxon signed-rank p-values of ``other`` against ``reference``."""
    keep = ~(np.isnan(reference) | np.isnan(other))
    a, b = reference[keep], other[keep]
    result: dict[str, float | int] = {"pairs": int(keep.sum()), "mean_difference": float("nan"),
                                      "t_p": float("nan"), "wilcoxon_p": float("nan")}
    if a.size < 2:
        return result
    difference = b - a
    result["mean_difference"] = float(difference.mean())
    if not difference.any():  # identical scores: no evidence of any difference
        result["t_p"] = result["wilcoxon_p"] = 1.0
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant non-zero difference: t is infinite
        result["t_p"] = float(stats.ttest_rel(b, a).pvalue)
    result["wilcoxon_p"] = float(stats.wilcoxon(b, a).pvalue)
    return result


def _column_order(column: str) -> int:
    """Position of the column's group in GROUP_ORDER (the sort is stable: metrics keep CSV order)."""
    group = column.rpartition(".")[0]
    return GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)


def _model_names(eval_dirs: list[str | Path]) -> list[str]:
    names = [Path(p).resolve().name for p in eval_dirs]
    if len(set(names)) < len(names):  # same folder name in different places: add the parent
        names = [f"{Path(p).resolve().parent.name}/{Path(p).resolve().name}" for p in eval_dirs]
    if len(set(names)) < len(names):
        raise InputError("the same evaluation folder was given twice")
    return names


# --- tables -----------------------------------------------------------------------------------

def table_rows(comparison: Comparison) -> list[dict[str, Any]]:
    """Flat rows for CSV: mean and error per model, p-values per tested model."""
    flat = []
    for row in comparison.rows:
        out: dict[str, Any] = {"group": row["group"], "metric": row["metric"]}
        for name in comparison.models:
            out[f"{name} mean"] = row["models"][name]["mean"]
            out[f"{name} error"] = row["models"][name]["ci95"]
        for name, test in row["tests"].items():
            out[f"{name} t-test p"] = test["t_p"]
            out[f"{name} Wilcoxon p"] = test["wilcoxon_p"]
        flat.append(out)
    return flat


def table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of the paper-style table (shared by the markdown file and the HTML report)."""
    models, tested = comparison.models, comparison.models[1:]
    header = ["Group", "Metric"] + [f"{m} mean ± error" for m in models]
    header += [f"{m}: t-test p" for m in tested] + [f"{m}: Wilcoxon p" for m in tested]
    rows = []
    for row in comparison.rows:
        cells = [row["group"], row["metric"]]
        for name in models:
            summary = row["models"][name]
            cells.append(format_mean(summary["mean"], summary["ci95"]) + significance_marks(row["tests"].get(name)))
        cells += [format_p(row["tests"][m]["t_p"]) for m in tested]
        cells += [format_p(row["tests"][m]["wilcoxon_p"]) for m in tested]
        rows.append(cells)
    return header, rows


def legend(comparison: Comparison) -> str:
    return (f"Reference: {comparison.reference}; {comparison.images} images, paired by image id. "
            f"Error = 1.96 SE (95% CI). * paired t-test p < {SIGNIFICANCE}, ^ Wilcoxon signed-rank "
            f"p < {SIGNIFICANCE}, against the reference.")


def markdown_table(comparison: Comparison) -> str:
    header, rows = table(comparison)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n\n" + legend(comparison) + "\n"


def significance_marks(test: dict[str, Any] | None) -> str:
    if test is None:
        return ""
    marks = "*" if test["t_p"] < SIGNIFICANCE else ""
    return marks + ("^" if test["wilcoxon_p"] < SIGNIFICANCE else "")


def format_mean(mean: float, error: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(error) else f"{mean:.3f} ± {error:.3f}"


def format_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def write_comparison(out_dir: str | Path, comparison: Comparison, overwrite: bool = False) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", out_dir)
    with fileio.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        fileio.write_json(tmp / "comparison.json", comparison.as_dict())
        fileio.write_csv(tmp / "comparison.csv", table_rows(comparison))
        fileio.write_text(tmp / "comparison.md", markdown_table(comparison))
    return out_dir
