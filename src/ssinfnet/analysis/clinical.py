"""Clinical tables: the iCTCF ``All_Patients.csv`` reader and a generic CSV reader with a column mapping.

iCTCF parsing rules (also returned by :func:`parsing_rules`, and written next to every analysis):

- ``Age`` -> ``age`` (years), ``Body temperature`` -> ``temperature`` (deg C), ``Gender`` -> ``sex``
  (Male/Female as given), ``Hospital`` -> ``hospital``, ``ID`` -> ``patient_id``.
- ``Morbidity outcome`` -> ``severity``: Control, Mild, Regular = 0; Severe = 1; Critically ill = 2 (the
  authors' coding); ``severe`` = 1 when severity >= 1 else 0. Not graded, so severity is missing and
  the count reported: "Suspected" and "Suspected (COVID-19-confirmed later)" (no severity recorded),
  "Control (Community-acquired pneumonia)" (non-COVID pneumonia, not a COVID-19 grade; coded 0 only
  with ``include_cap_controls=True``), and empty cells. Any other value is an input error (a different
  file version).
- ``Underlying diseases`` (free text): "No" (any case) -> no disease (``underlying_any`` = 0, every
  category 0); empty or "N/A" -> missing; any other text -> ``underlying_any`` = 1 and each category
  column is 1 when one of its patterns occurs anywhere in the lower-cased text. Matching the whole
  text (not comma-split items) also catches entries with missing or non-ASCII separators, e.g.
  "HypertensionDiabetes" or "Hypertension、Diabetes". Categories and patterns: see
  :data:`DISEASE_PATTERNS` (hypertension, diabetes, cardiovascular, cerebrovascular, chronic_lung,
  chronic_kidney, chronic_liver, cancer, dyslipidemia).
- ``Mortality outcome`` -> ``deceased`` (Deceased 1, Cured 0, Unknown missing); ``SARS-CoV-2 nucleic
  acids`` -> ``pcr_positive`` and ``Computed tomography (CT)`` -> ``ct_positive`` (Positive 1,
  Negative 0, N/A missing).
- The 77 lab columns keep their iCTCF names (e.g. ``LY`` lymphocyte count 10^9/L, ``LYP`` lymphocyte %,
  ``CRP`` C-reactive protein mg/L) and are numeric; empty and "N/A" are missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ssinfnet.core.folders import read_csv, read_text
from ssinfnet.errors import InputError

#: Cells that mean "missing" in every table we read.
MISSING_TOKENS = ("", "N/A", "NA", "n/a", "na", "NaN", "nan", "null", "NULL", "None", ".")

ICTCF_REQUIRED = ("ID", "Hospital", "Age", "Gender", "Underlying diseases", "Morbidity outcome")
ICTCF_RENAME = {"ID": "patient_id", "Hospital": "hospital", "Age": "age", "Gender": "sex",
                "Body temperature": "temperature"}
ICTCF_CLINICAL = ("ID", "Hospital", "Age", "Gender", "Body temperature", "Underlying diseases",
                  "SARS-CoV-2 nucleic acids", "Computed tomography (CT)", "Morbidity outcome", "Mortality outcome")

SEVERITY_CODES = {"Control": 0, "Mild": 0, "Regular": 0, "Severe": 1, "Critically ill": 2}
CAP_CONTROL = "Control (Community-acquired pneumonia)"
UNGRADED = {
    "Suspected": "suspected case, no severity recorded",
    "Suspected (COVID-19-confirmed later)": "confirmed later, no severity recorded",
    CAP_CONTROL: "non-COVID community-acquired pneumonia, not a COVID-19 severity grade",
}
NO_DISEASE = "no"

#: Underlying-disease categories: a category is present when any pattern occurs in the lower-cased text.
DISEASE_PATTERNS: dict[str, tuple[str, ...]] = {
    "hypertension": ("hypertens",),
    "diabetes": ("diabet",),
    "cardiovascular": ("coronary", "heart", "cardi", "angina", "myocardial", "arrhythmi", "fibrillation",
                       "atrial flutter", "valv", "pacemaker", "premature ventricular"),
    "cerebrovascular": ("cerebral infarction", "cerebral hemorrhage", "lacunar", "stroke", "brain stem hemorrhage",
                        "cerebrovascular"),
    "chronic_lung": ("chronic obstructive", "copd", "bronchitis", "emphysema", "asthma", "bronchiect", "interstitial",
                     "pulmonary fibrosis", "tuberculosis", "basic lung disease"),
    "chronic_kidney": ("renal insufficiency", "renal failure", "uremia", "kidney disease", "nephrosis", "nephritis",
                       "nephropathy", "dialysis"),
    "chronic_liver": ("hepatitis", "cirrhosis", "fatty liver", "hepatic insufficiency", "liver function", "liver failure"),
    "cancer": ("cancer", "carcinoma", "leukemia", "leukaemia", "lymphoma", "myeloma", "malignan", "metasta", "tumor",
               "tumour"),
    "dyslipidemia": ("hyperlipid", "hyperlipemia", "hypertriglycerid", "hypercholesterol"),
}


@dataclass
class ClinicalTable:
    frame: pd.DataFrame
    source: str
    report: dict = field(default_factory=dict)
    """What was parsed and what was set missing, with counts (JSON-serialisable)."""


def parsing_rules() -> list[str]:
    """The iCTCF parsing rules, one line each, for reports and ``ssinfnet clinical``."""
    rules = [
        "severity: " + ", ".join(f"{k} = {v}" for k, v in SEVERITY_CODES.items()) + "; severe = 1 if severity >= 1",
        *[f"severity missing for {k!r}: {why}" for k, why in UNGRADED.items()],
        "severity missing for empty cells; any other morbidity value is an input error",
        "underlying_any: 'No' (any case) = 0; empty or N/A = missing; other text = 1",
        *[f"{name}: text contains any of {', '.join(repr(p) for p in pats)}" for name, pats in DISEASE_PATTERNS.items()],
        "deceased: Deceased = 1, Cured = 0, Unknown = missing",
        "pcr_positive, ct_positive: Positive = 1, Negative = 0, N/A = missing",
        f"lab values: numeric, missing tokens {', '.join(repr(t) for t in MISSING_TOKENS)}",
    ]
    return rules


def _read_csv(path: Path) -> pd.DataFrame:
    return read_csv(path, dtype=str, keep_default_na=False)


def is_ictcf(columns) -> bool:
    return set(ICTCF_REQUIRED) <= set(columns)


def read_ictcf(path: str | Path, include_cap_controls: bool = False) -> ClinicalTable:
    """The iCTCF table parsed by the rules in this module's docstring."""
    path = Path(path)
    raw = _read_csv(path)
    missing_cols = [c for c in ICTCF_REQUIRED if c not in raw.columns]
    if missing_cols:
        raise InputError(f"not the iCTCF table: missing columns {missing_cols}", path)
    raw = raw.apply(lambda col: col.str.strip())
    out = raw[[c for c in ICTCF_RENAME if c in raw.columns]].rename(columns=ICTCF_RENAME)
    out = out.replace(list(MISSING_TOKENS), np.nan)
    for col in ("age", "temperature"):
        if col in out:
            out[col] = _numeric(out[col], col, path)
    morbidity = raw["Morbidity outcome"]
    codes = dict(SEVERITY_CODES, **({CAP_CONTROL: 0} if include_cap_controls else {}))
    unknown = sorted(set(morbidity) - set(SEVERITY_CODES) - set(UNGRADED) - {""})
    if unknown:
        raise InputError(f"unknown 'Morbidity outcome' values {unknown} (expected {sorted([*SEVERITY_CODES, *UNGRADED])})", path)
    out["morbidity"] = morbidity.replace("", np.nan)
    out["severity"] = morbidity.map(codes).astype(float)
    out["severe"] = (out["severity"] >= 1).astype(float).where(out["severity"].notna())
    diseases = _parse_diseases(raw["Underlying diseases"])
    out = pd.concat([out, diseases], axis=1)
    out["deceased"] = _binary(raw.get("Mortality outcome"), {"Deceased": 1, "Cured": 0})
    out["pcr_positive"] = _binary(raw.get("SARS-CoV-2 nucleic acids"), {"Positive": 1, "Negative": 0})
    out["ct_positive"] = _binary(raw.get("Computed tomography (CT)"), {"Positive": 1, "Negative": 0})
    labs = [c for c in raw.columns if c not in ICTCF_CLINICAL]
    for lab in labs:
        out[lab] = _numeric(raw[lab].replace(list(MISSING_TOKENS), np.nan), lab, path)
    report = {
        "rows": len(out),
        "morbidity_counts": {str(k): int(v) for k, v in morbidity.replace("", "(empty)").value_counts().items()},
        "severity_counts": {str(int(k)): int(v) for k, v in out["severity"].value_counts().sort_index().items()},
        "severity_missing": {
            **{k: {"rows": int((morbidity == k).sum()), "reason": why} for k, why in UNGRADED.items()
               if not (include_cap_controls and k == CAP_CONTROL)},
            "(empty)": {"rows": int((morbidity == "").sum()), "reason": "no morbidity outcome"},
        },
        "underlying_disease_counts": {c: int(diseases[c].sum()) for c in diseases},
        "underlying_disease_missing": int(diseases["underlying_any"].isna().sum()),
        "lab_missing": {lab: int(out[lab].isna().sum()) for lab in labs},
        "include_cap_controls": include_cap_controls,
        "parsing_rules": parsing_rules(),
    }
    return ClinicalTable(out, str(path), report)


def _numeric(col: pd.Series, name: str, path: Path) -> pd.Series:
    values = pd.to_numeric(col, errors="coerce")
    bad = col[values.isna() & col.notna()]
    if len(bad):
        raise InputError(f"column {name!r}: non-numeric value {bad.iloc[0]!r} in {len(bad)} rows", path)
    return values


def _binary(col: pd.Series | None, codes: dict[str, int]) -> pd.Series | float:
    return np.nan if col is None else col.map(codes).astype(float)


def _parse_diseases(text: pd.Series) -> pd.DataFrame:
    lower = text.fillna("").str.strip().str.lower()
    missing = lower.isin([t.lower() for t in MISSING_TOKENS])
    none = lower == NO_DISEASE
    out = pd.DataFrame(index=text.index)
    out["underlying_any"] = (~none).astype(float)
    for name, patterns in DISEASE_PATTERNS.items():
        regex = "|".join(re.escape(p) for p in patterns)
        out[name] = lower.str.contains(regex, regex=True).astype(float)
    return out.mask(missing)


def parse_mapping(items: list[str] | None = None, mapping_file: str | Path | None = None) -> dict[str, str]:
    """``{analysis name: source column}`` from ``name=Column`` items and/or a YAML/JSON file of the same."""
    mapping: dict[str, str] = {}
    if mapping_file is not None:
        mapping_file = Path(mapping_file)
        try:
            loaded = yaml.safe_load(read_text(mapping_file))  # YAML is a superset of JSON
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"unreadable column mapping ({err})", mapping_file) from err
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise InputError("column mapping must be a flat {name: column} mapping", mapping_file)
        mapping.update({str(k): v for k, v in loaded.items()})
    for item in items or ():
        name, sep, column = item.partition("=")
        if not sep or not name or not column:
            raise InputError(f"bad --map item {item!r} (use name=Column)")
        mapping[name] = column
    return mapping


def read_table(path: str | Path, mapping: dict[str, str] | None = None) -> ClinicalTable:
    """A generic CSV: columns renamed by ``mapping`` ({name: source column}); numeric columns converted.

    A column becomes numeric when every non-missing cell parses as a number; others stay text
    (categorical covariates).
    """
    path = Path(path)
    raw = _read_csv(path).apply(lambda col: col.str.strip())
    mapping = mapping or {}
    absent = [src for src in mapping.values() if src not in raw.columns]
    if absent:
        raise InputError(f"mapped columns {absent} not in the table (columns: {', '.join(raw.columns)})", path)
    frame = raw.rename(columns={src: name for name, src in mapping.items()}).replace(list(MISSING_TOKENS), np.nan)
    for col in frame.columns:
        numeric = pd.to_numeric(frame[col], errors="coerce")
        if numeric.notna().sum() == frame[col].notna().sum():
            frame[col] = numeric
    report = {"rows": len(frame), "mapping": mapping,
              "missing": {c: int(frame[c].isna().sum()) for c in frame.columns if frame[c].isna().any()}}
    return ClinicalTable(frame, str(path), report)


def read_clinical(path: str | Path, mapping: dict[str, str] | None = None, include_cap_controls: bool = False) -> ClinicalTable:
    """iCTCF tables (recognised by their header) through :func:`read_ictcf`, anything else through :func:`read_table`.

    A mapping on an iCTCF table renames columns after parsing (e.g. ``crp=CRP``).
    """
    path = Path(path)
    if not path.is_file() or not is_ictcf(_read_csv(path).columns):
        return read_table(path, mapping)
    table = read_ictcf(path, include_cap_controls)
    if mapping:
        absent = [src for src in mapping.values() if src not in table.frame.columns]
        if absent:
            raise InputError(f"mapped columns {absent} not in the parsed iCTCF table", path)
        table.frame = table.frame.rename(columns={src: name for name, src in mapping.items()})
        table.report["mapping"] = mapping
    return table


def parsing_markdown(table: ClinicalTable) -> str:
    """The parsing rules and counts of an iCTCF read, as markdown."""
    r = table.report
    lines = [f"# Parsed clinical table: `{Path(table.source).name}`", "", f"Rows: {r['rows']}", "",
             "## Rules", "", *[f"- {rule}" for rule in r.get("parsing_rules", [])], ""]
    if "morbidity_counts" in r:
        lines += ["## Morbidity outcome -> severity", "", "| morbidity outcome | rows | severity |", "|---|---|---|"]
        codes = dict(SEVERITY_CODES, **({CAP_CONTROL: 0} if r["include_cap_controls"] else {}))
        lines += [f"| {k} | {v} | {codes.get(k, 'missing')} |" for k, v in r["morbidity_counts"].items()]
        lines += ["", "## Underlying diseases", "", "| category | patients |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r["underlying_disease_counts"].items()]
        lines += [f"| (missing) | {r['underlying_disease_missing']} |", ""]
    return "\n".join(lines) + "\n"

