"""Assemble the analysis table: clinical rows, optional phenotype join, row filters; every step reported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ssinfnet.analysis.clinical import read_table
from ssinfnet.errors import InputError


def join_phenotypes(clinical: pd.DataFrame, phenotype_csv: str | Path, on: str) -> tuple[pd.DataFrame, dict]:
    """Left-join a phenotype table on ``on`` (a column of both tables).

    Clinical columns whose names a phenotype column also has get the suffix ``_clinical`` (the phenotype
    value, measured from the images, keeps the plain name). Clinical rows without phenotypes stay, with
    missing phenotypes, so the complete-case report counts them.
    """
    phenotypes = read_table(phenotype_csv).frame
    for name, table, path in (("clinical table", clinical, None), ("phenotype table", phenotypes, phenotype_csv)):
        if on not in table.columns:
            raise InputError(f"join column {on!r} not in the {name}", path)
    if phenotypes[on].duplicated().any():
        raise InputError(f"join column {on!r} repeats; give one row per patient (ssinfnet phenotypes does)", phenotype_csv)
    clinical = clinical.copy()
    clinical[on] = clinical[on].astype(str)
    phenotypes[on] = phenotypes[on].astype(str)
    clashes = [c for c in phenotypes.columns if c in clinical.columns and c != on]
    clinical = clinical.rename(columns={c: f"{c}_clinical" for c in clashes})
    joined = clinical.merge(phenotypes, on=on, how="left", validate="many_to_one")
    matched = clinical[on].isin(set(phenotypes[on]))
    report = {
        "phenotype_table": str(phenotype_csv),
        "join_on": on,
        "clinical_rows_with_phenotypes": int(matched.sum()),
        "clinical_rows_without_phenotypes": int((~matched).sum()),
        "phenotype_rows_without_clinical": int((~phenotypes[on].isin(set(clinical[on]))).sum()),
        "renamed_clinical_columns": {c: f"{c}_clinical" for c in clashes},
    }
    return joined, report


def filter_rows(frame: pd.DataFrame, where: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Keep rows where every ``COLUMN=VALUE`` (or ``COLUMN!=VALUE``) holds; numbers compared as numbers."""
    report = []
    for item in where:
        negate = "!=" in item
        column, sep, value = item.partition("!=" if negate else "=")
        if not sep or column not in frame.columns:
            raise InputError(f"bad --where {item!r}: use COLUMN=VALUE or COLUMN!=VALUE with a column of the table")
        if pd.api.types.is_numeric_dtype(frame[column]):
            try:
                equal = frame[column] == float(value)
            except ValueError:
                raise InputError(f"bad --where {item!r}: column {column!r} is numeric") from None
        else:
            equal = frame[column].astype(str) == value
        keep = ~equal if negate else equal
        report.append({"filter": item, "rows_before": int(len(frame)), "rows_kept": int(keep.sum())})
        frame = frame.loc[keep].reset_index(drop=True)
    return frame, report
