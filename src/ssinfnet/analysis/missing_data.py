"""Missing mediator values: how missingness depends on the outcome, and multiple imputation.

Complete cases are unbiased when values are missing completely at random; when missingness depends on
the outcome (e.g. a lab drawn less often in the critically ill) they can be biased. The sensitivity
analysis here assumes missing at random given exposure, outcome and covariates. Only the mediator is
imputed (the analysed rows have exposure, outcome and covariates), so the chained equations reduce to
one conditional model: the mediator, on the scale it is modelled (after its transform), regressed on the
exposure, the dummy-coded covariates, the outcome and the outcome's interactions with them. Imputation is
proper (the model's parameters are drawn anew for each data set): for a continuous mediator from the
posterior of a normal linear model (:func:`_normal_draws`), for a 0/1 mediator by predictive mean
matching in statsmodels' ``MICEData``. The outcome in the imputation model is what lets missingness
depend on it.

Rows imputed for a mediator: those with exposure, outcome and covariates present, except rows in a level
of a covariate where the mediator was never measured (e.g. a hospital that did not measure that lab):
those are left out and counted, not imputed, since nothing in the data says what their values would be.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.imputation.mice import MICEData

from ssinfnet.analysis.covariates import covariate_design

#: stratify the missingness report by covariates with at most this many levels
MAX_STRATUM_LEVELS = 5
MIN_OBSERVED = 10
K_PMM = 5


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
    missing = rows[mediator].isna().to_numpy()
    binary = set(rows[mediator].dropna().unique()) <= {0.0, 1.0}
    report = {"mediator": mediator, "rows": int(len(rows)), "observed": int((~missing).sum()),
              "imputed": int(missing.sum()), "left_out_levels": left_out, "imputations": spec.imputations,
              "imputation_model": f"{mediator} ~ ({spec.exposure} + " + " + ".join(spec.covariates or ["1"])
                                  + f") * {spec.outcome}, " + (PMM if binary else NORMAL)}
    if not missing.any():
        report["skipped"] = "no missing values in these rows (identical to complete cases)"
        return [], report
    if report["observed"] < MIN_OBSERVED:
        report["skipped"] = f"only {report['observed']} observed values (need {MIN_OBSERVED})"
        return [], report
    predictors = _predictors(rows, spec)
    if report["observed"] <= predictors.shape[1] + 1:
        report["skipped"] = (f"only {report['observed']} observed values for an imputation model with "
                             f"{predictors.shape[1] + 1} parameters")
        return [], report
    draw = _pmm_draws if binary else _normal_draws
    completed = []
    for values in draw(rows[mediator].to_numpy(float), predictors, spec.imputations, spec.seed):
        copy = rows.copy()
        copy[mediator] = values
        completed.append(copy)
    return completed, report


NORMAL = "normal linear regression, parameters and residual drawn from their posterior (Rubin's 'norm')"
PMM = "predictive mean matching (statsmodels MICEData, 5 donors)"


def _predictors(rows: pd.DataFrame, spec) -> pd.DataFrame:
    """Exposure, covariates (dummy-coded) and the outcome, with the outcome's interactions: where the mediator
    goes missing with the outcome, its relation to the exposure may differ between outcome levels."""
    design, _ = covariate_design(rows, spec.covariates)
    base = design.drop(columns="const")
    base.columns = [f"c{i}" for i in range(base.shape[1])]
    base.insert(0, "x", rows[spec.exposure].astype(float))
    y = rows[spec.outcome].astype(float)
    return pd.concat([base, (base.mul(y, axis=0)).add_prefix("y_"), y.rename("y")], axis=1)


def _normal_draws(values: np.ndarray, predictors: pd.DataFrame, m: int, seed: int):
    """Proper imputation under a normal linear model: sigma^2 ~ SSR / chi2(df), beta ~ N(beta_hat, sigma^2 (X'X)^-1),
    then the missing values ~ N(X beta, sigma^2) (mice's 'norm'). Unlike predictive mean matching it does not
    run short of donors where the outcome makes values rare (validation.md: PMM underestimated the ACME there)."""
    exog = sm.add_constant(predictors, has_constant="add").to_numpy(float)
    miss = np.isnan(values)
    fit = sm.OLS(values[~miss], exog[~miss]).fit()
    rng = np.random.default_rng(seed)
    for _ in range(m):
        sigma2 = fit.ssr / rng.chisquare(fit.df_resid)
        beta = rng.multivariate_normal(fit.params, fit.normalized_cov_params * sigma2)
        out = values.copy()
        out[miss] = exog[miss] @ beta + rng.normal(0.0, np.sqrt(sigma2), int(miss.sum()))
        yield out


def _pmm_draws(values: np.ndarray, predictors: pd.DataFrame, m: int, seed: int):
    """A 0/1 mediator: predictive mean matching keeps the imputed values 0/1."""
    data = predictors.assign(m=values)
    imputer = MICEData(data, rng=np.random.default_rng(seed))
    imputer.set_imputer("m", formula=" + ".join(predictors.columns), k_pmm=K_PMM)
    for _ in range(m):
        imputer.update_all(1)
        yield imputer.data["m"].to_numpy(float)
