"""Compare evaluations of several models on the same images: paired t-test and Wilcoxon signed-rank.

The first evaluation is the reference; every other model is tested against it, image by image (pairs
where either value is NaN are dropped; ``metrics.EMPTY_CLASS_RULE`` says when a value is NaN). Next to
every p-value the table prints the paired means of both models on the shared images, their mean
difference with its 95% CI, and the number of pairs, so a p-value is never set beside means of
different images. Evaluations scored under different empty-class rules (their summaries'
``scoring_rule``; none = legacy) are refused: their values mean different things.

CIs: where the images' groups (per_image.csv ``group``: scan or patient) hold several images, every mean
and mean difference gets the cluster bootstrap of ``core.metrics.mean_ci`` (groups resampled, seeded,
percentile interval); otherwise a model's mean gets mean +- 1.96 SE and a mean difference the paired
t interval. ``Comparison.ci`` records which. (The p-values still treat images as independent.)

Multiple comparisons: the tests of one table form two families, each Holm-adjusted on its own (t-test
and Wilcoxon separately, statsmodels' ``multipletests``): the *planned* comparison (the reference
against the ``planned`` model, e.g. SSInfNet vs SInfNet, every metric of the table) and the
*exploratory* rest. Significance marks use the adjusted p-values. Columns equal in every model (e.g. the
single stage's prior that every multi-stage model shares) are listed, not tested.
The table is shaped like the paper's Tables II/III; its ``Overall`` rows are the paper's (mean of the
three class means, not tested), ``image_mean`` the per-image mean that the tests use.
(The authors' code used an unpaired Mann-Whitney test; on the same images a paired test is right.)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ssinfnet import fileio
from ssinfnet.core.folders import read_csv, read_json
from ssinfnet.core.labels import CLASS_NAMES
from ssinfnet.core.metrics import (
    EMPTY_CLASS_RULE, IMAGE_MEAN, LEGACY, METRIC_NAMES, OVERALL, SCORING_RULE, ci_record, ci_text, clustered,
    mean_ci, paper_overall, rule_text,
)
from ssinfnet.errors import InputError
from ssinfnet.evaluation.evaluate import ID_COLUMNS, TRUTH_LESION_FRACTION, LESION_FRACTION, read_summary

COMPARISON_JSON = "comparison.json"
SIGNIFICANCE = 0.05
PLANNED, EXPLORATORY = "planned", "exploratory"
P_VALUES = ("t_p", "wilcoxon_p")
#: Table order of the metric groups: the paper's Table III order, then the single-stage protocols.
GROUP_ORDER = ("GGO", "consolidation", "background", OVERALL, IMAGE_MEAN, "infection", "infnet")
#: Per-image columns that describe the slice rather than a model's quality.
NOT_COMPARED = {TRUTH_LESION_FRACTION, LESION_FRACTION}
#: The headline (group, metric) of a comparison's summary table: multi-class tables have GGO rows.
PRIMARY = {"multi": (IMAGE_MEAN, "f1"), "single": ("infnet", "dice")}


@dataclass
class Comparison:
    models: list[str]
    paths: list[str]
    images: int
    rows: list[dict[str, Any]]
    """One per (group, metric): {"group", "metric", "models": {name: summary}, "tests": {name: test}}."""
    planned: str | None = None
    """The model whose comparison with the reference was planned; every other one is exploratory."""
    scoring_rule: str = SCORING_RULE
    identical: list[str] = field(default_factory=list)
    """Columns equal in every model (not tested)."""
    ci: dict[str, Any] | None = None
    """How the CIs were made (``metrics.ci_record``, method of the differences); None: before groups were used."""

    @property
    def reference(self) -> str:
        return self.models[0]

    @property
    def task(self) -> str:
        return "multi" if any(row["group"] == "GGO" for row in self.rows) else "single"

    def family(self, name: str) -> str:
        return PLANNED if name == self.planned else EXPLORATORY

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "comparison", "reference": self.reference, "models": self.models, "planned": self.planned,
            "scoring_rule": self.scoring_rule, "evaluations": self.paths, "images": self.images,
            "identical": self.identical, "ci": self.ci, "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Comparison":
        if "scoring_rule" not in data:  # written before paired means and Holm p-values existed
            from ssinfnet.evaluation.legacy import upgrade_comparison

            return upgrade_comparison(data)
        return cls(models=data["models"], paths=data["evaluations"], images=data["images"], rows=data["rows"],
                   planned=data.get("planned"), scoring_rule=data["scoring_rule"],
                   identical=data.get("identical", []), ci=data.get("ci"))


def read_per_image(eval_dir: str | Path) -> pd.DataFrame:
    path = Path(eval_dir) / "per_image.csv"
    if not path.is_file():
        raise InputError("not an evaluation folder (no per_image.csv)", eval_dir)
    table = read_csv(path, dtype={"id": str, "label": str, "group": str})
    if "id" not in table.columns:
        raise InputError("not an evaluation's per-image table (no 'id' column)", path)
    if table["id"].duplicated().any():
        raise InputError("image ids are not unique, so images cannot be paired", path)
    return table.set_index("id")


def compare(eval_dirs: list[str | Path], names: list[str] | None = None, planned: str | None = None) -> Comparison:
    """Paired tests of every evaluation against the first, on the metrics they all have; ``planned``
    names the model whose comparison with the reference was planned (the others are exploratory)."""
    if len(eval_dirs) < 2:
        raise InputError("compare needs at least two evaluation folders")
    names = names or _model_names(eval_dirs)
    if planned is not None and planned not in names[1:]:
        raise InputError(f"--planned {planned!r} is not one of the compared models: {', '.join(names[1:])}")
    rule = scoring_rule(eval_dirs)
    tables = [read_per_image(path) for path in eval_dirs]
    reference_ids = set(tables[0].index)
    for path, table in zip(eval_dirs[1:], tables[1:]):
        if set(table.index) != reference_ids:
            missing, extra = len(reference_ids - set(table.index)), len(set(table.index) - reference_ids)
            raise InputError(
                f"image set differs from {Path(eval_dirs[0]).name} ({missing} missing, {extra} extra): "
                "models must be evaluated on the same images", path,
            )
    order = sorted(reference_ids)
    tables = [table.loc[order] for table in tables]
    groups = image_groups(tables[0])
    columns = [c for c in tables[0].columns if c not in ID_COLUMNS and c not in NOT_COMPARED
               and all(c in t.columns for t in tables)]
    rows, identical, means = [], [], {}
    for column in sorted(columns, key=_column_order):
        group, _, metric = column.rpartition(".")
        values = [table[column].to_numpy(dtype=float) for table in tables]
        means[column] = {name: mean_ci(v, groups).mean for name, v in zip(names, values)}
        if all(np.isnan(v).all() for v in values):  # defined on no image (e.g. fp_area of an ever-present class)
            continue
        if all(np.array_equal(values[0], v, equal_nan=True) for v in values[1:]):
            identical.append(column)
            continue
        rows.append({
            "group": group, "metric": metric,
            "models": {name: mean_ci(v, groups).as_dict() for name, v in zip(names, values)},
            "tests": {name: paired_tests(values[0], v, groups) for name, v in zip(names[1:], values[1:])},
        })
    comparison = Comparison(models=names, paths=[Path(p).name for p in eval_dirs], images=len(order),
                            rows=insert_paper_overall(rows, means, names, len(order)), planned=planned,
                            scoring_rule=rule, identical=identical, ci=comparison_ci(groups))
    adjust(comparison)
    return comparison


def scoring_rule(eval_dirs: list[str | Path]) -> str:
    """The empty-class rule tag the evaluations share (their summaries' ``scoring_rule``; none: legacy);
    evaluations scored under different rules are refused, in one line."""
    rules = {str(path): read_summary(path).get("scoring_rule", LEGACY) for path in eval_dirs}
    if len(set(rules.values())) > 1:
        listed = ", ".join(f"{Path(path).name}: {rule}" for path, rule in rules.items())
        raise InputError(f"the evaluations were scored under different empty-class rules ({listed}); re-run "
                         f"evaluate on the older ones so that all use {SCORING_RULE}")
    return next(iter(rules.values()))


def image_groups(table: pd.DataFrame) -> list[str]:
    """Each image's group (scan or patient) from per_image.csv; its id where the column or cell is empty."""
    if "group" not in table.columns:
        return list(table.index)
    return [str(g) if isinstance(g, str) and g else i for i, g in zip(table.index, table["group"])]


def comparison_ci(groups: list[str]) -> dict[str, Any]:
    """``metrics.ci_record`` of the images, naming the paired t interval of the differences when unclustered."""
    record = ci_record(groups)
    return record if clustered(groups) else {**record, "difference": "paired t"}


def insert_paper_overall(rows: list[dict[str, Any]], means: dict[str, dict[str, float]], names: list[str],
                         images: int) -> list[dict[str, Any]]:
    """``rows`` with the paper's Overall rows (mean of the three class means per model, not tested) in
    table order; ``means``: {"<class>.<metric>": {model: mean}}, tested or not."""
    extra = []
    for metric in METRIC_NAMES:
        if all(f"{c}.{metric}" in means for c in CLASS_NAMES):
            extra.append({"group": OVERALL, "metric": metric, "tests": {}, "models": {
                name: {"mean": paper_overall({c: means[f"{c}.{metric}"][name] for c in CLASS_NAMES}),
                       "ci95": float("nan"), "n": images} for name in names}})
    return sorted(rows + extra, key=lambda row: _group_order(row["group"]))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels); NaN stays NaN and does not count in the family."""
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, np.nan)
    kept = ~np.isnan(values)
    if kept.any():
        adjusted[kept] = multipletests(values[kept], method="holm")[1]
    return adjusted.tolist()


def adjust(comparison: Comparison) -> None:
    """Holm-adjust each family's p-values (planned / exploratory, t-test and Wilcoxon separately) in place."""
    for family in (PLANNED, EXPLORATORY):
        tests = [test for row in comparison.rows for name, test in row["tests"].items()
                 if comparison.family(name) == family]
        for test in tests:
            test["family"] = family
        for key in P_VALUES:
            for test, value in zip(tests, holm([test[key] for test in tests])):
                test[f"{key}_holm"] = value


def paired_tests(reference: np.ndarray, other: np.ndarray, groups: list[str] | None = None) -> dict[str, float | int]:
    """Paired t-test and Wilcoxon signed-rank p-values of ``other`` against ``reference``, with both
    models' means on the shared images, the mean difference and its 95% CI (``difference_ci_low`` ..
    ``difference_ci_high``; ``difference_ci95`` half its width): the cluster bootstrap of ``mean_ci`` when
    ``groups`` (one per image) put several images in one group, else the paired t interval."""
    keep = ~(np.isnan(reference) | np.isnan(other))
    a, b = reference[keep], other[keep]
    nan = float("nan")
    result: dict[str, float | int] = {"pairs": int(keep.sum()), "reference_mean": nan, "mean": nan,
                                      "mean_difference": nan, "difference_ci95": nan, "difference_ci_low": nan,
                                      "difference_ci_high": nan, "t_p": nan, "wilcoxon_p": nan}
    if a.size < 2:
        return result
    difference = b - a
    mean = float(difference.mean())
    if clustered(groups):
        interval = mean_ci(other - reference, groups)  # NaN pairs are dropped, their groups kept in the decision
        half, low, high = interval.ci95, interval.ci_low, interval.ci_high
    else:
        half = float(stats.t.ppf(0.975, a.size - 1) * difference.std(ddof=1) / math.sqrt(a.size))
        low, high = mean - half, mean + half
    result.update(reference_mean=float(a.mean()), mean=float(b.mean()), mean_difference=mean,
                  difference_ci95=half, difference_ci_low=low, difference_ci_high=high)
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
    return _group_order(column.rpartition(".")[0])


def _group_order(group: str) -> int:
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
    """Flat rows for CSV: mean, error and n per model; per tested model the paired values and p-values."""
    flat = []
    for row in comparison.rows:
        out: dict[str, Any] = {"group": row["group"], "metric": row["metric"]}
        for name in comparison.models:
            for key, label in (("mean", "mean"), ("ci95", "error"), ("n", "n")):
                out[f"{name} {label}"] = row["models"][name][key]
        for name in comparison.models[1:]:
            test = row["tests"].get(name, {})
            for key in ("family", "pairs", "reference_mean", "mean", "mean_difference", "difference_ci95",
                        "difference_ci_low", "difference_ci_high", "t_p", "t_p_holm", "wilcoxon_p", "wilcoxon_p_holm"):
                out[f"{name} {key}"] = test.get(key, "")
        flat.append(out)
    return flat


def table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of the paper-style table (shared by the markdown file and the HTML report)."""
    models, tested = comparison.models, comparison.models[1:]
    header = ["Group", "Metric"] + [f"{m} mean ± error (n)" for m in models]
    for m in tested:
        header += [f"{m} vs {comparison.reference} ({comparison.family(m)}): paired means, Δ [95% CI], n",
                   f"{m}: t-test p (Holm)", f"{m}: Wilcoxon p (Holm)"]
    rows = []
    for row in comparison.rows:
        cells = [row["group"], row["metric"]]
        for name in models:
            summary = row["models"][name]
            cells.append(format_summary(summary, comparison.images) + significance_marks(row["tests"].get(name)))
        for name in tested:
            test = row["tests"].get(name)
            cells += ["", "", ""] if test is None else [
                format_paired(test), format_p_pair(test, "t_p"), format_p_pair(test, "wilcoxon_p")]
        rows.append(cells)
    return header, rows


def summary_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """One row per model: the table's headline metrics, and the primary metric's paired comparison with
    the reference (difference, 95% CI, Holm-adjusted p, family)."""
    primary = PRIMARY[comparison.task]
    shown = ([("infnet", "dice"), ("infection", "f1")] if comparison.task == "single" else
             [("GGO", "f1"), ("consolidation", "f1"), (OVERALL, "f1"), (IMAGE_MEAN, "f1")])
    rows_by_key = {(row["group"], row["metric"]): row for row in comparison.rows}
    shown = [key for key in shown if key in rows_by_key]
    label = f"{primary[0]}.{primary[1]}"
    header = ["Model"] + [f"{g} {m}" for g, m in shown] + [
        f"{label}: Δ vs {comparison.reference} [95% CI], n", "t-test p (Holm)", "Wilcoxon p (Holm)", "comparison"]
    out = []
    for name in comparison.models:
        cells = [name] + [format_summary(rows_by_key[key]["models"][name], comparison.images) for key in shown]
        test = rows_by_key[primary]["tests"].get(name) if primary in rows_by_key else None
        if test is None:
            cells += ["reference", "", "", ""]
        else:
            cells += [format_difference(test), format_p_pair(test, "t_p"), format_p_pair(test, "wilcoxon_p"),
                      test.get("family", "")]
        out.append(cells)
    return header, out


def legend(comparison: Comparison) -> str:
    families = (f"Planned comparison: {comparison.reference} vs {comparison.planned}; every other test is "
                "exploratory. " if comparison.planned else "No comparison was declared planned: every test is "
                                                            "exploratory. ")
    rule = rule_text(comparison.scoring_rule)
    if comparison.scoring_rule != SCORING_RULE and all(
            s["n"] == comparison.images for row in comparison.rows for s in row["models"].values()):
        rule = (f"{EMPTY_CLASS_RULE} (These values were scored under an earlier rule, but every image holds every "
                "class scored here, so the two rules give the same values.)")
    text = (f"Reference: {comparison.reference}; {comparison.images} images, paired by image id. "
            f"Error: {ci_text(comparison.ci)}; Δ: {difference_ci_text(comparison.ci)}. (n) = images with a value "
            f"where fewer than all. {families}"
            "Holm-adjusted p-values in brackets, per family (planned / exploratory), t-test and Wilcoxon "
            f"separately; * adjusted t-test p < {SIGNIFICANCE}, ^ adjusted Wilcoxon p < {SIGNIFICANCE}. "
            "Paired means (reference vs model) are on the n images where both have a value; Δ = model − "
            "reference. "
            f"Overall = the paper's (mean of the three class means), not tested; {IMAGE_MEAN} = per-image mean "
            f"of the classes present (what the tests use). Empty classes: {rule}")
    if comparison.identical:
        text += " Equal in every model, not tested: " + ", ".join(comparison.identical) + "."
    return text


def difference_ci_text(record: dict[str, Any] | None) -> str:
    if record and record.get("method") == "cluster bootstrap":
        return "the same cluster bootstrap of the paired differences"
    return "paired t 95% CI"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows]) + "\n"


def markdown_table(comparison: Comparison) -> str:
    return (markdown(*summary_table(comparison)) + "\n" + markdown(*table(comparison)) + "\n"
            + legend(comparison) + "\n")


def significance_marks(test: dict[str, Any] | None) -> str:
    if test is None:
        return ""
    marks = "*" if test.get("t_p_holm", float("nan")) < SIGNIFICANCE else ""
    return marks + ("^" if test.get("wilcoxon_p_holm", float("nan")) < SIGNIFICANCE else "")


def format_mean(mean: float, error: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if math.isnan(error) else f"{mean:.3f} ± {error:.3f}"


def format_summary(summary: dict[str, Any], images: int) -> str:
    text = format_mean(summary["mean"], summary["ci95"])
    return text if summary.get("n", images) == images else f"{text} (n={summary['n']})"


def format_difference(test: dict[str, Any]) -> str:
    difference, error = test["mean_difference"], test.get("difference_ci95", float("nan"))
    if math.isnan(difference):
        return f"n/a, n={test['pairs']}"
    low, high = test.get("difference_ci_low", difference - error), test.get("difference_ci_high", difference + error)
    interval = "" if math.isnan(low) or math.isnan(high) else f" [{low:+.3f}, {high:+.3f}]"
    return f"{difference:+.3f}{interval}, n={test['pairs']}"


def format_paired(test: dict[str, Any]) -> str:
    """"reference vs model, Δ [CI], n" (a paired mean that cannot be known prints as n/a)."""
    means = [test.get("reference_mean", float("nan")), test.get("mean", float("nan"))]
    if all(math.isnan(m) for m in means):
        return "Δ " + format_difference(test)
    return " vs ".join("n/a" if math.isnan(m) else f"{m:.3f}" for m in means) + ", Δ " + format_difference(test)


def format_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_p_pair(test: dict[str, Any], key: str) -> str:
    return f"{format_p(test[key])} ({format_p(test.get(f'{key}_holm', float('nan')))})"


def is_comparison(folder: Path) -> bool:
    return (Path(folder) / COMPARISON_JSON).is_file()


def read_comparison(folder: str | Path) -> Comparison:
    return Comparison.from_dict(read_json(Path(folder) / COMPARISON_JSON))


def write_comparison(out_dir: str | Path, comparison: Comparison, overwrite: bool = False) -> Path:
    out_dir = Path(out_dir)
    fileio.refuse_existing(out_dir, overwrite)
    with fileio.atomic_dir(out_dir, overwrite=overwrite) as tmp:
        fileio.write_json(tmp / COMPARISON_JSON, comparison.as_dict())
        fileio.write_csv(tmp / "comparison.csv", table_rows(comparison))
        fileio.write_text(tmp / "comparison.md", markdown_table(comparison))
    return out_dir
