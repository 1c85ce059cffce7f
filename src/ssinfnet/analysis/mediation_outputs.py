"""Write a mediation analysis: ``mediation.csv``, ``mediation.json``, ``forest.png``, ``summary.md``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from ssinfnet.analysis.forest import forest_plot
from ssinfnet.analysis.mediation import MediationResult, TRANSFORMS
from ssinfnet.fileio import write_csv, write_json, write_text

SUMMARY_EFFECTS = (("acme", "ACME (indirect)"), ("ade", "ADE (direct)"), ("total", "Total"), ("prop_mediated", "Prop. mediated"))


def write_outputs(result: MediationResult, out_dir: str | Path, provenance: dict) -> dict[str, Path]:
    """``provenance``: the command, input files and data-preparation reports (clinical parsing, join, filters)."""
    out_dir = Path(out_dir)
    table = result.table()
    paths = {name: out_dir / name for name in ("mediation.csv", "mediation.json", "forest.png", "summary.md")}
    write_csv(paths["mediation.csv"], table.to_dict("records"), list(table.columns))
    write_json(paths["mediation.json"], {
        "spec": dataclasses.asdict(result.spec),
        "outcome_type": result.outcome_type,
        "exposure_contrast": list(result.contrast),
        "complete_cases": result.cases,
        "results": result.rows,  # the key the HTML report (evaluation/report.py) tabulates
        "notes": result.notes,
        **provenance,
    })
    spec = result.spec
    forest_plot(table, paths["forest.png"],
                f"{spec.exposure} ({_fmt(result.contrast[0])} -> {_fmt(result.contrast[1])}) -> mediator -> {spec.outcome}")
    write_text(paths["summary.md"], summary_markdown(result, provenance))
    return paths


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _cell(row: pd.Series) -> str:
    return f"{_fmt(row['estimate'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"


def summary_markdown(result: MediationResult, provenance: dict) -> str:
    spec, table = result.spec, result.table()
    low, high = result.contrast
    lines = [
        f"# Mediation: {spec.exposure} -> mediator -> {spec.outcome}",
        "",
        f"Command: `{provenance.get('command', '')}`",
        "",
        f"- Exposure contrast: `{spec.exposure}` = {_fmt(low)} vs {_fmt(high)}; every effect is the change when the "
        "exposure moves from the first to the second value.",
        f"- Outcome `{spec.outcome}` ({result.outcome_type}); covariates: {', '.join(spec.covariates) or 'none'}.",
        f"- Method: {spec.method}, {spec.sims} simulations, seed {spec.seed}, {100 * (1 - spec.alpha):g}% percentile CIs. "
        f"p-values are simulation-based (resolution 2/{spec.sims}; 0 means below that); q = Benjamini-Hochberg "
        "FDR across mediators for each outcome model and effect.",
    ]
    lines += [f"- Mediator `{m}` transformed: {TRANSFORMS[t][0]}." for m, t in spec.transforms.items()]
    lines += ["", "## Data", ""] + _data_lines(provenance) + ["", "## Complete cases", "",
              "| mediator | rows | used | dropped | missing per column (a row can miss several) |", "|---|---|---|---|---|"]
    for case in result.cases:
        missing = ", ".join(f"{c}: {n}" for c, n in case["missing_by_column"].items()) or "none"
        lines.append(f"| `{case['mediator']}` | {case['rows']} | {case['used']} | {case['dropped']} | {missing} |")
    for model, rows in table.groupby("outcome_model", sort=False):
        lines += ["", f"## Outcome model: {model}", "",
                  "| mediator | " + " | ".join(label for _, label in SUMMARY_EFFECTS) + " | ACME p | ACME q |",
                  "|---|" + "---|" * (len(SUMMARY_EFFECTS) + 2)]
        for mediator, part in rows.groupby("mediator", sort=False):
            by_effect = part.set_index("effect")
            cells = [_cell(by_effect.loc[e]) for e, _ in SUMMARY_EFFECTS]
            acme = by_effect.loc["acme"]
            lines.append(f"| `{mediator}` | " + " | ".join(cells) + f" | {_fmt(acme['p_value'])} | {_fmt(acme['q_value'])} |")
    lines += ["", "## Notes", "",
              "- Causal reading assumes no unmeasured confounding of exposure-mediator, exposure-outcome and "
              "mediator-outcome relations given the covariates, and no exposure-induced mediator-outcome confounder.",
              "- The proportion mediated is unstable when the total effect is near zero (its CI is then very wide)."]
    if result.outcome_type == "ordinal":
        lines.append("- Ordinal outcome: statsmodels' Mediation needs a one-number prediction per subject, so the "
                     "outcome is analysed as a linear score (equally spaced levels assumed) and as one logit model "
                     "per cut P(outcome >= c); there is no single proportional-odds mediation estimate.")
    lines += [f"- {note}" for note in result.notes]
    lines.append("")
    return "\n".join(lines)


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
