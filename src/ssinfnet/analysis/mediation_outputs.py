"""Write a mediation analysis as one set: ``mediation.csv``, ``mediation.json``, ``forest.png``, ``summary.md``.

The folder is written beside its final place and renamed onto it in one step (:func:`ssinfnet.fileio.atomic_dir`),
so a killed run leaves the previous folder whole or none, never old and new files mixed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ssinfnet.analysis.covariates import describe
from ssinfnet.analysis.forest import forest_plot
from ssinfnet.analysis.mediation import COMMON, COMPLETE, IMPUTED, MediationResult, TRANSFORMS, p_value_floor
from ssinfnet.errors import InputError
from ssinfnet.fileio import atomic_dir, write_csv, write_json, write_text

MEDIATION_JSON = "mediation.json"
FOREST_PNG = "forest.png"
SUMMARY_EFFECTS = (("acme", "ACME (indirect)"), ("ade", "ADE (direct)"), ("total", "Total"), ("prop_mediated", "Prop. mediated"))
SHORT = {COMPLETE: "CC", COMMON: "common CC", IMPUTED: "MI"}
ASSUMPTIONS = [
    "Sequential ignorability (not testable from these data): given the covariates that entered each model "
    "(listed per analysis below), no unmeasured confounding of exposure-mediator, exposure-outcome or "
    "mediator-outcome relations, and no mediator-outcome confounder that the exposure itself affects.",
    "Temporal order: the exposure comes before the mediator, and the mediator before the outcome. A mediator "
    "measured while the outcome is already under way (e.g. a lab value at admission beside the severity "
    "grade) may be a consequence of the outcome (reverse causation); then an indirect effect is not a "
    "mechanism, only an association.",
    "Wording: an ACME whose CI excludes 0 with q < 0.05 is *consistent with mediation* under these "
    "assumptions; it does not show that the mediator carries the effect.",
]


def write_outputs(result: MediationResult, out_dir: str | Path, provenance: dict, overwrite: bool = False) -> dict[str, Path]:
    """``provenance``: the command, input files and data-preparation reports (clinical parsing, join, filters)."""
    out_dir = Path(out_dir)
    names = ("mediation.csv", MEDIATION_JSON, FOREST_PNG, "summary.md")
    table = result.table()
    try:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            write_csv(tmp / "mediation.csv", table.to_dict("records"), list(table.columns))
            write_json(tmp / MEDIATION_JSON, {
                "spec": dataclasses.asdict(result.spec),
                "outcome_type": result.outcome_type,
                "assumptions": ASSUMPTIONS,
                "analyses": result.analyses,
                "missingness_by_outcome": result.missingness,
                "results": result.rows,  # the key the HTML report (report/html.py) tabulates
                "notes": result.notes,
                **provenance,
            })
            forest_plot(_forest_table(table), tmp / FOREST_PNG, _forest_title(result))
            write_text(tmp / "summary.md", summary_markdown(result, provenance))
    except FileExistsError:
        raise InputError("already exists (pass --overwrite to replace it)", out_dir) from None
    return {name: out_dir / name for name in names}


def _forest_table(table: pd.DataFrame) -> pd.DataFrame:
    """One forest row per mediator and analysis, a mediator's CC and MI rows next to each other."""
    order = {COMPLETE: 0, IMPUTED: 1, COMMON: 2}
    mediators = list(dict.fromkeys(table["mediator"]))
    table = table.assign(_m=table["mediator"].map(mediators.index), _a=table["analysis"].map(order))
    table = table.sort_values(by=["_m", "_a"], kind="stable")
    table = pd.concat([table[table["_a"] < 2], table[table["_a"] == 2]]).drop(columns=["_m", "_a"])
    table["mediator"] = table["mediator"] + " [" + table["analysis"].map(SHORT) + "]"
    return table


def _forest_title(result: MediationResult) -> str:
    spec = result.spec
    contrast = f"{_fmt(spec.contrast[0])} -> {_fmt(spec.contrast[1])}" if spec.contrast else "contrast in summary.md"
    return f"{spec.exposure} ({contrast}) -> mediator -> {spec.outcome}\nCC complete cases, MI multiple imputation"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def format_p(p: float, draws: int) -> str:
    """A simulation p-value; 0 means no draw crossed zero, i.e. p < 2/draws, and prints so."""
    return f"< {_fmt(p_value_floor(draws))}" if p == 0 else _fmt(p)


def _cell(row: pd.Series) -> str:
    return f"{_fmt(row['estimate'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"


def _reading(acme: pd.Series, alpha: float) -> str:
    excludes_zero = acme["ci_low"] > 0 or acme["ci_high"] < 0
    if excludes_zero and acme["q_value"] < alpha:
        return "consistent with mediation"
    return "CI excludes 0, not after FDR" if excludes_zero else "no indirect effect detected"


def summary_markdown(result: MediationResult, provenance: dict) -> str:
    spec, table = result.spec, result.table()
    lines = [f"# Mediation analysis: {spec.exposure} -> mediator -> {spec.outcome}", "",
             f"Command: `{provenance.get('command', '')}`", "", "## How to read these results", ""]
    lines += [f"- {text}" for text in ASSUMPTIONS] + _method_lines(result)
    lines += ["", "## Data", ""] + _data_lines(provenance)
    lines += ["", "## Missing mediator values by outcome level", ""] + _missingness_lines(result)
    lines += ["", "## Rows and covariates per analysis", ""] + _analysis_lines(result)
    for model, rows in table.groupby("outcome_model", sort=False):
        lines += ["", f"## Outcome model: {model}", ""] + _side_by_side(result, rows) + [""] + _ranking(result, rows)
    lines += ["", "## Notes", "",
              "- The proportion mediated is unstable when the total effect is near zero (its CI is then very wide)."]
    if result.outcome_type == "ordinal":
        lines.append("- Ordinal outcome: statsmodels' Mediation needs a one-number prediction per subject, so the "
                     "outcome is analysed as a linear score (equally spaced levels assumed) and as one logit model "
                     "per cut P(outcome >= c); there is no single proportional-odds mediation estimate.")
    lines += [f"- {note}" for note in result.notes]
    lines.append("")
    return "\n".join(lines)


def _method_lines(result: MediationResult) -> list[str]:
    spec = result.spec
    contrast = (f"`{spec.exposure}` = {_fmt(spec.contrast[0])} vs {_fmt(spec.contrast[1])} (given)" if spec.contrast
                else f"`{spec.exposure}` " + ("0 vs 1" if _binary_exposure(result) else
                                            "mean vs mean + 1 SD of the rows of each analysis (values per analysis below)"))
    lines = [
        f"- Exposure contrast: {contrast}; every effect is the change in the outcome when the exposure moves from "
        "the first to the second value.",
        f"- Outcome `{spec.outcome}` ({result.outcome_type}).",
        f"- Rows: **{COMPLETE}** (CC) uses each mediator's own complete cases, so mediators differ in rows and "
        f"are not comparable with each other; **{COMMON}** uses the rows complete for every mediator and is the "
        f"only analysis in which mediators are ranked; **{IMPUTED}** (MI) is the sensitivity analysis for missing "
        "mediator values that depend on the outcome (missing at random given exposure, outcome and covariates, "
        "instead of completely at random).",
        f"- Method: {spec.method}, {spec.sims} simulations per analysis (for MI pooled over the imputed data sets), "
        f"seed {spec.seed}, {100 * (1 - spec.alpha):g}% percentile CIs. p-values are simulation-based: the smallest "
        "non-zero value is 2/simulations, and 0 is printed as \"< 2/simulations\". q = Benjamini-Hochberg FDR across "
        "mediators within each analysis, outcome model and effect (a p of 0 enters as 2/simulations).",
    ]
    if spec.imputations:
        lines.append(f"- Multiple imputation: {spec.imputations} data sets by chained equations (statsmodels "
                     "MICEData, predictive mean matching); the imputation model of each mediator is listed below.")
    else:
        lines.append("- Multiple imputation not run (`--imputations 0`): complete cases only.")
    lines += [f"- Mediator `{m}` transformed: {TRANSFORMS[t][0]}." for m, t in spec.transforms.items()]
    return lines


def _binary_exposure(result: MediationResult) -> bool:
    return all(tuple(a["contrast"]) == (0.0, 1.0) for a in result.analyses)


def _missingness_lines(result: MediationResult) -> list[str]:
    table = pd.DataFrame(result.missingness)
    levels = sorted(table["outcome_level"].unique())
    outcome = result.spec.outcome
    lines = ["Rows with exposure, outcome and covariates present; missing / rows (%) at each outcome level.", "",
             "| mediator | stratum | " + " | ".join(f"{outcome} = {level:g}" for level in levels) + " |",
             "|---|---|" + "---|" * len(levels)]
    for (mediator, stratum), part in table.groupby(["mediator", "stratum"], sort=False):
        by_level = part.set_index("outcome_level")
        cells = []
        for level in levels:
            if level in by_level.index:
                r = by_level.loc[level]
                cells.append(f"{r['missing']} / {r['rows']} ({100 * r['missing'] / r['rows']:.0f}%)")
            else:
                cells.append("-")
        lines.append(f"| `{mediator}` | {stratum} | " + " | ".join(cells) + " |")
    return lines


def _analysis_lines(result: MediationResult) -> list[str]:
    lines = ["| mediator | analysis | rows | exposure contrast | covariates entered; left out (why) | missing values |",
             "|---|---|---|---|---|---|"]
    for info in sorted(result.analyses, key=lambda a: (result.spec.mediators.index(a["mediator"]), a["analysis"] == IMPUTED)):
        if info["analysis"] == IMPUTED:
            rows = info["rows"]
            left = "; ".join(f"{k}: {n} rows" for k, n in info["left_out_levels"].items())
            missing = (f"{info['imputed']} imputed of {rows}, {info['imputations']} data sets; model "
                       f"`{info['imputation_model']}`" + (f"; left out, never measured there: {left}" if left else ""))
        else:
            rows = info["used"]
            missing = f"{info['dropped']} of {info['rows']} rows dropped: " + (
                ", ".join(f"{c} {n}" for c, n in info["missing_by_column"].items()) or "none missing")
        low, high = info["contrast"]
        lines.append(f"| `{info['mediator']}` | {info['analysis']} | {rows} | {_fmt(low)} -> {_fmt(high)} | "
                     f"{describe(info['covariates'])} | {missing} |")
    return lines


def _effect_line(result: MediationResult, mediator: str, part: pd.DataFrame) -> str:
    by_effect = part.set_index("effect")
    acme = by_effect.loc["acme"]
    cells = [_cell(by_effect.loc[e]) for e, _ in SUMMARY_EFFECTS]
    return (f"| `{mediator}` | {part['analysis'].iloc[0]} | {int(acme['n'])} | " + " | ".join(cells)
            + f" | {format_p(acme['p_value'], int(acme['draws']))} | {_fmt(acme['q_value'])} | "
            f"{_reading(acme, result.spec.alpha)} |")


READING = ("An indirect effect here is causal only under sequential ignorability and exposure -> mediator -> "
           "outcome temporal order (see How to read); otherwise \"consistent with mediation\" is an association:")
HEADER = ("| mediator | analysis | n | " + " | ".join(label for _, label in SUMMARY_EFFECTS)
          + " | ACME p | ACME q | reading |")
RULE = "|---|---|---|" + "---|" * (len(SUMMARY_EFFECTS) + 3)


def _side_by_side(result: MediationResult, rows: pd.DataFrame) -> list[str]:
    lines = ["Complete cases (CC) and multiple imputation (MI) side by side, each mediator on its own rows. "
             + READING, "", HEADER, RULE]
    for mediator in result.spec.mediators:
        for analysis in (COMPLETE, IMPUTED):
            part = rows[(rows["mediator"] == mediator) & (rows["analysis"] == analysis)]
            if len(part):
                lines.append(_effect_line(result, mediator, part))
    return lines


def _ranking(result: MediationResult, rows: pd.DataFrame) -> list[str]:
    common = rows[rows["analysis"] == COMMON]
    complete = rows[rows["analysis"] == COMPLETE]
    if len(result.spec.mediators) == 1:
        return ["Mediators are not ranked: a single mediator."]
    if common.empty and result.shared_complete_cases:
        common, where = complete, "the same"  # no missing mediator values: the complete cases are common
    elif common.empty:
        return ["Mediators are not ranked: no common-complete-case analysis could run (see Notes), and the CC "
                "rows above use different patients and are not comparable with each other."]
    else:
        where = "their"
    acme = common[common["effect"] == "acme"].sort_values("estimate", ascending=False)
    lines = [f"Mediators compared on {where} {int(acme['n'].iloc[0])} common complete cases, largest ACME first "
             "(the order of overlapping CIs is not established). " + READING, "", HEADER, RULE]
    lines += [_effect_line(result, m, common[common["mediator"] == m]) for m in acme["mediator"]]
    return lines


def _data_lines(provenance: dict) -> list[str]:
    lines = [f"- Table: `{provenance.get('table', '')}` ({provenance.get('rows_read', '?')} rows)."]
    clinical = provenance.get("clinical_report", {})
    if "severity_counts" in clinical:
        lines.append(f"- iCTCF severity codes: {clinical['severity_counts']}; set missing (not graded): "
                     + ", ".join(f"{k} {v['rows']}" for k, v in clinical["severity_missing"].items()) + ".")
    join = provenance.get("join")
    if join:
        lines.append(f"- Joined `{join['phenotype_table']}` on `{join['join_on']}`: {join['clinical_rows_with_phenotypes']} "
                     f"rows matched, {join['clinical_rows_without_phenotypes']} clinical rows without phenotypes, "
                     f"{join['phenotype_rows_without_clinical']} phenotype rows without clinical data.")
        if join["renamed_clinical_columns"]:
            lines.append(f"- Clinical columns renamed to avoid clashes: {join['renamed_clinical_columns']}.")
    lines += [f"- Filter `{f['filter']}`: kept {f['rows_kept']} of {f['rows_before']} rows." for f in provenance.get("filters", [])]
    return lines
