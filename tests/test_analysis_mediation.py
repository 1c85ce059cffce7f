"""Mediation: planted-effect recovery on the demo cohort's equations, FDR, complete cases, covariates that
drop out, missingness by outcome, multiple imputation beside complete cases, common rows, outputs."""

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from ssinfnet.analysis.mediation import COMMON, COMPLETE, IMPUTED, MediationSpec, run_mediation
from ssinfnet.analysis.mediation_outputs import format_p
from ssinfnet.analysis.validation import coverage_study, simulate_once
from ssinfnet.cli import main
from ssinfnet.data.demo_cohort import simulate_clinical
from ssinfnet.errors import InputError

SIMS = 60  # enough for a CI in a test; the benchmark uses more


@pytest.mark.parametrize("exposure", ["age", "disease"])
def test_planted_indirect_effect_is_recovered(exposure):
    acme = simulate_once(f"{exposure}_planted", n=500, seed=11, sims=SIMS)[COMPLETE]["acme"]
    low, high = acme["ci"]
    assert low <= acme["truth"] <= high
    assert low > 0  # the planted effect is found, not only covered


def test_no_planted_mediation_gives_a_ci_around_zero():
    run = simulate_once("age_no_outcome_path", n=500, seed=11, sims=SIMS)[COMPLETE]
    assert run["acme"]["truth"] == 0.0
    low, high = run["acme"]["ci"]
    assert low < 0 < high
    assert run["ade"]["ci"][0] > 0  # age still acts directly


def test_coverage_study_reports_power_with_a_planted_effect():
    study = coverage_study("disease_planted", reps=2, n=400, sims=40)["analyses"][COMPLETE]
    assert study["acme"]["rejection_rate"] == 1.0
    assert study["ade"]["truth"] == pytest.approx(0.0)


def simulated(n=300, seed=0):
    table, _ = simulate_clinical(n, seed=seed)
    rng = np.random.default_rng([seed, 99])  # not the generator's stream (its first normals are the ages)
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
    acme = frame[(frame["effect"] == "acme") & (frame["analysis"] == COMPLETE)].set_index("mediator")
    floor = 2 / SIMS  # a p of 0 enters BH as its bound
    assert np.allclose(acme["q_value"], multipletests(np.maximum(acme["p_value"], floor), method="fdr_bh")[1])
    assert acme.loc["lesion_burden_logit", "p_value"] < 0.05 < acme.loc["noise_mediator", "p_value"]
    cases = {m: result.analysis(COMPLETE, m) for m in spec.mediators}
    assert cases["lesion_burden_logit"]["dropped"] == 10
    assert cases["noise_mediator"]["dropped"] == 15
    assert cases["noise_mediator"]["missing_by_column"] == {"noise_mediator": 10, "severe_or_worse": 10}
    assert acme.loc["noise_mediator", "n"] == 285
    common = frame[(frame["effect"] == "acme") & (frame["analysis"] == COMMON)]
    assert list(common["n"]) == [285, 285]  # ranked only on the rows both mediators have


def test_ordinal_outcome_runs_linear_score_and_each_cut():
    spec = MediationSpec("age", ["lesion_burden_logit"], "severity_code", ["sex"], sims=20)
    result = run_mediation(simulated(), spec)
    assert result.outcome_type == "ordinal"
    models = list(dict.fromkeys(result.table()["outcome_model"]))
    assert models == ["ordinal as linear score", "P(severity_code >= 1) (logit)", "P(severity_code >= 2) (logit)"]
    low, high = result.analysis(COMPLETE, "lesion_burden_logit")["contrast"]
    assert high > low  # mean -> mean + 1 SD


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
    assert result["analyses"][0]["used"] == 194
    effects = pd.read_csv(out / "mediation.csv")
    acme = effects[effects["effect"] == "acme"].iloc[0]
    assert acme["ci_low"] > 0  # the logit of the lesion percentage is the planted mediator
    assert (out / "forest.png").read_bytes()[:4] == b"\x89PNG"
    summary = (out / "summary.md").read_text()
    assert "## Rows and covariates per analysis" in summary and "logit(x / 100)" in summary


def one_hospital_lab(n=300, seed=2):
    """A lab measured at Union only, and there more often missing in severe patients."""
    table = simulated(n, seed)
    table["lab"] = table["lesion_burden_logit"] + np.random.default_rng(seed).normal(0, 0.3, n)
    table.loc[table["hospital"] == "Liyuan", "lab"] = np.nan
    severe_union = table.index[(table["hospital"] == "Union") & (table["severe_or_worse"] == 1)]
    table.loc[severe_union[: len(severe_union) // 2], "lab"] = np.nan
    return table


def test_covariate_with_one_value_in_the_analysed_rows_is_recorded_not_dropped_silently():
    table = one_hospital_lab()
    spec = MediationSpec("age", ["lesion_burden_logit", "lab"], "severe_or_worse", ["sex", "hospital"],
                         sims=SIMS, imputations=4)
    result = run_mediation(table, spec)
    full = result.analysis(COMPLETE, "lesion_burden_logit")["covariates"]
    assert full["entered"] == {"sex": ["sex=Male"], "hospital": ["hospital=Union"]} and full["dropped"] == {}
    assert full["reference"] == {"sex": "Female", "hospital": "Liyuan"}
    for analysis in (COMPLETE, COMMON, IMPUTED):
        lab = result.analysis(analysis, "lab")["covariates"]
        assert list(lab["entered"]) == ["sex"]
        assert lab["dropped"]["hospital"].startswith(f"one value in the {result.analysis(analysis, 'lab').get('used', result.analysis(analysis, 'lab')['rows'])} analysed rows (Union)")
    rows = result.table()
    assert set(rows.loc[rows["mediator"] == "lab", "covariates_left_out"]) == {"hospital"}
    full_rows = rows[(rows["mediator"] == "lesion_burden_logit") & (rows["analysis"] == COMPLETE)]
    assert set(full_rows["covariates_entered"]) == {"sex hospital"}
    liyuan = int((table["hospital"] == "Liyuan").sum())
    assert result.analysis(IMPUTED, "lab")["left_out_levels"] == {"hospital=Liyuan": liyuan}  # never measured: not imputed


def test_missingness_is_reported_by_outcome_level_and_stratum():
    table = one_hospital_lab()
    spec = MediationSpec("age", ["lab"], "severe_or_worse", ["sex", "hospital"], sims=SIMS)
    report = pd.DataFrame(run_mediation(table, spec).missingness).set_index(["stratum", "outcome_level"])
    union = table[table["hospital"] == "Union"]
    for level in (0, 1):
        rows = union[union["severe_or_worse"] == level]
        assert report.loc[("hospital=Union", level), "rows"] == len(rows)
        assert report.loc[("hospital=Union", level), "missing"] == rows["lab"].isna().sum()
        assert report.loc[("hospital=Liyuan", level), "missing"] == report.loc[("hospital=Liyuan", level), "rows"]
    severe = union["severe_or_worse"] == 1
    assert union.loc[severe, "lab"].isna().mean() > 0.45 > union.loc[~severe, "lab"].isna().mean() == 0


def test_contrast_is_computed_on_the_analysed_rows():
    table = simulated()
    old = table["age"] >= table["age"].quantile(0.8)
    table.loc[old, "noise_mediator"] = np.nan
    result = run_mediation(table, MediationSpec("age", ["lesion_burden_logit", "noise_mediator"], "severe_or_worse",
                                                ["sex"], sims=20))
    ages = table.loc[~old, "age"]
    assert result.analysis(COMPLETE, "noise_mediator")["contrast"] == pytest.approx([ages.mean(), ages.mean() + ages.std()])
    every = table["age"]
    assert result.analysis(COMPLETE, "lesion_burden_logit")["contrast"] == pytest.approx([every.mean(), every.mean() + every.std()])
    assert result.analysis(COMMON, "lesion_burden_logit")["contrast"] == result.analysis(COMPLETE, "noise_mediator")["contrast"]


def test_a_p_value_of_zero_prints_as_below_the_simulation_resolution():
    assert format_p(0.0, 1000) == "< 0.002"  # statsmodels' smallest non-zero p is 2 / draws
    assert format_p(0.004, 1000) == "0.004"
    assert format_p(0.0, 60) == "< 0.03333"


def test_imputation_corrects_outcome_dependent_missingness_that_biases_complete_cases():
    run = simulate_once("age_missing_by_outcome", n=3000, seed=3, sims=40, imputations=5)
    truth = run[COMPLETE]["total"]["truth"]
    cc, mi = run[COMPLETE]["total"], run[IMPUTED]["total"]
    assert cc["n"] < 0.6 * mi["n"] and mi["n"] == 3000
    assert not cc["ci"][0] <= truth <= cc["ci"][1]  # complete cases: the severe are under-represented
    assert mi["ci"][0] <= truth <= mi["ci"][1]
    assert abs(mi["estimate"] - truth) < abs(cc["estimate"] - truth) / 3


def test_binary_mediator_is_imputed_with_observed_values():
    from ssinfnet.analysis.missing_data import impute_mediator

    table = simulated(200)
    table["high_burden"] = (table["lesion_burden_logit"] > table["lesion_burden_logit"].median()).astype(float)
    table.loc[:39, "high_burden"] = np.nan
    spec = MediationSpec("age", ["high_burden"], "severe_or_worse", ["sex"], sims=20, imputations=3)
    datasets, report = impute_mediator(table, spec, "high_burden")
    assert len(datasets) == 3 and report["imputed"] == 40 and "predictive mean matching" in report["imputation_model"]
    for data in datasets:
        assert set(data["high_burden"].unique()) == {0.0, 1.0}
        assert data["high_burden"][40:].equals(table["high_burden"][40:])  # observed values untouched


def mediate_args(tmp_path, out, *extra):
    table = one_hospital_lab(200, seed=4)
    table.to_csv(tmp_path / "clinical.csv", index=False)
    return ["mediate", "--table", str(tmp_path / "clinical.csv"), "--exposure", "age", "--mediator",
            "lesion_burden_logit", "lab", "--outcome", "severe_or_worse", "--covariates", "sex", "hospital",
            "--sims", "40", "--imputations", "4", "--out", str(out), *extra]


def test_mediate_reports_imputed_beside_complete_cases_and_covariates_used(tmp_path):
    out = tmp_path / "out"
    assert main(mediate_args(tmp_path, out)) == 0
    result = json.loads((out / "mediation.json").read_text())
    analyses = {(a["analysis"], a["mediator"]): a for a in result["analyses"]}
    assert analyses[IMPUTED, "lab"]["imputed"] == analyses[IMPUTED, "lab"]["rows"] - analyses[COMPLETE, "lab"]["used"]
    assert {r["analysis"] for r in result["results"]} == {COMPLETE, COMMON, IMPUTED}
    assert result["missingness_by_outcome"][0]["stratum"] == "all rows"
    summary = (out / "summary.md").read_text()
    lines = summary.splitlines()
    lines = lines[lines.index("## Outcome model: binary (logit)"):]
    first = next(i for i, line in enumerate(lines) if line.startswith("| `lab` | complete cases |"))
    assert "| `lab` | complete cases |" in lines[first] and "| `lab` | multiple imputation |" in lines[first + 1]
    assert "left out: hospital: one value in the" in summary
    assert "## Missing mediator values by outcome level" in summary and "hospital=Liyuan" in summary
    assert "Sequential ignorability" in summary and "consistent with mediation" in summary
    assert "is mediated by" not in summary
    assert "common complete cases, largest ACME first" in summary


def test_mediate_refuses_an_existing_output_and_a_failed_write_leaves_the_old_set(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main(mediate_args(tmp_path, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(mediate_args(tmp_path, out)) == 2
    assert "already exists (pass --overwrite" in capsys.readouterr().err
    import ssinfnet.analysis.mediation_outputs as outputs

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the run were stopped half-way through writing the set

    monkeypatch.setattr(outputs, "forest_plot", killed)
    assert main(mediate_args(tmp_path, out, "--overwrite", "--seed", "1")) != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set, whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.undo()
    assert main(mediate_args(tmp_path, out, "--overwrite", "--seed", "1")) == 0
    assert (out / "mediation.csv").read_bytes() != before["mediation.csv"]


def test_mediators_with_the_same_complete_cases_are_ranked_without_a_separate_common_analysis():
    from ssinfnet.analysis.mediation_outputs import summary_markdown

    result = run_mediation(simulated(), MediationSpec("age", ["lesion_burden_logit", "noise_mediator"],
                                                      "severe_or_worse", ["sex"], sims=20))
    assert {r["analysis"] for r in result.rows} == {COMPLETE}
    summary = summary_markdown(result, {})
    ranked = summary.split("compared on the same 300 common complete cases")[1].splitlines()[4]
    assert ranked.startswith("| `lesion_burden_logit` | complete cases | 300 |")  # the planted mediator first


def test_sensitivity_analyses_that_cannot_run_are_noted_not_fatal():
    table = simulated(120, seed=5)
    table["sparse"] = np.nan
    keep = list(table.index[table["severe_or_worse"] == 1][:5]) + list(table.index[table["severe_or_worse"] == 0][:5])
    table.loc[keep, "sparse"] = table.loc[keep, "lesion_burden_logit"]  # 10 observed: CC runs, MI cannot
    spec = MediationSpec("age", ["lesion_burden_logit", "sparse"], "severe_or_worse",
                         ["sex", "hospital", "has_underlying_disease"], sims=20, imputations=2)
    result = run_mediation(table, spec)
    assert result.analysis(COMPLETE, "sparse")["used"] == 10
    assert result.analysis(IMPUTED, "sparse") is None
    assert any(n.startswith("sparse, multiple imputation: not run, only 10 observed values for an imputation "
                            "model with 10 parameters") for n in result.notes)


def test_common_rows_with_a_single_outcome_value_are_noted_and_the_rest_runs():
    table = simulated(200, seed=6)
    severe, mild = table.index[table["severe_or_worse"] == 1], table.index[table["severe_or_worse"] == 0]
    table["a"] = np.nan
    table["b"] = np.nan
    table.loc[list(severe[:20]) + list(mild[:40]), "a"] = 0.5
    table.loc[list(severe[20:40]) + list(mild[:40]), "b"] = 1.5  # shared rows: the 40 mild patients only
    table["a"] += np.random.default_rng(1).normal(size=200)
    table["b"] += np.random.default_rng(2).normal(size=200)
    result = run_mediation(table, MediationSpec("age", ["a", "b"], "severe_or_worse", ["sex"], sims=20))
    assert {r["analysis"] for r in result.rows} == {COMPLETE}
    assert any(n.startswith("a, common complete cases: not run, outcome 'severe_or_worse' takes a single value")
               for n in result.notes)
    from ssinfnet.analysis.mediation_outputs import summary_markdown

    assert "Mediators are not ranked" in summary_markdown(result, {})  # same count (60), different patients
