"""Verb ``export``: trained run folders -> one pipeline folder that ``segment --model`` and ``evaluate
--pipeline`` take (safetensors + JSON only).

The threshold and input size come from the runs (the threshold chosen on the single stage's
validation slices), exactly as ``evaluate --single RUN --multi RUN`` would use them. ``--storage bf16``
or ``fp16`` halves the file size; the networks are rebuilt in fp32 when loaded, so only the stored
precision of the weights changes (re-evaluate the exported pipeline to see what that costs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

STORAGE_DTYPES = ("fp32", "bf16", "fp16")


def export_pipeline(single: str | Path, multi: str | Path | None, out: str | Path, storage: str = "fp32",
                    meta: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    import torch

    from ssinfnet.evaluation.predict import load_model_under_test
    from ssinfnet.inference.predictor import save_pipeline

    loaded = load_model_under_test(single=single, multi=multi, device="cpu")
    pipeline = loaded.pipeline
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[storage]
    pipeline.single.to(dtype)
    if pipeline.multi is not None:
        pipeline.multi.to(dtype)
    pipeline.meta = {**(meta or {}), "runs": loaded.description, "threshold_source": loaded.threshold_source,
                     "storage": storage}
    save_pipeline(out, pipeline, overwrite=overwrite)
    return Path(out)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="make a pipeline folder (for segment --model) from training runs",
        description="Single-stage run (+ optional multi-stage run) -> pipeline folder with weights, "
                    "input size and the validation threshold.",
    )
    parser.add_argument("--single", required=True, help="single-stage training run (or .safetensors)")
    parser.add_argument("--multi", help="multi-stage training run (or .safetensors)")
    parser.add_argument("--out", required=True, help="pipeline folder to write")
    parser.add_argument("--storage", choices=STORAGE_DTYPES, default="fp32", help="stored weight precision")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssinfnet.errors import InputError

    if Path(args.out).exists() and not args.overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", args.out)
    out = export_pipeline(args.single, args.multi, args.out, args.storage, overwrite=args.overwrite)
    print(f"pipeline written to {out}")
    return 0
