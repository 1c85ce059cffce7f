"""Verb ``crossval``: out-of-fold scores of a cross-validation's fold runs, and the choices made on them.

Each fold run (``train ... --set data.fold=K``) kept fold K of the labeled training slices for
validation; predicting every fold's validation slices with that fold's model gives one out-of-fold
prediction per labeled slice (50 instead of 10 for COVID-SemiSeg). On them, with the training's own
validation definitions (``training.objectives.single_validation`` / ``label_validation``, which score
with ``core.metrics.class_scores``, the empty-class rule that evaluation uses; the JSON records its
``scoring_rule``; the single stage also gets each slice's Inf-Net-protocol Dice, ``infnet_dice``, which
needs no threshold), this verb scores the folds with and without left-right flip test-time augmentation
and writes the choices: whether flip helps and, for the single stage, the threshold an ensemble of the
folds is exported with (``ssinfnet export --single RUN... --threshold-from CV.json``). The ensemble
itself cannot be scored out of fold (each member saw the other folds), so its threshold is the folds'
pooled one.

``--exports NAME...`` also scores the out-of-fold slices under fixed export differences
(``ssinfnet.data.augment.FIXED_EXPORTS``, stored as 8-bit), at the clean slices' threshold: robustness
measured on validation slices, so that a choice can be made on it (the robustness benchmark measures the
same on the test slices, for the record only).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ssinfnet.core.metrics import SCORING_RULE, ci_record, mean_ci
from ssinfnet.errors import InputError


VIEWS = ("plain", "flip")
"""Each fold model as it is, and wrapped in left-right flip test-time augmentation."""
CLEAN = "clean"
"""The validation slices as they are (the other variants are ``--exports``)."""


def out_of_fold(runs: list[str | Path], exports: Sequence[str] = ()) -> dict[str, Any]:
    """Pooled validation predictions of fold runs -> the stage's validation scores per view and, under
    each of ``exports``, per view (see module doc); each run's model and validation slices are read once."""
    from ssinfnet.data.augment import FIXED_EXPORTS, as_8bit
    from ssinfnet.core.runs import RunFolder, finished_model
    from ssinfnet.inference.predictor import Pipeline
    from ssinfnet.models import load_model
    from ssinfnet.models.ensemble import Ensemble
    from ssinfnet.training.inputs import read_labeled
    from ssinfnet.inference.segment import image_scan, predict_scans
    from ssinfnet.training.objectives import label_validation, single_validation
    from ssinfnet.training.supervised import train_val_for

    unknown = sorted(set(exports) - set(FIXED_EXPORTS))
    if unknown:
        raise InputError(f"unknown export {unknown[0]!r}; expected some of {', '.join(FIXED_EXPORTS)}")
    variants = (CLEAN, *exports)
    stages, folds, ids = set(), {}, []
    masks: dict[str, list[np.ndarray]] = {variant: [] for variant in variants}
    probs: dict[tuple[str, str], list[np.ndarray]] = {(view, v): [] for view in VIEWS for v in variants}
    for run in map(Path, runs):
        folder = RunFolder(run)
        model = load_model(finished_model(run))
        config, info = folder.config(), folder.info()
        data = config["data"]
        if data.get("fold") is None:
            raise InputError("not a cross-validation run (data.fold is not set)", run)
        key = (data["folds"], config["seed"], tuple(info["inputs"]["data"]))
        if data["fold"] in folds.get(key, set()):
            raise InputError(f"a second run of fold {data['fold']}", run)
        folds.setdefault(key, set()).add(data["fold"])
        stages.add(info["kind"])
        _, val = train_val_for(read_labeled(info["inputs"]["data"]), data, int(config["seed"]))
        ids += [(s.meta.id, s.meta.group) for s in val]
        images: dict[str, list[np.ndarray]] = {CLEAN: [s.image for s in val]}
        masks[CLEAN].extend(s.mask for s in val)
        for name in exports:
            exported = [FIXED_EXPORTS[name](np.asarray(s.image, np.float32), s.mask) for s in val]
            images[name] = [as_8bit(image).astype(np.float32) / 255 for image, _ in exported]
            masks[name].extend(mask for _, mask in exported)
        single, multi = model, None
        if info["kind"] == "multi":
            single, multi = load_model(finished_model(info["inputs"]["prior_from"])), model
        for view in VIEWS:
            wrap = (lambda net: Ensemble([net], flip=True)) if view == "flip" else (lambda net: net)
            pipeline = Pipeline(wrap(single), None if multi is None else wrap(multi), size=int(data["size"]),
                                bf16=bool(config.get("bf16")))
            for variant in variants:
                scans = (image_scan(image, s.meta.id, s.meta.source) for s, image in zip(val, images[variant]))
                for predicted in predict_scans(pipeline, scans, probabilities="float32"):
                    shown = predicted.probabilities["infection"] if multi is None else predicted.labels
                    probs[view, variant].append(predicted.per_sample(shown)[0])
    if len(stages) != 1 or len(folds) != 1:
        raise InputError("the runs must be the folds of one cross-validation (same stage, data, seed and folds)")
    (count, _, _), done = next(iter(folds.items()))
    stage = stages.pop()
    validation = single_validation if stage == "single" else label_validation
    scores = {view: {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                     for k, v in validation(probs[view, CLEAN], masks[CLEAN]).items()} for view in VIEWS}
    for view in VIEWS:
        scores[view]["per_image"] = _per_image(stage, probs[view, CLEAN], masks[CLEAN], scores[view])
        if stage == "single":
            scores[view]["infnet_per_image"] = _infnet_per_image(probs[view, CLEAN], masks[CLEAN])
            scores[view]["infnet_dice"] = float(np.mean(scores[view]["infnet_per_image"]))
        if exports:
            scores[view]["exports"] = {name: _export_score(stage, probs[view, name], masks[name], scores[view])
                                       for name in exports}
    return {"stage": stage, "folds": count, "folds_done": sorted(done), "slices": len(masks[CLEAN]),
            "scoring_rule": SCORING_RULE, "images": [{"id": i, "group": g} for i, g in ids], **scores}


def _per_image(stage: str, probs: list[np.ndarray], masks: list[np.ndarray], scores: dict[str, Any]) -> list[float]:
    """Each slice's share of the view's score (its mean is the score; NaN where the rule leaves a slice
    unscored): infection Dice at the view's threshold, or the mean of the GGO and consolidation Dice."""
    from ssinfnet.core.metrics import class_scores

    def dice(truth, predicted):
        return class_scores(truth, predicted)["f1"]

    if stage == "single":
        return [dice(m > 0, p >= scores["threshold"]) for p, m in zip(probs, masks)]
    pairs = [[dice(m == c, p == c) for c in (1, 2)] for p, m in zip(probs, masks)]
    return [float("nan") if np.all(np.isnan(pair)) else float(np.nanmean(pair)) for pair in pairs]


def _infnet_per_image(probs: list[np.ndarray], masks: list[np.ndarray]) -> list[float]:
    """Each slice's Inf-Net protocol Dice (threshold-averaged, so no threshold is chosen; a slice without
    lesion scores 0, as in the protocol): the figure that sits beside Inf-Net's published table."""
    from ssinfnet.evaluation.infnet_metrics import infnet_dice

    return [infnet_dice(p, m > 0) for p, m in zip(probs, masks)]


def _export_score(stage: str, probs: list[np.ndarray], masks: list[np.ndarray], clean: dict[str, Any]) -> dict:
    """The stage's score under one export (single stage: mean per-image Dice at the clean threshold) and its
    loss against the clean slices."""
    from ssinfnet.training.objectives import label_validation, mean_dice

    if stage == "single":
        score = mean_dice(probs, masks, clean["threshold"])
    else:
        score = label_validation(probs, masks)["score"]
    return {"score": score, "loss": clean["score"] - score}


def crossval(runs: list[str | Path], exports: Sequence[str] = ()) -> dict[str, Any]:
    """Out-of-fold scores without and with flip TTA (and under ``exports``), and what they choose."""
    oof = out_of_fold(runs, exports)
    flip = oof["flip"]["score"] > oof["plain"]["score"]
    chosen = oof["flip"] if flip else oof["plain"]
    result = {**oof, "runs": [Path(r).name for r in runs], "flip_tta": flip, "score": chosen["score"],
              "source": f"out-of-fold predictions of {len(runs)} fold models ({oof['slices']} labeled slices)"}
    if len(oof["folds_done"]) != oof["folds"]:
        result["warning"] = f"only folds {oof['folds_done']} of {oof['folds']} are finished"
    if "threshold" in chosen:
        result["threshold"] = chosen["threshold"]
    ci = mean_ci(chosen["per_image"], [image["group"] for image in oof["images"]])
    result["ci"] = {**ci.as_dict(), "ci": ci_record(image["group"] for image in oof["images"])}
    if exports:
        worst = max(exports, key=lambda name: chosen["exports"][name]["loss"])
        result.update(worst_export=worst, worst_export_loss=chosen["exports"][worst]["loss"])
    return result


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "crossval", help="out-of-fold scores of cross-validation fold runs; flip TTA and ensemble threshold",
        description="Fold runs (train --set data.fold=K) -> every fold's validation slices predicted by its own "
                    "model, scored with and without flip test-time augmentation -> JSON with the choices "
                    "(flip_tta, threshold) that export --threshold-from reads.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="the fold runs of one stage")
    parser.add_argument("--out", required=True, metavar="CV.json", help="JSON file to write")
    parser.add_argument("--exports", nargs="+", default=[], metavar="NAME",
                        help="also score under these fixed export differences (ssinfnet.data.augment.FIXED_EXPORTS; "
                             "'all' for every one)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssinfnet.fileio import refuse_existing, write_json

    refuse_existing(args.out, args.overwrite)
    from ssinfnet.data.augment import FIXED_EXPORTS

    exports = list(FIXED_EXPORTS) if args.exports == ["all"] else args.exports
    result = crossval(args.runs, exports)
    write_json(args.out, result)
    threshold = f", threshold {result['threshold']:.2f}" if "threshold" in result else ""
    worst = f"; worst export {result['worst_export']} (-{result['worst_export_loss']:.3f})" if exports else ""
    chosen = result["flip" if result["flip_tta"] else "plain"]
    infnet = f", Inf-Net-protocol Dice {chosen['infnet_dice']:.3f}" if "infnet_dice" in chosen else ""
    print(f"{result['stage']} stage, {result['slices']} out-of-fold slices: score {result['plain']['score']:.3f} "
          f"plain, {result['flip']['score']:.3f} with flip -> flip_tta {result['flip_tta']}{threshold}{infnet}{worst}; "
          f"written to {args.out}")
    return 0
