"""Mediation analysis: exposure -> mediator(s) -> outcome, with statsmodels' ``Mediation``.

For each mediator a mediator model (OLS; logit GLM for a 0/1 mediator) and an outcome model are fitted,
and ``statsmodels.stats.mediation.Mediation`` simulates the average causal mediation effect (ACME, the
indirect effect), average direct effect (ADE), total effect and proportion mediated, with percentile CIs
and simulation p-values (quasi-Bayesian = statsmodels' "parametric" draws from the estimates' normal
approximation; or the nonparametric bootstrap). Benjamini-Hochberg FDR q-values are computed across
mediators for every (analysis, outcome model, effect).

The effects are causal only under assumptions the data cannot check: sequential ignorability (no
unmeasured confounding of exposure-mediator, exposure-outcome and mediator-outcome relations given the
covariates, and no mediator-outcome confounder affected by the exposure) and temporal order (exposure
before mediator before outcome). An ACME whose CI excludes 0 is *consistent with* mediation.

Rows analysed, each its own row family (``analysis`` column of the results):

- ``complete cases``: the rows where this mediator, exposure, outcome and covariates are present (the
  most rows each mediator allows; mediators then differ in rows and are not comparable with each other).
- ``common complete cases`` (more than one mediator, unless all have the same complete cases): the rows
  complete for every mediator, the only rows on which mediators can be compared or ranked.
- ``multiple imputation`` (``imputations > 0``): missing mediator values imputed by chained equations
  (:mod:`ssinfnet.analysis.missing_data`); the simulation draws of the imputed data sets are pooled, as
  R mediation's ``amelidiate`` does (``ceil(sims / imputations)`` draws per data set).

Exposure contrast: statsmodels compares the exposure at 0 and 1, so the exposure is recoded
``(x - low) / (high - low)`` and every effect compares ``low`` with ``high``: 0 vs 1 for a 0/1 exposure,
mean vs mean + 1 SD *of the rows of that analysis* for a continuous one, or the values given by the user.

Covariates: text columns dummy-coded; one with a single value in the analysed rows is left out and the
reason recorded (:mod:`ssinfnet.analysis.covariates`).

Outcome models:

- ``binary``: GLM binomial (logit or probit); effects are differences in P(outcome = 1).
- ``continuous``: OLS; effects in outcome units.
- ``ordinal`` (e.g. severity 0 < 1 < 2): statsmodels' ``Mediation`` needs a model that predicts one
  number per subject, which ``OrderedModel`` (category probabilities) does not provide. So the ordinal
  outcome is analysed two documented ways, each its own row family: (1) ``linear``: OLS on the codes as
  an ordered numeric score (effects in score points; assumes equally spaced levels), and (2) one logit
  GLM per cut, ``P(outcome >= c)`` (effects in probability; no spacing assumption, but one analysis per
  cut instead of one proportional-odds model).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.mediation import Mediation, MediationResults
from statsmodels.stats.multitest import multipletests

from ssinfnet.analysis.covariates import covariate_design
from ssinfnet.analysis.missing_data import impute_mediator, missingness_by_outcome
from ssinfnet.errors import InputError

METHODS = {"quasi-bayesian": "parametric", "bootstrap": "bootstrap"}
OUTCOME_TYPES = ("binary", "ordinal", "continuous")
LINKS = {"logit": sm.families.links.Logit, "probit": sm.families.links.Probit}
#: the row sets analysed (``analysis`` column), in the order the outputs show them
COMPLETE, COMMON, IMPUTED = "complete cases", "common complete cases", "multiple imputation"
ANALYSES = (COMPLETE, COMMON, IMPUTED)
MIN_ROWS = 10
#: statsmodels summary rows reported, and the short names used in our tables.
EFFECTS = {
    "ACME (average)": "acme",
    "ADE (average)": "ade",
    "Total effect": "total",
    "Prop. mediated (average)": "prop_mediated",
    "ACME (control)": "acme_control",
    "ACME (treated)": "acme_treated",
    "ADE (control)": "ade_control",
    "ADE (treated)": "ade_treated",
}
TRANSFORMS = {
    "log": ("natural log (values must be > 0)", np.log),
    "log1p": ("log(1 + x) (values must be > -1)", np.log1p),
    "logit_pct": ("logit(x / 100) of a percentage, clipped to [0.01, 99.99] %",
                  lambda x: np.log(np.clip(x, 0.01, 99.99) / (100 - np.clip(x, 0.01, 99.99)))),
}


@dataclass
class MediationSpec:
    exposure: str
    mediators: list[str]
    outcome: str
    covariates: list[str] = field(default_factory=list)
    outcome_type: str | None = None
    """binary | ordinal | continuous; None infers it (0/1 -> binary, <= 7 integer levels -> ordinal)."""
    link: str = "logit"
    method: str = "quasi-bayesian"
    sims: int = 1000
    seed: int = 0
    contrast: tuple[float, float] | None = None
    transforms: dict[str, str] = field(default_factory=dict)
    """{mediator: name in TRANSFORMS} applied before the mediator model (and before imputation)."""
    alpha: float = 0.05
    imputations: int = 0
    """Multiply imputed data sets for the missing-data sensitivity analysis; 0: complete cases only."""


@dataclass
class MediationResult:
    spec: MediationSpec
    rows: list[dict]
    """One row per analysis x mediator x outcome model x effect (see :data:`ANALYSES`, :data:`EFFECTS`)."""
    analyses: list[dict]
    """Per analysis x mediator: rows used and dropped, missing counts, exposure contrast, covariates
    entered and left out (with the reason), imputation details."""
    missingness: list[dict]
    """Missing mediator values by outcome level (:func:`missing_data.missingness_by_outcome`)."""
    outcome_type: str
    notes: list[str]
    shared_complete_cases: bool = False
    """Every mediator has the same complete cases (then those rows are comparable across mediators)."""

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def analysis(self, analysis: str, mediator: str) -> dict | None:
        return next((a for a in self.analyses if a["analysis"] == analysis and a["mediator"] == mediator), None)


@dataclass(frozen=True)
class _OutcomeModel:
    name: str
    """e.g. "binary (logit)", "ordinal as linear score", "P(severity >= 1) (logit)"."""
    endog: pd.Series
    family: object | None
    """GLM family, or None for OLS."""


def run_mediation(frame: pd.DataFrame, spec: MediationSpec) -> MediationResult:
    _check_spec(frame, spec)
    frame = _transform_mediators(frame, spec)
    outcome_type = spec.outcome_type or infer_outcome_type(frame[spec.outcome])
    rows, analyses, notes = [], [], []
    for analysis, mediator, datasets, report in _row_sets(frame, spec, notes):
        try:
            new_rows, info, caught = _analyse(analysis, mediator, datasets, report, spec, outcome_type)
        except InputError as err:
            if analysis == COMPLETE:
                raise
            notes.append(f"{mediator}, {analysis}: not run, {err.problem}")  # the sensitivity rows only
            continue
        rows += new_rows
        analyses.append(info)
        notes += caught
    _add_fdr(rows)
    return MediationResult(spec, rows, analyses, missingness_by_outcome(frame, spec), outcome_type, notes,
                           same_complete_cases(frame, spec))


def _row_sets(frame: pd.DataFrame, spec: MediationSpec, notes: list[str]):
    """(analysis, mediator, data sets, report) for every analysis that has enough rows."""
    for mediator in spec.mediators:
        data, report = complete_cases(frame, spec, [mediator])
        if len(data) < MIN_ROWS:
            raise InputError(f"mediator {mediator!r}: only {len(data)} complete rows (need at least {MIN_ROWS})")
        yield COMPLETE, mediator, [data], report
    if len(spec.mediators) > 1:
        data, report = complete_cases(frame, spec, spec.mediators)
        if same_complete_cases(frame, spec):
            notes.append(f"every mediator has the same {len(data)} complete cases: the complete-case rows are "
                         f"comparable, so no separate {COMMON} analysis")
        elif len(data) < MIN_ROWS:
            notes.append(f"{COMMON}: only {len(data)} rows have every mediator; mediators are not compared on common rows")
        else:
            for mediator in spec.mediators:
                yield COMMON, mediator, [data], {**report, "mediator": mediator}
    if spec.imputations > 0:
        for mediator in spec.mediators:
            datasets, report = impute_mediator(frame, spec, mediator)
            if datasets:
                yield IMPUTED, mediator, datasets, report
            else:
                notes.append(f"{mediator}, {IMPUTED}: not run, {report['skipped']}")


def same_complete_cases(frame: pd.DataFrame, spec: MediationSpec) -> bool:
    """True when every mediator's complete cases are the rows complete for all mediators."""
    common = complete_cases(frame, spec, spec.mediators)[1]["used"]
    return all(complete_cases(frame, spec, [m])[1]["used"] == common for m in spec.mediators)


def _analyse(analysis: str, mediator: str, datasets: list[pd.DataFrame], report: dict, spec: MediationSpec,
             outcome_type: str) -> tuple[list[dict], dict, list[str]]:
    """One mediator on one row set (several data sets for multiple imputation, draws pooled)."""
    data = datasets[0]
    contrast = spec.contrast or default_contrast(data[spec.exposure])
    design, covariates = covariate_design(data, spec.covariates)
    draws = math.ceil(spec.sims / len(datasets))
    exposure = (data[spec.exposure].astype(float) - contrast[0]) / (contrast[1] - contrast[0])
    rows, notes = [], []
    for model in _outcome_models(data[spec.outcome], outcome_type, spec):
        fits = []
        for index, completed in enumerate(datasets):
            fit, caught = _fit_one(model, exposure, completed[mediator].astype(float), design, spec, draws,
                                   spec.seed + index)
            fits.append(fit)
            notes += [f"{mediator}, {analysis}, {model.name}: {w}" for w in caught]
        summary = _pooled(fits).summary(alpha=spec.alpha)
        for label, short in EFFECTS.items():
            est, lo, hi, p = summary.loc[label]
            rows.append({"analysis": analysis, "exposure": spec.exposure, "mediator": mediator,
                         "outcome": spec.outcome, "outcome_model": model.name, "effect": short, "estimate": est,
                         "ci_low": lo, "ci_high": hi, "p_value": p, "n": len(data), "draws": draws * len(datasets),
                         "imputations": len(datasets) if analysis == IMPUTED else 0,
                         "contrast_low": contrast[0], "contrast_high": contrast[1],
                         "covariates_entered": " ".join(covariates["entered"]),
                         "covariates_left_out": " ".join(covariates["dropped"])})
    info = {"analysis": analysis, **report, "contrast": list(contrast), "covariates": covariates,
            "draws": draws * len(datasets)}
    return rows, info, sorted(set(notes))


def _check_spec(frame: pd.DataFrame, spec: MediationSpec) -> None:
    needed = [spec.exposure, spec.outcome, *spec.mediators, *spec.covariates]
    absent = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if absent:
        raise InputError(f"columns not in the table: {', '.join(absent)} (columns: {', '.join(map(str, frame.columns))})")
    if spec.method not in METHODS:
        raise InputError(f"unknown method {spec.method!r} (use {' or '.join(METHODS)})")
    if spec.outcome_type is not None and spec.outcome_type not in OUTCOME_TYPES:
        raise InputError(f"unknown outcome type {spec.outcome_type!r} (use {', '.join(OUTCOME_TYPES)})")
    if spec.link not in LINKS:
        raise InputError(f"unknown link {spec.link!r} (use {' or '.join(LINKS)})")
    if spec.sims < 10:
        raise InputError(f"--sims must be at least 10, got {spec.sims}")
    if not 0 <= spec.imputations <= spec.sims:
        raise InputError(f"--imputations must be between 0 and --sims ({spec.sims}), got {spec.imputations}")
    for name in (spec.exposure, spec.outcome, *spec.mediators):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise InputError(f"column {name!r} must be numeric (code categories as numbers, e.g. 0/1)")
    for name in dict.fromkeys(needed):
        if pd.api.types.is_numeric_dtype(frame[name]):
            infinite = np.isinf(frame[name].to_numpy(dtype=float, na_value=np.nan))
            if infinite.any():
                raise InputError(f"column {name!r} has {int(infinite.sum())} non-finite value(s) (inf); "
                                 "leave a value empty to mark it missing")
    if spec.exposure in spec.mediators or spec.outcome in spec.mediators or spec.exposure == spec.outcome:
        raise InputError("exposure, mediators and outcome must be different columns")
    for mediator, name in spec.transforms.items():
        if name not in TRANSFORMS:
            raise InputError(f"unknown transform {name!r} for {mediator!r} (use {', '.join(TRANSFORMS)})")
        if mediator not in spec.mediators:
            raise InputError(f"transform given for {mediator!r}, which is not a mediator")
    if spec.contrast is not None and spec.contrast[0] == spec.contrast[1]:
        raise InputError("the two exposure contrast values must differ")


def infer_outcome_type(values: pd.Series) -> str:
    levels = np.unique(values.dropna())
    if set(levels) <= {0, 1}:
        return "binary"
    if len(levels) <= 7 and np.all(levels == np.round(levels)):
        return "ordinal"
    return "continuous"


def default_contrast(exposure: pd.Series) -> tuple[float, float]:
    """0 -> 1 for a 0/1 exposure, else mean -> mean + 1 SD."""
    values = exposure.dropna().astype(float)
    if set(values.unique()) <= {0.0, 1.0}:
        return (0.0, 1.0)
    mean, sd = float(values.mean()), float(values.std())
    if not sd > 0:
        raise InputError(f"exposure {exposure.name!r} does not vary")
    return (mean, mean + sd)


def complete_cases(frame: pd.DataFrame, spec: MediationSpec, mediators: list[str]) -> tuple[pd.DataFrame, dict]:
    """Rows with every analysis column (and each of ``mediators``) present, and a report of what was dropped."""
    columns = list(dict.fromkeys([spec.exposure, *mediators, spec.outcome, *spec.covariates]))
    missing = frame[columns].isna()
    keep = ~missing.any(axis=1)
    report = {
        "mediator": mediators[0] if len(mediators) == 1 else None,
        "rows": int(len(frame)),
        "used": int(keep.sum()),
        "dropped": int((~keep).sum()),
        "missing_by_column": {c: int(n) for c, n in missing.sum().items() if n},
    }
    return frame.loc[keep].reset_index(drop=True), report


def _transform_mediators(frame: pd.DataFrame, spec: MediationSpec) -> pd.DataFrame:
    """A copy with each transformed mediator on its modelled scale (missing values stay missing)."""
    frame = frame.copy()
    for mediator, name in spec.transforms.items():
        values = frame[mediator].astype(float)
        present = values.notna()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = TRANSFORMS[name][1](values[present].to_numpy())
        if not np.all(np.isfinite(out)):
            raise InputError(f"mediator {mediator!r}: transform {name} gives non-finite values ({TRANSFORMS[name][0]})")
        values.loc[present] = out
        frame[mediator] = values
    return frame


def _outcome_models(outcome: pd.Series, outcome_type: str, spec: MediationSpec) -> list[_OutcomeModel]:
    y = outcome.astype(float)
    binomial = sm.families.Binomial(link=LINKS[spec.link]())
    levels = sorted(np.unique(y))
    if len(levels) < 2:
        raise InputError(f"outcome {spec.outcome!r} takes a single value ({levels[0]:g}) in the complete cases")
    if outcome_type == "binary":
        if not set(levels) <= {0.0, 1.0}:
            raise InputError(f"binary outcome {spec.outcome!r} must be coded 0/1, found {levels}")
        return [_OutcomeModel(f"binary ({spec.link})", y, binomial)]
    if outcome_type == "continuous":
        return [_OutcomeModel("linear", y, None)]
    if len(levels) < 3:
        raise InputError(f"ordinal outcome {spec.outcome!r} needs at least 3 levels in the complete cases, found {levels}")
    models = [_OutcomeModel("ordinal as linear score", y, None)]
    for cut in levels[1:]:
        models.append(_OutcomeModel(f"P({spec.outcome} >= {cut:g}) ({spec.link})", (y >= cut).astype(float), binomial))
    return models


def _fit_one(model: _OutcomeModel, exposure: pd.Series, mediator: pd.Series, design: pd.DataFrame,
             spec: MediationSpec, draws: int, seed: int) -> tuple[MediationResults, list[str]]:
    """statsmodels' Mediation for one mediator and one outcome model; returns the fit and its warnings."""
    med_exog = pd.concat([design, exposure.rename("exposure")], axis=1)
    out_exog = pd.concat([med_exog, mediator.rename("mediator")], axis=1)
    binary_mediator = set(np.unique(mediator)) <= {0.0, 1.0}
    mediator_model = (sm.GLM(mediator, med_exog, family=sm.families.Binomial()) if binary_mediator
                      else sm.OLS(mediator, med_exog))
    outcome_model = (sm.OLS(model.endog, out_exog) if model.family is None
                     else sm.GLM(model.endog, out_exog, family=model.family))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = Mediation(outcome_model, mediator_model, "exposure", "mediator").fit(
            method=METHODS[spec.method], n_rep=draws, rng=np.random.default_rng(seed))
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return fitted, messages


def _pooled(fits: list[MediationResults]) -> MediationResults:
    """One result from the simulation draws of several (imputed) data sets on the same rows."""
    if len(fits) == 1:
        return fits[0]
    return MediationResults([np.concatenate([f.indirect_effects[t] for f in fits], axis=1) for t in (0, 1)],
                            [np.concatenate([f.direct_effects[t] for f in fits], axis=1) for t in (0, 1)])


def p_value_floor(draws: int) -> float:
    """The smallest non-zero simulation p-value (statsmodels: 2 * min(share > 0, share < 0))."""
    return 2.0 / draws


def _add_fdr(rows: list[dict]) -> None:
    """Benjamini-Hochberg q-values across mediators within each (analysis, outcome model, effect).

    A p-value of 0 only says p < 2/draws, so it enters as 2/draws (q-values are then conservative, never 0).
    """
    table = pd.DataFrame(rows)
    for _, group in table.groupby(["analysis", "outcome_model", "effect"], sort=False):
        p = group["p_value"].to_numpy(float)
        bounded = np.maximum(p, [p_value_floor(d) for d in group["draws"]])
        q = multipletests(bounded, method="fdr_bh")[1] if np.all(np.isfinite(p)) else np.full(len(p), np.nan)
        for index, value in zip(group.index, q):
            rows[index]["q_value"] = float(value)
