"""Verbs ``evaluate`` and ``compare`` (``report`` is in :mod:`ssinfnet.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssinfnet.errors import InputError
from ssinfnet.evaluation.ledger import DEFAULT_PURPOSE, LEDGER_ENV
from ssinfnet.fileio import refuse_existing


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="score a model on a labeled dataset (paper and Inf-Net protocols)",
        description="Predict every image of a dataset by segment's own path (lung mask, crop, both stages, "
                    "lesions confined to the lung; --raw: the networks alone, the Inf-Net benchmark protocol) and "
                    "score them: per-image CSV, per-volume CSV for volumes, summary.json with 95% CIs, ROC "
                    "curves, overlay gallery. Layouts are detected: COVID-SemiSeg; images/ + masks/ (binary "
                    "0/1, 0/255 or 0/1/2 masks); ct/ + masks/ NIfTI volumes; a NIfTI volume with --labels; a "
                    "DICOM series with slice_labels.csv (slice-level detection).",
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
    evaluate.add_argument("--positive-label", default=None,
                          help="slice label counted as positive in detection (default: 'infection' for a series "
                               "with slice_labels.csv, else COVID)")
    evaluate.add_argument("--raw", action="store_true",
                          help="score the networks alone on whole slices (Inf-Net benchmark protocol) instead of "
                               "what segment gives")
    evaluate.add_argument("--truth", choices=("auto", "binary", "multi"), default="auto",
                          help="masks as infection only (binary) or background/GGO/consolidation (multi); "
                               "auto: multi when some mask holds label 2")
    evaluate.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                          help="as segment: auto = bf16 where the hardware runs it natively")
    evaluate.add_argument("--gallery", type=int, default=2, help="slices saved per best/median/worst rank")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--device", help="torch device (default: GPU when available)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument("--out", required=True, help="evaluation folder to write")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    evaluate.add_argument("--purpose", default=DEFAULT_PURPOSE,
                          help="why the COVID-SemiSeg test split is scored, for its row in the test ledger "
                               f"(default: {DEFAULT_PURPOSE}; the test slices are for reporting, never for choosing)")
    evaluate.add_argument("--ledger", help=f"test ledger CSV (default: ${LEDGER_ENV}, else results/test-ledger.csv "
                                           "of the source checkout; none when installed without one)")
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
    import numpy as np

    from ssinfnet.data.readers import SLICE_LABEL_NAMES, detect_layout, read_dataset
    from ssinfnet.evaluation.evaluate import PREDICTIONS, score_predictions, truth_is_multiclass, write_evaluation
    from ssinfnet.evaluation.ledger import ledger_for
    from ssinfnet.evaluation.predict import load_model_under_test, predict_samples
    from ssinfnet.core.provenance import content_fingerprint, git_commit

    if args.multi and not args.single:
        raise InputError("--multi needs --single (the multi-class stage takes the single stage's prior)")
    out = Path(args.out)
    refuse_existing(out, args.overwrite)  # fail before minutes of prediction, not after
    bf16 = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    model = load_model_under_test(args.single, args.multi, args.pipeline, args.threshold, args.size, args.device, bf16)
    task = "multi" if model.pipeline.multi is not None else "single"
    layout = detect_layout(args.data)
    samples = read_dataset(args.data, split=args.split, task=task, label_path=args.labels)
    for sample in samples:  # held until the end (gallery, ROC): labels 0..2 as uint8, an eighth of int64's memory
        if sample.mask is not None:
            sample.mask = sample.mask.astype(np.uint8)
    test_split = ledger_for(samples, args.ledger)  # None unless the test split; its ledger checked before predicting
    masks = any(sample.mask is not None for sample in samples)
    multiclass = {"auto": truth_is_multiclass(samples), "binary": False, "multi": True}[args.truth]
    scored_task = "multi" if task == "multi" and multiclass else "single"
    labels = all(sample.meta.label is not None for sample in samples)
    positive = args.positive_label or (SLICE_LABEL_NAMES["1"] if layout == "dicom-slice-labels" else "COVID")
    detect = args.detection or (labels and not masks)
    prediction = "raw" if args.raw else "product"
    predictions = predict_samples(model, samples, args.batch_size, raw=args.raw)  # scored as they arrive
    evaluation = score_predictions(samples, predictions, scored_task == "multi", model.pipeline.threshold,
                                   positive if detect else None, args.gallery, progress=not args.no_progress,
                                   calls_from_labels=not args.raw)
    provenance = {
        "prediction": prediction,
        "prediction_definition": PREDICTIONS[prediction],
        "truth": "multi-class" if multiclass else "binary (infection only)",
        "layout": layout,
        "threshold_source": model.threshold_source,
        "model": model.description,
        "precision": "bf16" if model.pipeline.bf16 else "fp32",
        "git_commit": git_commit(),
        "data": {**content_fingerprint(*filter(None, (args.data, args.labels))), "split": args.split,
                 "samples": len(samples)},
    }
    write_evaluation(out, evaluation, provenance, overwrite=args.overwrite)
    ledger_line = test_split and test_split.record(
        model.description, commit=provenance["git_commit"], prediction=prediction, purpose=args.purpose,
        data_sha256=provenance["data"]["sha256"], record=out.name)
    for line in summary_lines(evaluation.summary(), prediction):
        print(line)
    if ledger_line:
        print(ledger_line)
    print(f"wrote {out}")
    return 0


def summary_lines(summary: dict, prediction: str) -> list[str]:
    """The closing lines of ``evaluate``: what was scored, the headline F1 (paper protocol), the per-volume
    Dice, the AUCs and the detection operating point; each only where the data define it."""
    metrics = summary["metrics"]
    lines = [f"scored: {prediction} predictions, {summary['images']} images"
             + (f" in {summary['volumes']} volumes" if "volumes" in summary else "")]
    overall = metrics.get("Overall", {}).get("f1")
    if overall:
        lines.append(f"Overall F1 (paper: mean of the class means) {overall['mean']:.3f}")
    for group, name in (("infection", "infection F1"), ("image_mean", "per-image class-mean F1")):
        headline = metrics.get(group, {}).get("f1")
        if headline:
            lines.append(f"{name} {headline['mean']:.3f} ± {headline['ci95']:.3f} on {headline['n']} images")
    dice = metrics.get("volume", {}).get("infection_dice")
    if dice:
        lines.append(f"infection Dice per volume (3D) {dice['mean']:.3f} ± {dice['ci95']:.3f} on {dice['n']} volumes")
    for name, auc in summary["auc"].items():
        lines.append(f"{name} AUC {auc:.3f}")
    detection = summary.get("detection")
    if detection:
        lines.append(f"detection at '{detection['operating_point']}': sensitivity {detection['sensitivity']:.3f}, "
                     f"specificity {detection['specificity']:.3f} ({detection['positives']} positive, "
                     f"{detection['negatives']} negative slices)")
    return lines


def run_compare(args: argparse.Namespace) -> int:
    from ssinfnet.evaluation.compare import compare, markdown_table, write_comparison

    refuse_existing(args.out, args.overwrite)
    comparison = compare(args.evaluations, planned=args.planned)
    write_comparison(args.out, comparison, overwrite=args.overwrite)
    print(markdown_table(comparison), end="")
    print(f"wrote {args.out}")
    return 0

