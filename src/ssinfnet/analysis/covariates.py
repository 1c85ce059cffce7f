"""The covariate part of the mediation models' design, with a record of what entered and why anything did not.

A covariate that takes a single value in the analysed rows cannot be adjusted for: e.g. ``hospital`` when
a lab value was measured at one hospital only, so that the complete cases of that lab all come from it.
Such a covariate is left out and the reason recorded, never dropped silently.
"""

from __future__ import annotations

import pandas as pd


def covariate_design(data: pd.DataFrame, covariates: list[str]) -> tuple[pd.DataFrame, dict]:
    """Intercept + covariates (text columns dummy-coded, first level in sort order as reference).

    Returns the design and ``{"entered": {covariate: [design columns]}, "reference": {covariate: level},
    "dropped": {covariate: reason}}``.
    """
    parts = [pd.DataFrame({"const": 1.0}, index=data.index)]
    record: dict = {"entered": {}, "reference": {}, "dropped": {}}
    for name in covariates:
        values = data[name]
        levels = sorted(values.unique(), key=str)
        if len(levels) < 2:
            shown = f" ({levels[0]})" if levels else ""
            record["dropped"][name] = f"one value in the {len(data)} analysed rows{shown}: cannot be adjusted for"
            continue
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            part = values.astype(float).to_frame(name)
        else:
            text = values.astype(str)
            part = pd.get_dummies(text, prefix=name, prefix_sep="=", drop_first=True, dtype=float)
            record["reference"][name] = str(sorted(text.unique())[0])
        record["entered"][name] = list(part.columns)
        parts.append(part)
    return pd.concat(parts, axis=1).astype(float), record


def describe(record: dict) -> str:
    """One line: which covariates entered (design columns) and which were left out, and why."""
    entered = [f"{name} ({', '.join(columns)})" if columns != [name] else name
               for name, columns in record["entered"].items()]
    text = ", ".join(entered) or "none"
    if record["dropped"]:
        text += "; left out: " + "; ".join(f"{name}: {why}" for name, why in record["dropped"].items())
    return text
