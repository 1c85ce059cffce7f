#!/usr/bin/env bash
# Regenerates every folder in results/mediation/ except validation.* (benchmarks/bench_mediation.py, see README.md).
# Run from the repository root: bash results/mediation/run.sh   (5.5 CPU minutes on one thread, the demo
# cohort's generation included; it is skipped when runs/demo-cohort-360 exists)
set -euo pipefail
export OMP_NUM_THREADS=1
S=.venv/bin/ssinfnet
T=../shared/data/ictcf/All_Patients.csv
LABS="LY LYP NE CRP LDH IL-6"
TR="LY=log1p NE=log1p CRP=log1p LDH=log IL-6=log1p"
COMMON="--sims 1000 --imputations 20 --overwrite"

# 2. iCTCF clinical table (lab values as mediators)
$S clinical $T --report results/mediation/ictcf_parsing --overwrite > /dev/null
$S mediate --table $T --exposure age --mediator $LABS --transform $TR --outcome severe --covariates sex hospital $COMMON --out results/mediation/ictcf_age_severe > /dev/null
$S mediate --table $T --exposure underlying_any --mediator $LABS --transform $TR --outcome severe --covariates sex hospital age $COMMON --out results/mediation/ictcf_disease_severe > /dev/null
$S mediate --table $T --exposure age --mediator $LABS --transform $TR --outcome severity --outcome-type ordinal --covariates sex hospital $COMMON --out results/mediation/ictcf_age_severity_ordinal > /dev/null
$S mediate --table $T --where "morbidity!=Control" --exposure age --mediator $LABS --transform $TR --outcome severe --covariates sex hospital $COMMON --out results/mediation/ictcf_age_severe_covid_only > /dev/null

# 3. Generated cohort: images -> phenotypes -> mediation
[ -d runs/demo-cohort-360 ] || $S data make-demo runs/demo-cohort-360 --subjects 360 --seed 0
$S phenotypes runs/demo-cohort-360/volumes --out results/mediation/demo_phenotypes --overwrite
MED="lesion_pct ggo_pct consolidation_pct n_lesions lesion_hu_mean peripheral_lesion_share_pct right_lesion_share_pct"
DEMO="--table runs/demo-cohort-360/clinical.csv --map patient_id=subject_id --phenotypes results/mediation/demo_phenotypes/phenotypes.csv --where covid_label=COVID"
$S mediate $DEMO --exposure age --contrast 60 70 --mediator $MED --transform lesion_pct=logit_pct --outcome severe_or_worse --covariates sex hospital has_underlying_disease $COMMON --out results/mediation/demo_age_severe > /dev/null
$S mediate $DEMO --exposure has_underlying_disease --mediator $MED --transform lesion_pct=logit_pct --outcome severe_or_worse --covariates sex hospital age $COMMON --out results/mediation/demo_disease_severe > /dev/null
echo "results/mediation regenerated"
