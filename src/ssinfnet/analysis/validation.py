"""Does the mediation analysis recover planted effects? Repeated simulations from the demo cohort's
structural equations (:func:`ssinfnet.data.demo_cohort.simulate_clinical`).

Per replicate: draw ``n`` subjects, run :func:`run_mediation` with the true mediator
(``lesion_burden_logit``), the binary outcome ``severe_or_worse`` and covariates sex + the other exposure
(so both fitted models contain the true equations), and check whether each 95% CI covers the true
population effect on P(severe or worse) and whether the ACME is called significant (p < 0.05).
With the planted indirect effect, coverage should be near 95%; with ``indirect=False`` (true ACME = 0) the
ACME rejection rate is the false-positive rate and should be near 5%.
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from ssinfnet.analysis.mediation import MediationSpec, run_mediation
from ssinfnet.data.demo_cohort import simulate_clinical

MEDIATOR, OUTCOME = "lesion_burden_logit", "severe_or_worse"
#: truth key -> (exposure column, contrast matching the truth's 0 -> 1, the other exposure as covariate)
EXPOSURES = {
    "age": ("age", (60.0, 70.0), "has_underlying_disease"),
    "underlying_disease": ("has_underlying_disease", (0.0, 1.0), "age"),
}
CHECKED = {"acme": "acme_average", "ade": "ade_average", "total": "total_effect"}


def simulate_once(exposure: str, n: int, seed: int, indirect: bool, sims: int, method: str = "quasi-bayesian") -> dict:
    """One replicate: estimates, CIs, p-values and the true effects for ``exposure`` (a key of EXPOSURES)."""
    column, contrast, other = EXPOSURES[exposure]
    table, truth = simulate_clinical(n, seed=seed, indirect=indirect)
    spec = MediationSpec(exposure=column, mediators=[MEDIATOR], outcome=OUTCOME, covariates=["sex", other],
                         outcome_type="binary", method=method, sims=sims, seed=seed, contrast=contrast)
    rows = {r["effect"]: r for r in run_mediation(table, spec).rows}
    true = truth["effects"][exposure]["severe_or_worse_probability"]
    return {
        effect: {"estimate": rows[effect]["estimate"], "ci": (rows[effect]["ci_low"], rows[effect]["ci_high"]),
                 "p_value": rows[effect]["p_value"], "truth": float(true[key])}
        for effect, key in CHECKED.items()
    }


def coverage_study(exposure: str, reps: int, n: int, sims: int, indirect: bool, seed: int = 0,
                   method: str = "quasi-bayesian") -> dict:
    """Coverage of the 95% CIs, ACME rejection rate, bias and spread over ``reps`` replicates."""
    runs = [simulate_once(exposure, n, seed + rep, indirect, sims, method) for rep in range(reps)]
    summary = {"exposure": exposure, "indirect": indirect, "reps": reps, "n": n, "sims": sims, "method": method,
               "seed": seed}
    for effect in CHECKED:
        truth = runs[0][effect]["truth"]
        estimates = np.array([r[effect]["estimate"] for r in runs])
        covered = sum(lo <= truth <= hi for lo, hi in (r[effect]["ci"] for r in runs))
        rejected = sum(r[effect]["p_value"] < 0.05 for r in runs)
        summary[effect] = {
            "truth": truth,
            "mean_estimate": float(estimates.mean()),
            "bias": float(estimates.mean() - truth),
            "sd_estimate": float(estimates.std(ddof=1)) if reps > 1 else float("nan"),
            "coverage": covered / reps,
            "coverage_ci95": [float(x) for x in proportion_confint(covered, reps, method="wilson")],
            "rejection_rate": rejected / reps,
            "rejection_ci95": [float(x) for x in proportion_confint(rejected, reps, method="wilson")],
        }
    return summary
