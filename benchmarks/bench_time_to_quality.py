"""Time to quality on the real benchmark: wall-clock minutes from the start of self-supervised
pretraining until the single stage's validation Dice first reaches a target, and that checkpoint's
Dice on the test slices.

Not a test. It runs the verbs a user would type (each printed, each a subprocess with
OMP_NUM_THREADS=--threads), and times each one from process start to exit:

1. ``ssinfnet pretrain --network single`` with the preset's full pretraining budget;
2. ``ssinfnet train single --init PRETRAIN --set single.stop_at=TARGET`` (SSInfNet): training ends
   after the first epoch whose validation Dice (validation carved from the training slices) reaches the
   target, so the run's exported model *is* that checkpoint;
3. ``ssinfnet evaluate --split test`` on it, once.

For comparison the same fine-tuning from random initialisation (SInfNet) is timed from its own start.
The pretraining folder is ``WORK/pretrain-single``, the same command and place as ``ssinfnet reproduce
--work WORK`` uses, so a reproduction pointed at the same WORK reuses it instead of pretraining again.
Writes ``results/benchmarks/time_to_quality.json``.

    .venv/bin/python benchmarks/bench_time_to_quality.py --data ../shared/data --work ~/ssinfnet-work/ttq
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench_models import machine

from ssinfnet.fileio import write_json

REPO = Path(__file__).resolve().parents[1]


def timed(argv: list[str], threads: int) -> float:
    """Run one ``ssinfnet`` verb; its wall-clock seconds."""
    print(f"$ OMP_NUM_THREADS={threads} ssinfnet {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ssinfnet", *argv], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return time.perf_counter() - start


def overrides(args) -> list[str]:
    return [a for item in args.set for a in ("--set", item)]


def fine_tune(name: str, semiseg: Path, work: Path, args, init: Path | None) -> dict:
    """Train until validation Dice reaches the target (or the budget ends); score that model on test."""
    run = work / "time-to-quality" / name
    argv = ["train", "single", "--data", str(semiseg), "--out", str(run), "--preset", args.preset,
            "--no-progress", *overrides(args), "--set", f"single.stop_at={args.target}"]
    if init is not None:
        argv += ["--init", str(init)]
    seconds = timed(argv, args.threads)
    summary = json.loads((run / "summary.json").read_text())
    val = summary["validation"]["val_dice"]
    dest = work / "time-to-quality" / f"eval-{name}"
    timed(["evaluate", "--data", str(semiseg), "--split", "test", "--single", str(run), "--out", str(dest),
           "--overwrite", "--purpose", "benchmark: time to quality (reported)"], args.threads)
    metrics = json.loads((dest / "summary.json").read_text())["metrics"]
    return {
        "reached": val >= args.target, "epochs": summary["epochs"], "validation_dice": val,
        "validation_slices": summary["val_slices"], "fine_tune_minutes": seconds / 60,
        "test_dice_infnet_protocol": metrics["infnet"]["dice"]["mean"],
        "test_f1_paper_protocol": metrics["infection"]["f1"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding covid-semiseg/ and unlabeled-ct/")
    parser.add_argument("--work", type=Path, required=True, help="folder for the runs (must not hold a pretraining)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for pretraining and fine-tuning (timings then differ from the preset's)")
    parser.add_argument("--target", type=float, default=0.68, help="validation Dice to reach")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "time_to_quality.json")
    args = parser.parse_args()
    semiseg, pretrain = args.data / "covid-semiseg", args.work / "pretrain-single"
    if pretrain.exists():
        parser.error(f"{pretrain}: already exists; the benchmark times pretraining, give a fresh --work")

    load_before = list(os.getloadavg())
    pretrain_seconds = timed(["pretrain", "--network", "single", "--data", str(args.data / "unlabeled-ct"),
                              str(semiseg), "--out", str(pretrain), "--preset", args.preset, "--no-progress",
                              *overrides(args)],
                             args.threads)
    ssinfnet = fine_tune("ssinfnet", semiseg, args.work, args, pretrain)
    ssinfnet["pretrain_minutes"] = pretrain_seconds / 60
    ssinfnet["minutes_to_quality"] = ssinfnet["pretrain_minutes"] + ssinfnet["fine_tune_minutes"]
    sinfnet = fine_tune("sinfnet", semiseg, args.work, args, None)
    sinfnet["minutes_to_quality"] = sinfnet["fine_tune_minutes"]
    for name, row in (("SSInfNet", ssinfnet), ("SInfNet", sinfnet)):
        state = "reached" if row["reached"] else "NOT reached"
        print(f"{name}: validation Dice {args.target} {state} after {row['minutes_to_quality']:.1f} min "
              f"({row['epochs']} fine-tuning epochs); test Dice {row['test_dice_infnet_protocol']:.3f} "
              f"(Inf-Net protocol), F1 {row['test_f1_paper_protocol']['mean']:.3f} (paper protocol)")
    write_json(args.out, {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "preset": args.preset, "overrides": args.set, "target_validation_dice": args.target, "threads": args.threads,
        "machine": {**machine(), "load_average_at_start": load_before},
        "SSInfNet": ssinfnet, "SInfNet": sinfnet,
    })
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
