"""Benchmark ``ssinfnet segment`` on a 512 x 512 x N CT volume (default N = 100). Not a test.

Segments a generated chest volume (HU NIfTI, lungs in 80% of the slices) end to end: read, two-stage prediction in slice
batches, lung mask, quantities, all output files. Uses the bundled default model when installed,
else a randomly initialised pipeline with the architecture and input size of the ``cpu`` training
preset (its speed is the trained model's speed; its labels are meaningless). Prints the seconds per
stage and writes ``results/benchmarks/segment.json`` with the command, machine and model used.

    .venv/bin/python benchmarks/bench_segment.py                # 512 x 512 x 100, 1 thread
    .venv/bin/python benchmarks/bench_segment.py --threads 2 --precision fp32
    .venv/bin/python benchmarks/bench_segment.py --set model.backbone=resnet18 multi_model.backbone=resnet18
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from ssinfnet.fileio import write_json
from ssinfnet.inference import predictor
from ssinfnet.inference.lungmask import lung_mask
from ssinfnet.inference.segment import read_scan, resolve_pipeline, segment

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 20.0
#: Fraction of the slices holding lung (a chest CT also covers the neck and upper abdomen).
LUNG_SLICE_FRACTION = 0.8


def chest_volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """int16 HU (x, y, z): body, two lungs with noise, GGO and consolidation blobs.

    Like a clinical chest CT, the scan runs past the lungs: they fill the middle
    :data:`LUNG_SLICE_FRACTION` of the slices (neck above, upper abdomen below).
    """
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij", sparse=True)
    volume = np.full(shape, -1000.0, dtype=np.float32)
    volume[np.broadcast_to((x / 0.9) ** 2 + (y / 0.65) ** 2 <= 1, shape)] = 40.0
    for centre in (-0.42, 0.42):
        volume[((x - centre) / 0.33) ** 2 + (y / 0.5) ** 2 + (z / LUNG_SLICE_FRACTION) ** 2 <= 1] = -850.0
    volume += rng.normal(0, 20, size=shape).astype(np.float32)
    volume[((x + 0.4) ** 2 + y ** 2 + z ** 2) <= 0.15 ** 2] = -500.0
    volume[((x - 0.5) ** 2 + (y - 0.2) ** 2 + (z - 0.3) ** 2) <= 0.1 ** 2] = 20.0
    return volume.astype(np.int16)


def load_model(device: str | None, bf16: bool | None, overrides: list[str]) -> tuple[object, str]:
    if (predictor.DEFAULT_WEIGHTS / "pipeline.json").is_file() and not overrides:
        return resolve_pipeline(None, device, bf16), "bundled default model"
    from ssinfnet.models import build_model
    from ssinfnet.training.config import load_config

    config = load_config("cpu", overrides)
    models = []
    for key in ("model", "multi_model"):
        spec = dict(config[key])
        models.append(build_model(spec.pop("name"), **spec))
    size = int(config["data"]["size"])
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        predictor.save_pipeline(Path(tmp) / "pipeline", predictor.Pipeline(*models, size=size, device="cpu"))
        pipeline = resolve_pipeline(Path(tmp) / "pipeline", device, bf16)
    description = (f"randomly initialised pipeline, cpu preset architecture{' with ' + ' '.join(overrides) if overrides else ''}: "
                   f"{config['model']} + {config['multi_model']} at {size} px")
    return pipeline, description


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CI machine has 2 shared cores)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="cpu-preset overrides for the random pipeline, e.g. model.backbone=resnet18")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "segment.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    pipeline, model_description = load_model(args.device, bf16, args.set)
    shape = (512, 512, args.slices)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chest.nii.gz"
        nib.save(nib.Nifti1Image(chest_volume(shape), np.diag([-0.7, -0.7, 2.5, 1.0])), path)
        timings = {}
        start = time.perf_counter()
        scan = read_scan(path)
        timings["read_s"] = time.perf_counter() - start
        start = time.perf_counter()
        lung_mask(scan.stack)
        timings["lung_mask_s"] = time.perf_counter() - start
        start = time.perf_counter()
        result = segment(scan, model=pipeline, batch_size=args.batch_size, progress=True)
        timings["segment_s"] = time.perf_counter() - start
        start = time.perf_counter()
        result.save(Path(tmp) / "out")
        timings["save_s"] = time.perf_counter() - start
    total = timings["read_s"] + timings["segment_s"] + timings["save_s"]
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "volume_shape": list(shape),
        "volume": f"generated chest, lungs in the middle {LUNG_SLICE_FRACTION:.0%} of the slices",
        "model": model_description,
        "device": str(getattr(pipeline, "device", "cpu")),
        "bf16": bool(getattr(pipeline, "bf16", False)),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        **{key: round(value, 2) for key, value in timings.items()},
        "total_s": round(total, 2),
        "note": "total = read + segment + save; segment includes the lung mask (lung_mask_s, timed alone)",
        "seconds_per_slice": round(total / args.slices, 3),
        "target_s": TARGET_SECONDS,
        "meets_target": total <= TARGET_SECONDS,
    }
    for key, value in record.items():
        print(f"{key}: {value}")
    write_json(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
