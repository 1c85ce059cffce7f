"""Supervised segmentation runs: the single stage (infection) and the multi stage (GGO/consolidation).

``train_single`` / ``train_multi`` read labeled training slices, carve validation from them (never
the test set), optionally start from a pretraining run (``init``), train with the loop, and leave the
best model on validation as ``RUN/model.safetensors`` (+ threshold for the single stage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssinfnet.data.dataset import NegativeDataset, SegmentationDataset
from ssinfnet.data.splits import kfold, train_val_split
from ssinfnet.errors import InputError
from ssinfnet.models import build_model, load_model, transfer_weights
from ssinfnet.training import loop
from ssinfnet.training.objectives import Draw, PriorMaker, SegmentationObjective
from ssinfnet.core.provenance import listing_fingerprint as data_fingerprint
from ssinfnet.core.runs import finished_model
from ssinfnet.training.inputs import input_transforms, negative_files, read_labeled
from ssinfnet.training.session import Session, open_session


def run_model_path(run_dir: str | Path) -> Path:
    """The exported model of a finished run (:func:`ssinfnet.training.runs.finished_model`)."""
    return finished_model(run_dir)


def train_single(out, data=None, config=None, init=None, progress=True, negatives=None,
                 pseudo=None) -> dict[str, Any]:
    """Train (or, with ``config=None``, resume) a single-stage run in ``out``; ``negatives``: folders
    of lesion-free slices (see :func:`ssinfnet.training.inputs.negative_files`); ``pseudo``: folders of
    pseudo-labelled slices that join the training side only (weight ``pseudo.weight``)."""
    inputs = None if config is None else {"data": [str(p) for p in data], "init": _str(init),
                                          "negatives": [str(p) for p in negatives or ()],
                                          "pseudo": [str(p) for p in pseudo or ()]}
    return _train(open_session("single", out, config, inputs), progress)


def train_multi(out, data=None, config=None, prior_from=None, init=None, progress=True,
                negatives=None, pseudo=None) -> dict[str, Any]:
    """Train (or resume) a multi-stage run; its prior is made by the single run ``prior_from``."""
    if config is not None and prior_from is None:
        raise InputError("the multi stage needs --prior-from SINGLE_RUN (its prior is that model's prediction)")
    inputs = None if config is None else {"data": [str(p) for p in data], "init": _str(init),
                                          "prior_from": _str(prior_from),
                                          "negatives": [str(p) for p in negatives or ()],
                                          "pseudo": [str(p) for p in pseudo or ()]}
    return _train(open_session("multi", out, config, inputs), progress)


def train_val_for(samples, data: dict[str, Any], seed: int):
    """(train, val): fold ``data.fold`` of ``data.folds`` when set, else a ``data.val_fraction`` split."""
    if data.get("fold") is not None:
        try:
            train, val = kfold(samples, int(data["folds"]), seed)[int(data["fold"])]
        except ValueError as err:
            raise InputError(f"cannot make {data['folds']} folds of {len(samples)} labeled slices: {err}") from err
    else:
        train, val = train_val_split(samples, data["val_fraction"], seed)
    if not train or not val:
        raise InputError(f"{len(samples)} labeled slices are too few to carve a validation set from")
    return train, val


def _str(path) -> str | None:
    return None if path is None else str(path)


def _train(session: Session, progress: bool) -> dict[str, Any]:
    config, ctx, run = session.config, session.ctx, session.run
    stage = session.kind
    section = config[stage]
    samples = read_labeled(session.inputs["data"])
    train, val = train_val_for(samples, config["data"], session.seed)
    pseudo = read_labeled(session.inputs.get("pseudo") or ())
    heldout = float(config["data"].get("heldout_fraction", 0.0))
    negatives = negative_files(session.inputs.get("negatives") or (), heldout)
    session.begin({"train": data_fingerprint(train), "val": data_fingerprint(val), "negative_files": len(negatives),
                   **({"pseudo": data_fingerprint(pseudo)} if pseudo else {})})

    size = int(config["data"]["size"])
    augment, export, contrast = input_transforms(config, session.seed)
    model_config = dict(config["model" if stage == "single" else "multi_model"])
    model = session.prepare(build_model(model_config.pop("name"), **model_config))
    model.input_contrast = contrast
    if session.inputs.get("init") and not session.resume:
        report = transfer_weights(load_model(run_model_path(session.inputs["init"])), model)
        run.write_json("init_transfer.json", {"from": session.inputs["init"], "copied": report.copied,
                                              "skipped": report.skipped})
    runtime = loop.Runtime(ctx, config["bf16"], config["channels_last"])
    prior = None
    if stage == "multi":
        single = session.prepare(load_model(run_model_path(session.inputs["prior_from"])))
        prior = PriorMaker(single, runtime)
    export_info = {"stage": stage, "run": str(run.path), "size": size,
                   "prior_from": session.inputs.get("prior_from"), "init": session.inputs.get("init")}
    drawn = []
    if negatives:
        settings, weight = config["negatives"], float(config["negatives"]["weight"])
        mined_from = int(settings.get("mined_from", 0))  # (absent in runs started before mining existed)
        drawn.append(Draw(NegativeDataset(negatives, size, weight, augment, export, contrast), int(settings["per_epoch"]),
                          mined_from, NegativeDataset(negatives, size, weight, None, None, contrast)))
    if pseudo:
        pseudo_settings = config["pseudo"]
        pseudo_data = SegmentationDataset(pseudo, size, augment, export, contrast, float(pseudo_settings["weight"]))
        drawn.append(Draw(pseudo_data, int(pseudo_settings["per_epoch"]) or len(pseudo_data)))
    objective = SegmentationObjective(
        model, SegmentationDataset(train, size, augment, export, contrast),
        SegmentationDataset(val, size, None, None, contrast),
        section, runtime, prior=prior, augment=(augment, export), export_extra=export_info, drawn=drawn,
        seed=session.seed,
    )
    history = loop.fit(objective, run, ctx, int(section["epochs"]), session.seed, resume=session.resume,
                       num_workers=config["num_workers"], progress=progress and config["progress"],
                       stop_at=section.get("stop_at"))
    if not ctx.is_main:
        return {}
    scored = [row for row in history if "score" in row]
    best = max(scored, key=lambda row: row["score"])
    summary = {"stage": stage, "best_epoch": best["epoch"], "epochs": len(history),
               "stop_at": section.get("stop_at"), "training_seconds": round(sum(row["seconds"] for row in history), 3),
               "train_slices": len(train), "val_slices": len(val), "negative_files": len(negatives),
               "pseudo_slices": len(pseudo), "fold": config["data"]["fold"],
               "validation": {k: v for k, v in best.items() if k.startswith("val_") or k == "threshold"},
               **{k: v for k, v in export_info.items() if k not in ("stage", "run")}}
    run.write_summary(summary)
    return summary
