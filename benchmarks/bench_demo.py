"""Benchmark ``ssinfnet demo`` (what ``make demo`` runs) end to end. Not a test.

Runs the demo as a child process into a temporary folder (cohort, coach pretraining, both stages with
negatives, evaluation on the generated test slices, a generated volume segmented, the report). Prints and
writes ``results/benchmarks/demo.json``: wall seconds, the child's peak RSS, the Dice numbers the demo
printed, its seconds per step, the command, the machine and its load average before and after (the
machine is often shared: wall seconds grow with what else runs).

    .venv/bin/python benchmarks/bench_demo.py                   # the demo preset, 2 threads
    .venv/bin/python benchmarks/bench_demo.py --set single.epochs=60 --out /tmp/demo.json --keep /tmp/demo
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssinfnet.fileio import write_json

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 300  # issue 24: <= 5 minutes wall on 2 cores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="OMP/torch threads of the demo process")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to `ssinfnet demo --set` (the record names them)")
    parser.add_argument("--out", default=str(REPO / "results" / "benchmarks" / "demo.json"))
    parser.add_argument("--keep", metavar="DIR", help="run the demo into DIR (a new folder) and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_demo_") as tmp:
        demo = Path(args.keep) if args.keep else Path(tmp) / "demo"
        command = [sys.executable, "-m", "ssinfnet", "demo", "--out", str(demo), "--no-progress",
                   *(a for o in args.overrides for a in ("--set", o))]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        load_before = os.getloadavg()
        start = time.perf_counter()
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        load_after = os.getloadavg()
        if run.returncode != 0:
            print(run.stdout + run.stderr, file=sys.stderr)
            return run.returncode
        summary = json.loads((demo / "summary.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kilobytes
    record = {
        "benchmark": "ssinfnet demo (make demo), end to end",
        "threads": args.threads, "overrides": args.overrides,
        "wall_seconds": round(seconds, 1), "target_seconds": TARGET_SECONDS, "peak_rss_mb": round(peak_mb),
        "dice": summary["dice"], "test_slices": summary["test_slices"], "step_seconds": summary["seconds"],
        "command": " ".join(["benchmarks/bench_demo.py", f"--threads {args.threads}",
                             *(f"--set {o}" for o in args.overrides)]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1_5_15_before": [round(v, 2) for v in load_before],
                    "load_average_1_5_15_after": [round(v, 2) for v in load_after]},
        "output": [line.replace(str(demo), "<demo>") for line in run.stdout.strip().splitlines()
                   if not line.startswith("[demo]")],  # no path of this machine
    }
    print(f"ssinfnet demo: {seconds:.1f} s wall (target {TARGET_SECONDS}), peak RSS {peak_mb:.0f} MB, "
          f"load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    for label, value in summary["dice"].items():
        print(f"  {label:<36} {value:.3f}")
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
