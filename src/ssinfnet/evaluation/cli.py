"""Verbs ``evaluate`` and ``compare`` (``report`` is in :mod:`ssinfnet.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssinfnet.errors import InputError
from ssinfnet.fileio import refuse_existing


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="score a model on a labeled dataset (paper and Inf-Net protocols)",
        description="Predict every image of a dataset, map the predictions back to each image's size and "
                    "score them: per-image CSV, summary.json with 95%% CIs, ROC curves, overlay gallery.",
    )
    evaluate.add_argument("--data", required=True, help="any dataset the readers accept (folder or file)")
    evaluate.add_argument("--split", default="test", choices=("train", "test"),
                          help="COVID-SemiSeg split to score (default: test)")
    evaluate.add_argument("--labels", help="label volume when --data is a NIfTI image volume")
    model = evaluate.add_mutually_exclusive_group(required=True)
    model.add_argument("--single", help="single-stage model: training run folder or .safetensors file")
    model.add_argument("--pipeline", help="pipeline folder (pipeline.json + single/multi weights)")
    evaluate.add_argument("--multi", help="multi-class model run or .safetensors (two-stage with --single)")
    evaluate.add_argument("--threshold", type=float,
                          help="override the threshold chosen on validation data (recorded as such)")
    evaluate.add_argument("--size", type=int, help="model input size, when the model does not record it")
    evaluate.add_argument("--detection", action="store_true",
                          help="also score slice-level labels (automatic for labeled slices without masks)")
    evaluate.add_argument("--positive-label", default="COVID",
                          help="slice label counted as positive in detection (default: COVID)")
    evaluate.add_argument("--gallery", type=int, default=2, help="slices saved per best/median/worst rank")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--device", help="torch device (default: GPU when available)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument("--out", required=True, help="evaluation folder to write")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    evaluate.set_defaults(func=run_evaluate)

    comparison = subparsers.add_parser(
        "compare", help="paired t-test and Wilcoxon test between evaluations of the same images",
        description="Compare evaluation folders image by image against the first one; writes "
                    "comparison.md, comparison.csv and comparison.json.",
    )
    comparison.add_argument("evaluations", nargs="+", metavar="EVAL", help="evaluation folders (first = reference)")
    comparison.add_argument("--planned", metavar="MODEL",
                            help="the model (folder name) whose comparison with the reference was planned; "
                                 "its tests are Holm-adjusted as their own family, every other one is exploratory")
    comparison.add_argument("--out", required=True, help="comparison folder to write")
    comparison.add_argument("--overwrite", action="store_true")
    comparison.set_defaults(func=run_compare)


def run_evaluate(args: argparse.Namespace) -> int:
    from ssinfnet.data.readers import read_dataset
    from ssinfnet.evaluation.evaluate import score_predictions, write_evaluation
    from ssinfnet.evaluation.predict import load_model_under_test, predict_samples
    from ssinfnet.core.provenance import content_fingerprint, git_commit

    if args.multi and not args.single:
        raise InputError("--multi needs --single (the multi-class stage takes the single stage's prior)")
    out = Path(args.out)
    refuse_existing(out, args.overwrite)  # fail before minutes of prediction, not after
    model = load_model_under_test(args.single, args.multi, args.pipeline, args.threshold, args.size, args.device)
    task = "multi" if model.pipeline.multi is not None else "single"
    samples = read_dataset(args.data, split=args.split, task=task, label_path=args.labels)
    masks = any(sample.mask is not None for sample in samples)
    labels = all(sample.meta.label is not None for sample in samples)
    positive = args.positive_label if args.detection or (labels and not masks) else None
    predictions = predict_samples(model, samples, args.batch_size)  # scored as they arrive, then dropped
    evaluation = score_predictions(samples, predictions, task == "multi", model.pipeline.threshold, positive,
                                   args.gallery, progress=not args.no_progress)
    provenance = {
        "threshold_source": model.threshold_source,
        "model": model.description,
        "git_commit": git_commit(),
        "data": {**content_fingerprint(*filter(None, (args.data, args.labels))), "split": args.split,
                 "samples": len(samples)},
    }
    write_evaluation(out, evaluation, provenance, overwrite=args.overwrite)
    summary = evaluation.summary()
    metrics = summary["metrics"]
    if task == "multi" and "Overall" in metrics:
        print(f"Overall F1 (paper: mean of the class means) {metrics['Overall']['f1']['mean']:.3f}")
    headline = metrics.get("image_mean" if task == "multi" else "infection", {}).get("f1")
    if headline:
        print(f"F1 {headline['mean']:.3f} ± {headline['ci95']:.3f} on {headline['n']} images")
    for name, auc in summary["auc"].items():
        print(f"{name} AUC {auc:.3f}")
    print(f"wrote {out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from ssinfnet.evaluation.compare import compare, markdown_table, write_comparison

    refuse_existing(args.out, args.overwrite)
    comparison = compare(args.evaluations, planned=args.planned)
    write_comparison(args.out, comparison, overwrite=args.overwrite)
    print(markdown_table(comparison), end="")
    print(f"wrote {args.out}")
    return 0

