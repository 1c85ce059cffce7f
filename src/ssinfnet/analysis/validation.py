"""Does the mediation analysis recover planted effects, and where does it fail? Repeated simulations
from the demo cohort's structural equations (:func:`ssinfnet.data.demo_cohort.simulate_clinical`).

Per replicate: draw ``n`` subjects, run :func:`run_mediation` with the true mediator
(``lesion_burden_logit``), the binary outcome ``severe_or_worse`` and covariates sex + the other exposure,
and check whether each 95% CI covers the true population effect on P(severe or worse) and whether the
ACME is called significant (p < 0.05). Scenarios (:data:`SCENARIOS`):

- planted indirect effect, correctly specified: coverage near 95%, rejection = power;
- no mediation because the mediator does not move the outcome (``severity_per_burden = 0``), and
- no mediation because the exposure does not move the mediator (``burden_per_age = 0``): true ACME = 0,
  the ACME rejection rate is the false-positive rate (nominal 5%);
- mediator-outcome confounding: disease as exposure with age (which raises both lesion burden and
  severity) left out of the models, as an unmeasured confounder would be: the bias of the ACME;
- outcome-dependent missingness: the mediator missing more often in severe-or-worse subjects (as CRP is
  in the iCTCF table), complete cases against multiple imputation (:mod:`ssinfnet.analysis.missing_data`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from ssinfnet.analysis.mediation import COMPLETE, IMPUTED, MediationSpec, run_mediation
from ssinfnet.data.demo_cohort import StructuralParams, simulate_clinical

MEDIATOR, OUTCOME = "lesion_burden_logit", "severe_or_worse"
#: truth key -> (exposure column, contrast matching the truth's 0 -> 1, the other exposure as covariate)
EXPOSURES = {
    "age": ("age", (60.0, 70.0), "has_underlying_disease"),
    "underlying_disease": ("has_underlying_disease", (0.0, 1.0), "age"),
}
CHECKED = {"acme": "acme_average", "ade": "ade_average", "total": "total_effect"}


@dataclass(frozen=True)
class Scenario:
    exposure: str
    """A key of :data:`EXPOSURES`."""
    description: str
    indirect: bool = True
    """False: severity does not depend on the burden (``severity_per_burden = 0``)."""
    params: dict = field(default_factory=dict)
    """Overrides of :class:`StructuralParams`."""
    omit: tuple[str, ...] = ()
    """Covariates left out of the analysis (unmeasured)."""
    missing: tuple[float, float] | None = None
    """P(mediator missing) for severe_or_worse = 0 and 1; None: no missing values."""

    @property
    def analyses(self) -> tuple[str, ...]:
        return (COMPLETE, IMPUTED) if self.missing else (COMPLETE,)


SCENARIOS = {
    "age_planted": Scenario("age", "age 60 -> 70, planted indirect effect"),
    "age_no_outcome_path": Scenario("age", "age, no mediation: the burden does not move severity", indirect=False),
    "disease_planted": Scenario("underlying_disease", "disease 0 -> 1, planted indirect effect"),
    "disease_no_outcome_path": Scenario("underlying_disease", "disease, no mediation: the burden does not move "
                                        "severity", indirect=False),
    "age_no_exposure_path": Scenario("age", "age, no mediation: age does not move the burden (the burden still "
                                     "moves severity)", params={"burden_per_age": 0.0}),
    "disease_confounded": Scenario("underlying_disease", "disease, planted indirect effect, age (raises burden and "
                                   "severity) left out: mediator-outcome confounding", omit=("age",)),
    "age_missing_by_outcome": Scenario("age", "age, planted indirect effect, burden missing for 35% of "
                                       "non-severe and 80% of severe-or-worse subjects", missing=(0.35, 0.80)),
}


def simulate_once(scenario: str, n: int, seed: int, sims: int, method: str = "quasi-bayesian",
                  imputations: int = 10) -> dict:
    """One replicate: per analysis and effect the estimate, CI, p-value and true effect."""
    sc = SCENARIOS[scenario]
    column, contrast, other = EXPOSURES[sc.exposure]
    params = dataclasses.replace(StructuralParams(), **sc.params)
    table, truth = simulate_clinical(n, seed=seed, indirect=sc.indirect, params=params)
    if sc.missing:
        rng = np.random.default_rng([seed, 1])
        p_missing = np.where(table[OUTCOME] == 1, sc.missing[1], sc.missing[0])
        table.loc[rng.random(n) < p_missing, MEDIATOR] = np.nan
    covariates = [c for c in ("sex", other) if c not in sc.omit]
    spec = MediationSpec(exposure=column, mediators=[MEDIATOR], outcome=OUTCOME, covariates=covariates,
                         outcome_type="binary", method=method, sims=sims, seed=seed, contrast=contrast,
                         imputations=imputations if sc.missing else 0)
    rows = {(r["analysis"], r["effect"]): r for r in run_mediation(table, spec).rows}
    true = truth["effects"][sc.exposure]["severe_or_worse_probability"]
    return {
        analysis: {effect: {"estimate": rows[analysis, effect]["estimate"],
                            "ci": (rows[analysis, effect]["ci_low"], rows[analysis, effect]["ci_high"]),
                            "p_value": rows[analysis, effect]["p_value"], "truth": float(true[key]),
                            "n": rows[analysis, effect]["n"]}
                   for effect, key in CHECKED.items()}
        for analysis in sc.analyses
    }


def coverage_study(scenario: str, reps: int, n: int, sims: int, seed: int = 0, method: str = "quasi-bayesian",
                   imputations: int = 10) -> dict:
    """Per analysis: coverage of the 95% CIs, rejection rate (p < 0.05), bias and spread over ``reps`` replicates."""
    sc = SCENARIOS[scenario]
    runs = [simulate_once(scenario, n, seed + rep, sims, method, imputations) for rep in range(reps)]
    summary = {"scenario": scenario, "description": sc.description, "exposure": sc.exposure,
               "indirect": sc.indirect, "params": sc.params, "omitted_covariates": list(sc.omit),
               "missing_probability_by_outcome": list(sc.missing) if sc.missing else None, "reps": reps, "n": n,
               "sims": sims, "imputations": imputations if sc.missing else 0, "method": method, "seed": seed,
               "analyses": {}}
    for analysis in sc.analyses:
        summary["analyses"][analysis] = {"mean_rows": float(np.mean([r[analysis]["acme"]["n"] for r in runs]))}
        for effect in CHECKED:
            summary["analyses"][analysis][effect] = _rates([r[analysis][effect] for r in runs])
    return summary


def _rates(runs: list[dict]) -> dict:
    truth, reps = runs[0]["truth"], len(runs)
    estimates = np.array([r["estimate"] for r in runs])
    covered = sum(lo <= truth <= hi for lo, hi in (r["ci"] for r in runs))
    rejected = sum(r["p_value"] < 0.05 for r in runs)
    return {
        "truth": truth,
        "mean_estimate": float(estimates.mean()),
        "bias": float(estimates.mean() - truth),
        "sd_estimate": float(estimates.std(ddof=1)) if reps > 1 else float("nan"),
        "coverage": covered / reps,
        "coverage_ci95": [float(x) for x in proportion_confint(covered, reps, method="wilson")],
        "rejection_rate": rejected / reps,
        "rejection_ci95": [float(x) for x in proportion_confint(rejected, reps, method="wilson")],
    }
