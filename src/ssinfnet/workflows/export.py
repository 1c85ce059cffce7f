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
from typing import Any, Sequence

STORAGE_DTYPES = ("fp32", "bf16", "fp16")


def export_pipeline(single: Sequence[str | Path], multi: Sequence[str | Path] = (), out: str | Path = "",
                    storage: str = "fp32", meta: dict[str, Any] | None = None, overwrite: bool = False,
                    flip: bool = False, threshold: dict[str, Any] | None = None) -> Path:
    """``single`` / ``multi``: one run per stage, or several (e.g. a cross-validation's folds) that
    become an :class:`~ssinfnet.models.ensemble.Ensemble`; ``flip``: left-right test-time augmentation.
    An ensemble or flip changes the probabilities, so its threshold must come from ``threshold``
    ({"threshold": t, "source": ...}, e.g. chosen on out-of-fold predictions by ``ssinfnet crossval``)."""
    import torch

    from ssinfnet.errors import InputError
    from ssinfnet.evaluation.predict import load_model_under_test
    from ssinfnet.inference.predictor import save_pipeline
    from ssinfnet.models.ensemble import Ensemble

    combined = len(single) > 1 or len(multi) > 1 or flip
    if combined and threshold is None:
        raise InputError("an ensemble's or flip-augmented pipeline's threshold must be chosen on its own "
                         "out-of-fold predictions: pass --threshold-from CROSSVAL.json")
    loaded = [load_model_under_test(single=s, device="cpu", bf16=False) for s in single]
    multis = [load_model_under_test(single=single[0], multi=m, device="cpu", bf16=False).pipeline.multi
              for m in multi]
    pipeline = loaded[0].pipeline
    if combined:
        pipeline.single = Ensemble([m.pipeline.single for m in loaded], flip=flip)
        pipeline.multi = Ensemble(multis, flip=flip) if multis else None
        pipeline.threshold = float(threshold["threshold"])
    else:
        pipeline.multi = multis[0] if multis else None
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[storage]
    for model in (pipeline.single, pipeline.multi):
        if model is not None:
            model.to(dtype)
    runs = [m.description for m in loaded] if combined else loaded[0].description
    source = threshold.get("source", "cross-validation") if combined else loaded[0].threshold_source
    pipeline.meta = {**(meta or {}), "runs": runs, "multi_runs": [Path(m).name for m in multi],
                     "threshold_source": source, "storage": storage, "flip_tta": flip}
    save_pipeline(out, pipeline, overwrite=overwrite)
    return Path(out)


def card_from_runs(out: str | Path, single: str | Path | Sequence[str | Path],
                   multi: str | Path | Sequence[str | Path] | None = None,
                   metrics: dict[str, Any] | None = None, sections: list[dict[str, str]] = (),
                   **context: Any) -> Path:
    """MODEL_CARD.md of the pipeline in ``out`` from its training runs (one per stage, or an ensemble's
    runs; ``context``: chosen_by, preset, overrides, regenerate; see ``model_card.card_facts``)."""
    from ssinfnet.inference.predictor import load_pipeline
    from ssinfnet.workflows.model_card import card_facts, ensemble_facts_from_runs, write_card

    stages = {"single": ensemble_facts_from_runs(_runs(single))}
    if multi:
        stages["multi"] = ensemble_facts_from_runs(_runs(multi))
    pipeline = load_pipeline(out)
    facts = card_facts(stages, pipeline.meta, pipeline.threshold, metrics, sections=sections, **context)
    return write_card(out, facts)


def _runs(runs: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="make a pipeline folder (for segment --model) from training runs",
        description="Single-stage run (+ optional multi-stage run) -> pipeline folder with weights, "
                    "input size and the validation threshold.",
    )
    parser.add_argument("--single", required=True, nargs="+", metavar="RUN",
                        help="single-stage training run (or .safetensors); several make an ensemble")
    parser.add_argument("--multi", nargs="+", default=[], metavar="RUN",
                        help="multi-stage training run (or .safetensors); several make an ensemble")
    parser.add_argument("--flip-tta", action="store_true",
                        help="average each prediction with that of the left-right mirrored image")
    parser.add_argument("--threshold-from", metavar="CROSSVAL.json",
                        help="the threshold of an ensemble / flip-augmented pipeline (ssinfnet crossval output)")
    parser.add_argument("--out", required=True, help="pipeline folder to write")
    parser.add_argument("--storage", choices=STORAGE_DTYPES, default="fp32", help="stored weight precision")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--metrics", help="summary.json of an evaluation of this pipeline, quoted in the model card")
    parser.add_argument("--card-section", action="append", default=[], metavar="FILE.json",
                        help="add a results JSON (rows or scalars) to the model card as a section")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssinfnet.errors import InputError
    from ssinfnet.fileio import refuse_existing

    refuse_existing(args.out, args.overwrite)
    from ssinfnet.core.folders import read_json
    from ssinfnet.workflows.model_card import sections_from_files

    sections = sections_from_files(args.card_section)  # bad section files fail before the export
    from ssinfnet.evaluation.legacy import strip_paths

    metrics = read_json(Path(args.metrics)) if args.metrics else None
    if args.metrics and not metrics:
        raise InputError("not an evaluation summary", args.metrics)
    metrics = strip_paths(metrics) if metrics else None  # shipped beside the weights: no machine paths
    threshold = None
    if args.threshold_from:  # crossval output: the threshold chosen with or without flip, as exported
        chosen = read_json(Path(args.threshold_from)) or {}
        threshold = chosen.get("flip" if args.flip_tta else "plain", chosen)
        if not isinstance(threshold.get("threshold"), (int, float)):
            raise InputError("holds no chosen threshold (expected ssinfnet crossval output)", args.threshold_from)
        threshold = {"threshold": threshold["threshold"], "source": chosen.get("source", "cross-validation")
                     + (" with flip" if args.flip_tta else " without flip")}
    out = export_pipeline(args.single, args.multi, args.out, args.storage, overwrite=args.overwrite,
                          flip=args.flip_tta, threshold=threshold)
    if metrics:  # the test metrics travel with the weights: the card quotes them, a test re-checks them
        from ssinfnet.fileio import write_json

        write_json(out / "metrics.json", metrics)
    if all(Path(run).is_dir() for run in args.single):  # run folders: their records say how it was trained
        card_from_runs(out, args.single, args.multi, metrics, sections)
    print(f"pipeline written to {out}")
    return 0
