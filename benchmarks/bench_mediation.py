"""Validate the mediation analysis by simulation: CI coverage with a planted indirect effect, the
false-positive rate under two kinds of null (mediator does not move the outcome; exposure does not move
the mediator), the bias under mediator-outcome confounding, and complete cases vs multiple imputation
when the mediator goes missing with the outcome. Not a test (minutes); writes
``results/mediation/validation.{json,md}``.

    nice -n 10 .venv/bin/python benchmarks/bench_mediation.py --reps 100 --n 400 --sims 100 --imputations 10

Data: :func:`ssinfnet.data.demo_cohort.simulate_clinical` (the demo cohort's structural equations), true
effects from its ``truth``; scenarios and method in :mod:`ssinfnet.analysis.validation`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from ssinfnet.analysis.validation import CHECKED, SCENARIOS, coverage_study  # noqa: E402
from ssinfnet.fileio import write_json, write_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100, help="simulated data sets per scenario")
    parser.add_argument("--n", type=int, default=400, help="subjects per data set")
    parser.add_argument("--sims", type=int, default=100, help="Mediation simulations per data set (pooled over imputations)")
    parser.add_argument("--imputations", type=int, default=10, help="imputed data sets (missing-data scenario)")
    parser.add_argument("--method", choices=("quasi-bayesian", "bootstrap"), default="quasi-bayesian")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "mediation")
    args = parser.parse_args()

    studies, start, cpu = [], time.perf_counter(), time.process_time()
    for name in args.scenarios:
        t0 = time.perf_counter()
        study = coverage_study(name, args.reps, args.n, args.sims, args.seed, args.method, args.imputations)
        study["seconds"] = round(time.perf_counter() - t0, 1)
        studies.append(study)
        print(_line(study), flush=True)
    command = "nice -n 10 .venv/bin/python benchmarks/bench_mediation.py " + shlex.join(sys.argv[1:])
    record = {"command": command, "machine": platform.platform(), "python": platform.python_version(),
              "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
              "studies": studies}
    write_json(args.out / "validation.json", record)
    write_text(args.out / "validation.md", _markdown(record))
    print(f"-> {args.out / 'validation.json'}, {args.out / 'validation.md'}")
    return 0


def _line(s: dict) -> str:
    parts = []
    for analysis, a in s["analyses"].items():
        parts.append(f"[{analysis}] " + ", ".join(f"{e} cover {a[e]['coverage']:.3f}" for e in CHECKED)
                     + f", ACME bias {a['acme']['bias']:+.4f}, rejection {a['acme']['rejection_rate']:.3f}")
    return f"{s['scenario']:>24} " + "; ".join(parts) + f" ({s['seconds']} s)"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rate(r: dict, key: str) -> str:
    low, high = r[f"{key}_ci95"]
    return f"{_pct(r[key if key == 'coverage' else 'rejection_rate'])} [{_pct(low)}, {_pct(high)}]"


def _markdown(record: dict) -> str:
    s0 = record["studies"][0]
    lines = [
        "# Mediation validation by simulation",
        "",
        f"Command: `{record['command']}` ({record['seconds']} s wall, {record['cpu_seconds']} s CPU, on "
        f"{record['machine']}).",
        "",
        f"Settings: {s0['reps']} data sets per scenario, n = {s0['n']} subjects each, {s0['sims']} simulations "
        f"per analysis (pooled over {max(s['imputations'] for s in record['studies'])} imputed data sets where "
        f"there are missing values), method {s0['method']}, seeds {s0['seed']}..{s0['seed'] + s0['reps'] - 1}.",
        "",
        "Each data set is drawn from the demo cohort's structural equations (`simulate_clinical`); the analysis "
        "is `run_mediation` with mediator `lesion_burden_logit`, outcome `severe_or_worse` (logit), covariates "
        "sex + the other exposure (unless a scenario leaves one out); age contrast 60 -> 70 years, disease 0 -> 1. "
        "Effects are differences in P(severe or worse); the truth is the population value computed by the "
        "generator (Monte Carlo). Coverage = share of 95% CIs containing the truth (nominal 95%); ACME rejection "
        "= share with ACME p < 0.05 (power with a planted effect, false-positive rate when the true ACME is 0; "
        "nominal 5%). Brackets: Wilson 95% intervals for the rate itself. Bias = mean estimate - truth.",
        "",
        "| scenario | analysis | rows (mean) | true ACME | mean ACME (bias) | ACME coverage | ADE coverage | total coverage | true total | mean total (bias) | ACME rejection |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in record["studies"]:
        for analysis, a in s["analyses"].items():
            acme, total = a["acme"], a["total"]
            lines.append(
                f"| {s['description']} | {analysis} | {a['mean_rows']:.0f} | {acme['truth']:.4f} | "
                f"{acme['mean_estimate']:.4f} ({acme['bias']:+.4f}) | {_rate(acme, 'coverage')} | "
                f"{_rate(a['ade'], 'coverage')} | {_rate(total, 'coverage')} | {total['truth']:.4f} | "
                f"{total['mean_estimate']:.4f} ({total['bias']:+.4f}) | {_rate(acme, 'rejection')} |")
    lines += ["", "Scenarios (`ssinfnet.analysis.validation.SCENARIOS`): " + "; ".join(
        f"`{s['scenario']}`: {s['description']}" for s in record["studies"]) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
