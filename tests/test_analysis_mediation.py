"""Mediation: planted-effect recovery on the demo cohort's equations, FDR, complete cases, CLI outputs."""

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from ssinfnet.analysis.mediation import MediationSpec, run_mediation
from ssinfnet.analysis.validation import coverage_study, simulate_once
from ssinfnet.cli import main
from ssinfnet.data.demo_cohort import simulate_clinical
from ssinfnet.errors import InputError

SIMS = 60  # enough for a CI in a test; the benchmark uses more


@pytest.mark.parametrize("exposure", ["age", "underlying_disease"])
def test_planted_indirect_effect_is_recovered(exposure):
    acme = simulate_once(exposure, n=500, seed=11, indirect=True, sims=SIMS)["acme"]
    low, high = acme["ci"]
    assert low <= acme["truth"] <= high
    assert low > 0  # the planted effect is found, not only covered


def test_no_planted_mediation_gives_a_ci_around_zero():
    run = simulate_once("age", n=500, seed=11, indirect=False, sims=SIMS)
    assert run["acme"]["truth"] == 0.0
    low, high = run["acme"]["ci"]
    assert low < 0 < high
    assert run["ade"]["ci"][0] > 0  # age still acts directly


def test_coverage_study_reports_power_with_a_planted_effect():
    study = coverage_study("underlying_disease", reps=2, n=400, sims=40, indirect=True)
    assert study["acme"]["rejection_rate"] == 1.0
    assert study["ade"]["truth"] == pytest.approx(0.0)


def simulated(n=300, seed=0):
    table, _ = simulate_clinical(n, seed=seed)
    rng = np.random.default_rng(seed)
    table["noise_mediator"] = rng.normal(size=n)
    return table


def test_many_mediators_get_bh_q_values_and_complete_case_report():
    table = simulated()
    table.loc[:9, "noise_mediator"] = np.nan
    table.loc[5:14, "severe_or_worse"] = np.nan  # rows 5-9 miss both
    spec = MediationSpec("age", ["lesion_burden_logit", "noise_mediator"], "severe_or_worse", ["sex", "hospital"],
                         sims=SIMS, contrast=(60, 70))
    result = run_mediation(table, spec)
    frame = result.table()
    acme = frame[frame["effect"] == "acme"].set_index("mediator")
    assert np.allclose(acme["q_value"], multipletests(acme["p_value"], method="fdr_bh")[1])
    assert acme.loc["lesion_burden_logit", "p_value"] < 0.05 < acme.loc["noise_mediator", "p_value"]
    cases = {c["mediator"]: c for c in result.cases}
    assert cases["lesion_burden_logit"]["dropped"] == 10
    assert cases["noise_mediator"]["dropped"] == 15
    assert cases["noise_mediator"]["missing_by_column"] == {"noise_mediator": 10, "severe_or_worse": 10}
    assert acme.loc["noise_mediator", "n"] == 285


def test_ordinal_outcome_runs_linear_score_and_each_cut():
    spec = MediationSpec("age", ["lesion_burden_logit"], "severity_code", ["sex"], sims=20)
    result = run_mediation(simulated(), spec)
    assert result.outcome_type == "ordinal"
    models = list(dict.fromkeys(result.table()["outcome_model"]))
    assert models == ["ordinal as linear score", "P(severity_code >= 1) (logit)", "P(severity_code >= 2) (logit)"]
    assert result.contrast[1] > result.contrast[0]  # mean -> mean + 1 SD


def test_bad_specs_are_input_errors():
    table = simulated(50)
    with pytest.raises(InputError, match="not in the table: CRP"):
        run_mediation(table, MediationSpec("age", ["CRP"], "severe_or_worse"))
    with pytest.raises(InputError, match="must be numeric"):
        run_mediation(table, MediationSpec("sex", ["lesion_burden_logit"], "severe_or_worse"))
    with pytest.raises(InputError, match="coded 0/1"):
        run_mediation(table, MediationSpec("age", ["lesion_burden_logit"], "severity_code", outcome_type="binary"))
    table["severe_or_worse"] = 0
    with pytest.raises(InputError, match="single value"):
        run_mediation(table, MediationSpec("age", ["lesion_burden_logit"], "severe_or_worse"))


def test_mediate_cli_joins_phenotypes_and_writes_every_output(tmp_path):
    table = simulated(200, seed=1)
    table.insert(0, "patient_id", table.pop("subject_id"))
    table.loc[0, "covid_label"] = "NonCOVID"
    table.drop(columns=["lesion_fraction"]).to_csv(tmp_path / "clinical.csv", index=False)
    phenotypes = pd.DataFrame({"patient_id": table["patient_id"][:-5],
                               "lesion_pct": 100 * table["lesion_fraction"][:-5]})
    phenotypes.to_csv(tmp_path / "phenotypes.csv", index=False)
    out = tmp_path / "out"
    code = main(["mediate", "--table", str(tmp_path / "clinical.csv"), "--phenotypes", str(tmp_path / "phenotypes.csv"),
                 "--where", "covid_label=COVID", "--exposure", "has_underlying_disease", "--mediator", "lesion_pct",
                 "--transform", "lesion_pct=logit_pct", "--outcome", "severe_or_worse", "--covariates", "sex", "age",
                 "--sims", "30", "--out", str(out)])
    assert code == 0
    result = json.loads((out / "mediation.json").read_text())
    assert result["join"]["clinical_rows_without_phenotypes"] == 5
    assert result["filters"][0]["rows_kept"] == 199
    assert result["complete_cases"][0]["used"] == 194
    effects = pd.read_csv(out / "mediation.csv")
    acme = effects[effects["effect"] == "acme"].iloc[0]
    assert acme["ci_low"] > 0  # the logit of the lesion percentage is the planted mediator
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    summary = (out / "summary.md").read_text()
    assert "## Complete cases" in summary and "logit(x / 100)" in summary
