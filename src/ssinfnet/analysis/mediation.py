"""Causal mediation analysis: exposure -> mediator(s) -> outcome, with statsmodels' ``Mediation``.

For each mediator a mediator model (OLS; logit GLM for a 0/1 mediator) and an outcome model are fitted on
the complete cases, and ``statsmodels.stats.mediation.Mediation`` simulates the average causal mediation
effect (ACME), average direct effect (ADE), total effect and proportion mediated, with percentile CIs
and simulation p-values (quasi-Bayesian = statsmodels' "parametric" draws from the estimates' normal
approximation; or the nonparametric bootstrap). Benjamini-Hochberg FDR q-values are computed across
mediators for every (outcome model, effect) pair.

Exposure contrast: statsmodels compares the exposure at 0 and 1, so the exposure is recoded
``(x - low) / (high - low)`` and every effect compares ``low`` with ``high``: 0 vs 1 for a 0/1 exposure,
mean vs mean + 1 SD (of the analysed table) for a continuous one, or the values given by the user.

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

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.mediation import Mediation
from statsmodels.stats.multitest import multipletests

from ssinfnet.errors import InputError

METHODS = {"quasi-bayesian": "parametric", "bootstrap": "bootstrap"}
OUTCOME_TYPES = ("binary", "ordinal", "continuous")
LINKS = {"logit": sm.families.links.Logit, "probit": sm.families.links.Probit}
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
    """{mediator: name in TRANSFORMS} applied before the mediator model."""
    alpha: float = 0.05


@dataclass
class MediationResult:
    spec: MediationSpec
    rows: list[dict]
    """One row per mediator x outcome model x effect (see :data:`EFFECTS`)."""
    cases: list[dict]
    """Complete-case report per mediator: rows used, dropped, and the missing count per column."""
    contrast: tuple[float, float]
    outcome_type: str
    notes: list[str]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


@dataclass(frozen=True)
class _OutcomeModel:
    name: str
    """e.g. "binary (logit)", "ordinal as linear score", "P(severity >= 1) (logit)"."""
    endog: pd.Series
    family: object | None
    """GLM family, or None for OLS."""


def run_mediation(frame: pd.DataFrame, spec: MediationSpec) -> MediationResult:
    _check_spec(frame, spec)
    notes: list[str] = []
    outcome_type = spec.outcome_type or infer_outcome_type(frame[spec.outcome])
    contrast = spec.contrast or default_contrast(frame[spec.exposure])
    rows, cases = [], []
    for mediator in spec.mediators:
        data, case_report = complete_cases(frame, spec, mediator)
        cases.append(case_report)
        if len(data) < 10:
            raise InputError(f"mediator {mediator!r}: only {len(data)} complete rows (need at least 10)")
        design, dropped = _covariate_design(data, spec.covariates)
        if dropped:
            notes.append(f"{mediator}: covariate columns constant in the complete cases, left out: {', '.join(dropped)}")
        exposure = (data[spec.exposure].astype(float) - contrast[0]) / (contrast[1] - contrast[0])
        m_values = _transformed(data[mediator].astype(float), spec.transforms.get(mediator), mediator)
        for model in _outcome_models(data[spec.outcome], outcome_type, spec):
            summary, caught = _fit_one(model, exposure, m_values, design, spec)
            notes += [f"{mediator}, {model.name}: {w}" for w in caught]
            for label, short in EFFECTS.items():
                est, lo, hi, p = summary.loc[label]
                rows.append({"exposure": spec.exposure, "mediator": mediator, "outcome": spec.outcome,
                             "outcome_model": model.name, "effect": short, "estimate": est, "ci_low": lo,
                             "ci_high": hi, "p_value": p, "n": len(data)})
    _add_fdr(rows)
    return MediationResult(spec, rows, cases, contrast, outcome_type, notes)


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
    for name in (spec.exposure, spec.outcome, *spec.mediators):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise InputError(f"column {name!r} must be numeric (code categories as numbers, e.g. 0/1)")
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


def complete_cases(frame: pd.DataFrame, spec: MediationSpec, mediator: str) -> tuple[pd.DataFrame, dict]:
    """Rows with every analysis column present, and a report of what was dropped and why."""
    columns = list(dict.fromkeys([spec.exposure, mediator, spec.outcome, *spec.covariates]))
    missing = frame[columns].isna()
    keep = ~missing.any(axis=1)
    report = {
        "mediator": mediator,
        "rows": int(len(frame)),
        "used": int(keep.sum()),
        "dropped": int((~keep).sum()),
        "missing_by_column": {c: int(n) for c, n in missing.sum().items() if n},
    }
    return frame.loc[keep].reset_index(drop=True), report


def _covariate_design(data: pd.DataFrame, covariates: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Intercept + covariates (text columns dummy-coded, first level as reference); constant columns dropped."""
    design = pd.get_dummies(data[covariates], drop_first=True, dtype=float) if covariates else pd.DataFrame(index=data.index)
    constant = [c for c in design.columns if design[c].nunique() < 2]
    design = design.drop(columns=constant).astype(float)
    design.insert(0, "const", 1.0)
    return design, constant


def _transformed(values: pd.Series, name: str | None, mediator: str) -> pd.Series:
    if name is None:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.Series(TRANSFORMS[name][1](values.to_numpy()), index=values.index)
    if not np.all(np.isfinite(out)):
        raise InputError(f"mediator {mediator!r}: transform {name} gives non-finite values ({TRANSFORMS[name][0]})")
    return out


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
             spec: MediationSpec) -> tuple[pd.DataFrame, list[str]]:
    """statsmodels' Mediation for one mediator and one outcome model; returns its summary and warnings."""
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
            method=METHODS[spec.method], n_rep=spec.sims, rng=np.random.default_rng(spec.seed))
        summary = fitted.summary(alpha=spec.alpha)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return summary, messages


def _add_fdr(rows: list[dict]) -> None:
    """Benjamini-Hochberg q-values across mediators within each (outcome model, effect)."""
    table = pd.DataFrame(rows)
    for _, group in table.groupby(["outcome_model", "effect"], sort=False):
        p = group["p_value"].to_numpy(float)
        q = multipletests(p, method="fdr_bh")[1] if np.all(np.isfinite(p)) else np.full(len(p), np.nan)
        for index, value in zip(group.index, q):
            rows[index]["q_value"] = float(value)
