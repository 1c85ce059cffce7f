"""Missing mediator values: how missingness depends on the outcome, and multiple imputation.

Complete cases are unbiased when values are missing completely at random; when missingness depends on
the outcome (e.g. a lab drawn less often in the critically ill) they can be biased. The sensitivity
analysis here assumes missing at random given exposure, outcome and covariates, and imputes by chained
equations (statsmodels ``MICEData``): the mediator, on the scale it is modelled (after its transform),
regressed on the exposure, the outcome and the dummy-coded covariates, with predictive mean matching and
the regression parameters drawn from their sampling distribution before each imputation (proper
imputation). The outcome in the imputation model is what lets missingness depend on it.

Rows imputed for a mediator: those with exposure, outcome and covariates present, except rows in a level
of a covariate where the mediator was never measured (e.g. a hospital that did not measure that lab):
those are left out and counted, not imputed, since nothing in the data says what their values would be.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.imputation.mice import MICEData

from ssinfnet.analysis.covariates import covariate_design

#: stratify the missingness report by covariates with at most this many levels
MAX_STRATUM_LEVELS = 5
MIN_OBSERVED = 10


def base_rows(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """Rows with exposure, outcome and every covariate present (the population of every analysis)."""
    return frame.dropna(subset=list(dict.fromkeys([spec.exposure, spec.outcome, *spec.covariates])))


def missingness_by_outcome(frame: pd.DataFrame, spec) -> list[dict]:
    """Per mediator, stratum (all rows, then each level of a covariate with few levels) and outcome level:
    rows and how many miss the mediator."""
    rows = base_rows(frame, spec)
    strata = [("all rows", rows)]
    for name in spec.covariates:
        if rows[name].nunique() <= MAX_STRATUM_LEVELS:
            strata += [(f"{name}={level}", part) for level, part in rows.groupby(name, sort=True)]
    report = []
    for mediator in spec.mediators:
        for stratum, part in strata:
            for level, group in part.groupby(spec.outcome, sort=True):
                report.append({"mediator": mediator, "stratum": stratum, "outcome_level": float(level),
                               "rows": int(len(group)), "missing": int(group[mediator].isna().sum())})
    return report


def imputation_rows(frame: pd.DataFrame, spec, mediator: str) -> tuple[pd.DataFrame, dict]:
    """The rows imputed for ``mediator`` and the covariate levels left out (never measured there)."""
    rows = base_rows(frame, spec)
    left_out = {}
    for name in spec.covariates:
        if pd.api.types.is_numeric_dtype(rows[name]) and rows[name].nunique() > MAX_STRATUM_LEVELS:
            continue
        measured = rows[name][rows[mediator].notna()].unique()
        never = rows[~rows[name].isin(measured)]
        left_out.update({f"{name}={level}": int(n) for level, n in never[name].value_counts(sort=False).items()})
        rows = rows[rows[name].isin(measured)]
    return rows.reset_index(drop=True), left_out


def impute_mediator(frame: pd.DataFrame, spec, mediator: str) -> tuple[list[pd.DataFrame], dict]:
    """``spec.imputations`` completed copies of the imputation rows (only ``mediator`` filled in) and a report.

    Returns no data sets when nothing is missing or fewer than 10 values are observed (the report says which).
    """
    rows, left_out = imputation_rows(frame, spec, mediator)
    missing = rows[mediator].isna()
    report = {"mediator": mediator, "rows": int(len(rows)), "observed": int((~missing).sum()),
              "imputed": int(missing.sum()), "left_out_levels": left_out, "imputations": spec.imputations,
              "imputation_model": f"{mediator} ~ {spec.exposure} + {spec.outcome}"
                                  + "".join(f" + {c}" for c in spec.covariates)
                                  + " (OLS, predictive mean matching, MICEData)"}
    if not missing.any():
        report["skipped"] = "no missing values in these rows (identical to complete cases)"
        return [], report
    if report["observed"] < MIN_OBSERVED:
        report["skipped"] = f"only {report['observed']} observed values (need {MIN_OBSERVED})"
        return [], report
    design, _ = covariate_design(rows, spec.covariates)
    model_data = pd.DataFrame({"m": rows[mediator].astype(float), "x": rows[spec.exposure].astype(float),
                               "y": rows[spec.outcome].astype(float)})
    for i, column in enumerate(design.columns.drop("const")):
        model_data[f"c{i}"] = design[column]
    imputer = MICEData(model_data, rng=np.random.default_rng(spec.seed))
    completed = []
    for _ in range(spec.imputations):
        imputer.update_all(1)
        copy = rows.copy()
        copy[mediator] = imputer.data["m"].to_numpy()
        completed.append(copy)
    return completed, report
