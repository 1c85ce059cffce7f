"""Verb ``export``: trained run folders -> one pipeline folder that ``segment --model`` and ``evaluate
--pipeline`` take (safetensors + JSON only).

The threshold and input size come from the runs (the threshold chosen on the single stage's
validation slices), exactly as ``evaluate --single RUN --multi RUN`` would use them. ``--storage bf16``
or ``fp16`` halves the file size; the networks are rebuilt in fp32 when loaded, so only the stored
precision of the weights changes (re-evaluate the exported pipeline to see what that costs).

The folder also gets ``MODEL_CARD.md``, generated from the runs' records (``workflows.model_card``):
with ``--metrics SUMMARY.json`` (an evaluation of this pipeline) it quotes those test metrics, and each
``--card-section FILE.json`` adds a section (e.g. a ``results/benchmarks/*.json`` table).
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


def card_from_runs(out: str | Path, single: str | Path, multi: str | Path | None = None,
                   metrics: dict[str, Any] | None = None, sections: list[dict[str, str]] = (),
                   **context: Any) -> Path:
    """MODEL_CARD.md of the pipeline in ``out`` from its training runs (``context``: chosen_by, preset,
    overrides, regenerate; see ``model_card.card_facts``)."""
    from ssinfnet.inference.predictor import load_pipeline
    from ssinfnet.workflows.model_card import card_facts, stage_facts_from_run, write_card

    stages = {"single": stage_facts_from_run(single)}
    if multi is not None:
        stages["multi"] = stage_facts_from_run(multi)
    pipeline = load_pipeline(out)
    facts = card_facts(stages, pipeline.meta, pipeline.threshold, metrics, sections=sections, **context)
    return write_card(out, facts)


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
    parser.add_argument("--metrics", help="summary.json of an evaluation of this pipeline, quoted in the model card")
    parser.add_argument("--card-section", action="append", default=[], metavar="FILE.json",
                        help="add a results JSON (rows or scalars) to the model card as a section")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssinfnet.errors import InputError

    if Path(args.out).exists() and not args.overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", args.out)
    from ssinfnet.core.folders import read_json
    from ssinfnet.workflows.model_card import sections_from_files

    sections = sections_from_files(args.card_section)  # bad section files fail before the export
    from ssinfnet.evaluation.legacy import strip_paths

    metrics = read_json(Path(args.metrics)) if args.metrics else None
    if args.metrics and not metrics:
        raise InputError("not an evaluation summary", args.metrics)
    metrics = strip_paths(metrics) if metrics else None  # shipped beside the weights: no machine paths
    out = export_pipeline(args.single, args.multi, args.out, args.storage, overwrite=args.overwrite)
    if metrics:  # the test metrics travel with the weights: the card quotes them, a test re-checks them
        from ssinfnet.fileio import write_json

        write_json(out / "metrics.json", metrics)
    if Path(args.single).is_dir():  # a run folder: its records say how it was trained
        card_from_runs(out, args.single, args.multi, metrics, sections)
    print(f"pipeline written to {out}")
    return 0
