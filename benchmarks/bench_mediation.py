"""Validate the mediation analysis by simulation: CI coverage with a planted indirect effect and the
false-positive rate without one. Not a test (minutes); writes ``results/mediation/validation.{json,md}``.

    .venv/bin/python benchmarks/bench_mediation.py --reps 200 --n 400 --sims 200

Data: :func:`ssinfnet.data.demo_cohort.simulate_clinical` (the demo cohort's structural equations), true
effects from its ``truth``; the method is described in :mod:`ssinfnet.analysis.validation`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

from ssinfnet.analysis.validation import CHECKED, EXPOSURES, coverage_study
from ssinfnet.fileio import write_json, write_text

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="simulated data sets per setting")
    parser.add_argument("--n", type=int, default=400, help="subjects per data set")
    parser.add_argument("--sims", type=int, default=200, help="Mediation simulations per data set")
    parser.add_argument("--method", choices=("quasi-bayesian", "bootstrap"), default="quasi-bayesian")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "mediation")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    studies, start = [], time.perf_counter()
    for exposure in EXPOSURES:
        for indirect in (True, False):
            t0 = time.perf_counter()
            study = coverage_study(exposure, args.reps, args.n, args.sims, indirect, args.seed, args.method)
            study["seconds"] = round(time.perf_counter() - t0, 1)
            studies.append(study)
            print(_line(study), flush=True)
    command = ".venv/bin/python benchmarks/bench_mediation.py " + shlex.join(sys.argv[1:])
    record = {"command": command, "machine": platform.platform(), "python": platform.python_version(),
              "seconds": round(time.perf_counter() - start, 1), "studies": studies}
    write_json(args.out / "validation.json", record)
    write_text(args.out / "validation.md", _markdown(record))
    print(f"-> {args.out / 'validation.json'}, {args.out / 'validation.md'}")
    return 0


def _line(s: dict) -> str:
    parts = [f"{e} cover {s[e]['coverage']:.3f}" for e in CHECKED]
    return (f"{s['exposure']:>18} indirect={s['indirect']!s:5} " + ", ".join(parts)
            + f", ACME rejection {s['acme']['rejection_rate']:.3f} ({s['seconds']} s)")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _markdown(record: dict) -> str:
    lines = [
        "# Mediation validation by simulation",
        "",
        f"Command: `{record['command']}` ({record['seconds']} s on {record['machine']}).",
        "",
        "Each data set is drawn from the demo cohort's structural equations (`simulate_clinical`); the analysis "
        "is `run_mediation` with mediator `lesion_burden_logit`, outcome `severe_or_worse` (logit), covariates "
        "sex + the other exposure; age contrast 60 -> 70 years, disease 0 -> 1. Effects are differences in "
        "P(severe or worse); the truth is the population value computed by the generator (Monte Carlo).",
        "Coverage = share of 95% CIs containing the truth (nominal 95%); ACME rejection = share with ACME p < 0.05 "
        "(power with a planted effect, false-positive rate without one; nominal 5%). Brackets: Wilson 95% "
        "intervals for the rate itself.",
        "",
        "| exposure | planted indirect effect | true ACME | mean ACME | ACME coverage | ADE coverage | total coverage | ACME rejection |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in record["studies"]:
        a = s["acme"]
        cover = {e: f"{_pct(s[e]['coverage'])} [{_pct(s[e]['coverage_ci95'][0])}, {_pct(s[e]['coverage_ci95'][1])}]"
                 for e in CHECKED}
        lines.append(
            f"| {s['exposure']} | {'yes' if s['indirect'] else 'no'} | {a['truth']:.4f} | {a['mean_estimate']:.4f} | "
            f"{cover['acme']} | {cover['ade']} | {cover['total']} | {_pct(a['rejection_rate'])} "
            f"[{_pct(a['rejection_ci95'][0])}, {_pct(a['rejection_ci95'][1])}] |")
    s0 = record["studies"][0]
    lines += ["", f"Settings: {s0['reps']} data sets per row, n = {s0['n']}, {s0['sims']} simulations each, "
              f"method {s0['method']}, seeds {s0['seed']}..{s0['seed'] + s0['reps'] - 1}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
