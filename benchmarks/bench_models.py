"""Benchmark every network: training images/s and inference seconds per slice, fp32 eager vs the
optimised path (bf16 autocast + channels_last), in one run so the ratios are fair.

Not a test. Each (model, size, precision) runs in a fresh subprocess so its peak RSS is its own.
Training: forward, a loss on every output, backward and an SGD step on a batch of ``--batch`` slices.
Inference: one slice at a time, and ``--batch`` slices per call (what ``segment`` does).
Models are given as ``name[:key=value,...]`` (registry name and builder config); the defaults are the
networks the ``cpu`` reproduction trains and the ``paper`` preset's Res2Net-50 Inf-Net.
Prints a table and writes ``results/benchmarks/models.json`` (with the command and the machine).

    .venv/bin/python benchmarks/bench_models.py --sizes 224 352
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from ssinfnet.fileio import write_json
from ssinfnet.models import build_model
from ssinfnet.models.speed import autocast_context, channels_last_input, to_channels_last

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = [
    "infnet:backbone=resnet18,width=32",        # SInfNet / SSInfNet in the cpu preset
    "multi_infnet:backbone=resnet18,width=32",  # the multi stage in the cpu preset
    "unet:width=16", "multi_unet:width=16",      # the U-Net baselines of the cpu reproduction (--unet-width 16)
    "infnet:backbone=res2net50",                # the paper preset's Inf-Net
]
PRECISIONS = ("fp32", "bf16+channels_last")


def build(spec: str) -> torch.nn.Module:
    """``infnet:backbone=resnet18,width=32`` -> build_model("infnet", backbone="resnet18", width=32)."""
    name, _, options = spec.partition(":")
    config = dict(item.split("=", 1) for item in options.split(",") if item)
    return build_model(name, **{key: yaml.safe_load(value) for key, value in config.items()})


def measure(spec: str, size: int, precision: str, batch: int, steps: int) -> dict:
    """Seconds per image for a train step (forward, loss on every output, backward, SGD) and inference."""
    torch.manual_seed(0)
    fast = precision != "fp32"
    model = build(spec)
    if fast:
        model = to_channels_last(model)
    x = torch.rand(batch, model.in_channels, size, size)
    target = (torch.rand(batch, 1, size, size) > 0.7).float()
    if fast:
        x = channels_last_input(x)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with autocast_context("cpu", fast):
            out = model(x)
            loss = sum(F.binary_cross_entropy_with_logits(o.float(), target.expand_as(o)) for o in out.values())
        loss.backward()
        optimiser.step()

    def infer(images: torch.Tensor):
        def call() -> None:
            with torch.inference_mode(), autocast_context("cpu", fast):
                model(images)
        return call

    model.train()
    train_wall, train_cpu = _time_per_image(train_step, steps, batch)
    model.eval()
    single_wall, single_cpu = _time_per_image(infer(x[:1]), steps, 1)
    infer_wall, infer_cpu = _time_per_image(infer(x), steps, batch)
    return {
        "model": spec, "size": size, "precision": precision, "batch": batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_images_per_s": 1 / train_wall, "train_s_per_image": train_wall,
        "inference_s_per_slice_one_at_a_time": single_wall, "inference_s_per_image": infer_wall,
        "train_cpu_s_per_image": train_cpu, "inference_cpu_s_per_slice_one_at_a_time": single_cpu,
        "inference_cpu_s_per_image": infer_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _time_per_image(fn, steps: int, batch: int) -> tuple[float, float]:
    """(wall, CPU) seconds per image. CPU time (all threads) is what the work costs; on a shared,
    overloaded machine it stays meaningful when wall time does not."""
    fn()  # warm-up: oneDNN picks its kernels on the first call
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    n = steps * batch
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def machine() -> dict:
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        # The machine may be shared: a load average above the core count means slower, noisier numbers.
        "load_average_1_5_15min": list(os.getloadavg()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 352])
    parser.add_argument("--batch", type=int, default=8, help="training batch and batched-inference size")
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions after one warm-up")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "models.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one measurement as JSON
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(**json.loads(args.worker))))
        return 0

    load_before = list(os.getloadavg())
    rows = []
    print(f"{'model':<40} {'size':>4} {'precision':<19} {'train img/s':>11} {'infer s/slice':>13} "
          f"{'batched':>8} {'peak RSS MB':>11}")
    for spec in args.models:
        for size in args.sizes:
            for precision in PRECISIONS:
                job = dict(spec=spec, size=size, precision=precision, batch=args.batch, steps=args.steps)
                done = subprocess.run(
                    [sys.executable, __file__, "--threads", str(args.threads), "--worker", json.dumps(job)],
                    capture_output=True, text=True, check=True,
                )
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"{spec:<40} {size:>4} {precision:<19} {row['train_images_per_s']:>11.2f} "
                      f"{row['inference_s_per_slice_one_at_a_time']:>13.3f} {row['inference_s_per_image']:>8.3f} "
                      f"{row['peak_rss_mb']:>11.0f}", flush=True)
    speedups = _speedups(rows)
    for s in speedups:
        print(f"speed-up bf16+channels_last vs fp32: {s['model']} {s['size']}px "
              f"train x{s['train_speedup']:.2f} (cpu time x{s['train_cpu_speedup']:.2f}), "
              f"inference x{s['inference_speedup']:.2f} batched; optimised path (bf16+channels_last, batched) "
              f"vs fp32 one slice at a time x{s['inference_optimised_path_speedup']:.2f}")
    write_json(args.out, {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {**machine(), "load_average_at_start": load_before},
        "results": rows,
        "speedups": speedups,
    })
    print(f"wrote {args.out}")
    return 0


def _speedups(rows: list[dict]) -> list[dict]:
    by_key = {(r["model"], r["size"], r["precision"]): r for r in rows}
    out = []
    for (spec, size, precision), fp32 in by_key.items():
        fast = by_key.get((spec, size, PRECISIONS[1]))
        if precision == "fp32" and fast:
            out.append({"model": spec, "size": size} | {
                f"{kind}{clock}_speedup": fp32[f"{kind}{clock}_s_per_image"] / fast[f"{kind}{clock}_s_per_image"]
                for kind in ("train", "inference") for clock in ("", "_cpu")
            } | {"inference_optimised_path_speedup":
                 fp32["inference_s_per_slice_one_at_a_time"] / fast["inference_s_per_image"]})
    return out


if __name__ == "__main__":
    sys.exit(main())
