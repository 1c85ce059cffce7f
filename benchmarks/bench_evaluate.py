"""Benchmark ``ssinfnet evaluate`` on N generated 256 x 256 slices (default 1614, the size of the run in
issue 13 that took 21 min and 3.6 GB). Not a test.

Writes a demo cohort at 256 x 256 (``make_demo_cohort``), repeats its labeled test slices under new names
until there are N of them (COVID-SemiSeg layout), then runs ``ssinfnet evaluate`` on them with the bundled
two-stage pipeline as a child process, end to end: read, predict, score, write. Prints and writes
``results/benchmarks/evaluate.json``: wall seconds, the child's peak RSS, the command and the machine
(CPU time on a shared machine: wall seconds grow with what else runs).

    nice .venv/bin/python benchmarks/bench_evaluate.py                 # 1614 slices, 2 threads
    .venv/bin/python benchmarks/bench_evaluate.py --slices 200 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.data.readers import SEMISEG_FOLDERS
from ssinfnet.fileio import write_json

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "src" / "ssinfnet" / "weights" / "default"
SIZE = 256


def make_slices(root: Path, count: int) -> Path:
    """A COVID-SemiSeg test split of ``count`` labeled 256 x 256 slices under ``root/semiseg``."""
    cohort = make_demo_cohort(root / "cohort", size=SIZE)
    images, masks = (cohort / "semiseg" / sub for sub in SEMISEG_FOLDERS["test", "multi"])
    out = root / "semiseg"
    out_images, out_masks = (out / sub for sub in SEMISEG_FOLDERS["test", "multi"])
    out_images.mkdir(parents=True)
    out_masks.mkdir(parents=True)
    sources = sorted(images.iterdir())
    for n in range(count):
        image = sources[n % len(sources)]
        shutil.copyfile(image, out_images / f"{n:05d}{image.suffix}")
        mask = next(masks.glob(image.stem + ".*"))
        shutil.copyfile(mask, out_masks / f"{n:05d}{mask.suffix}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=1614)
    parser.add_argument("--threads", type=int, default=2, help="OMP/torch threads of the evaluate process")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=str(REPO / "results" / "benchmarks" / "evaluate.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        data = make_slices(Path(tmp), args.slices)
        command = [sys.executable, "-m", "ssinfnet", "evaluate", "--data", str(data), "--split", "test",
                   "--pipeline", str(BUNDLED), "--batch-size", str(args.batch_size), "--device", "cpu",
                   "--out", str(Path(tmp) / "evaluation"), "--no-progress"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        start = time.perf_counter()
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            print(run.stdout + run.stderr, file=sys.stderr)
            return run.returncode
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kilobytes
    record = {
        "benchmark": "ssinfnet evaluate, bundled two-stage pipeline, end to end (read, predict, score, write)",
        "slices": args.slices, "size": [SIZE, SIZE], "threads": args.threads, "batch_size": args.batch_size,
        "wall_seconds": round(seconds, 1), "seconds_per_slice": round(seconds / args.slices, 3),
        "peak_rss_mb": round(peak_mb), "command": " ".join(["benchmarks/bench_evaluate.py", *_options(args)]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "output": [line for line in run.stdout.strip().splitlines() if not line.startswith("wrote ")],
    }
    print(f"{args.slices} slices of {SIZE}x{SIZE}: {seconds:.1f} s wall, peak RSS {peak_mb:.0f} MB")
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


def _options(args: argparse.Namespace) -> list[str]:
    """The options that change the measurement (not --out, a path of this machine)."""
    return [f"--slices {args.slices}", f"--threads {args.threads}", f"--batch-size {args.batch_size}"]


if __name__ == "__main__":
    sys.exit(main())
