"""Self-supervised pretraining runs: coach-guided inpainting for the single or the multi network.

The multi network inpaints CT + prior. Its prior is the prediction of the single run given with
``prior_from`` (the usual order: pretrain single -> train single -> pretrain multi -> train multi);
without one the prior channel is zeros ("nothing found yet") and the network learns from the CT
alone, which still pretrains every weight except the prior's share of the first convolution.
Data: unlabeled folders plus labeled data sets' training images (masks ignored, test never read).
The run exports its final inpainter as ``RUN/model.safetensors`` (+ the coach as
``RUN/coach.safetensors``) for ``train --init RUN``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Subset

from ssinfnet.models import build_model, load_model, save_model
from ssinfnet.training import loop
from ssinfnet.training.inputs import input_transforms, pool_dataset, pretraining_sources
from ssinfnet.training.objectives import CoachedInpaintingObjective, PriorMaker
from ssinfnet.core.provenance import listing_fingerprint as data_fingerprint
from ssinfnet.training.runs import derived_seed
from ssinfnet.training.session import open_session
from ssinfnet.training.supervised import run_model_path

NETWORKS = ("single", "multi")
#: Pretraining ignores the ``channels_last`` option: with torch 2.13 on CPU, the coach step (input
#: gradients through the frozen inpainter) corrupts memory and crashes in channels_last at 256 px
#: (reproduced with bf16 on and off; contiguous tensors run fine). bf16 autocast still applies.
CONTIGUOUS = False


def pretrain(out, data=None, config=None, network: str = "single", prior_from=None, progress=True) -> dict[str, Any]:
    """Pretrain (or, with ``config=None``, resume) in ``out``; returns the run summary."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, not {network!r}")
    inputs = None if config is None else {"data": [str(p) for p in data], "network": network,
                                          "prior_from": None if prior_from is None else str(prior_from)}
    session = open_session("pretrain", out, config, inputs)
    config, ctx, run, inputs = session.config, session.ctx, session.run, session.inputs
    section, size = config["pretrain"], int(config["data"]["size"])

    samples, files = pretraining_sources(inputs["data"], float(config["data"].get("heldout_fraction", 0.0)))
    if config["data"]["unlabeled_limit"]:
        files = _subset(files, int(config["data"]["unlabeled_limit"]), session.seed)
    session.begin({"labeled_images": data_fingerprint(samples), "unlabeled_files": len(files)})
    augment, export, contrast = input_transforms(config, session.seed)
    everything = pool_dataset(samples, files, size, augment, export, contrast)
    plain = pool_dataset(samples, files, size, None, None, contrast)
    order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(derived_seed(session.seed, -1)))
    n_val = min(int(section["val_images"]), len(everything) // 5)
    pool, val = Subset(everything, order[n_val:].tolist()), Subset(plain, order[:n_val].tolist())

    model_config = dict(config["model" if inputs["network"] == "single" else "multi_model"])
    inpainter = build_model(model_config.pop("name"), **model_config).use_heads("reconstruction")
    inpainter.input_contrast = contrast
    coach = build_model("coach", in_channels=1, erase_fraction=section["erase_fraction"], **config["coach"])
    runtime = loop.Runtime(ctx, config["bf16"], CONTIGUOUS)
    prior = None
    if inputs["network"] == "multi":
        single = load_model(run_model_path(inputs["prior_from"])) if inputs["prior_from"] else None
        prior = PriorMaker(session.prepare(single, CONTIGUOUS) if single is not None else None, runtime)
    objective = CoachedInpaintingObjective(
        session.prepare(inpainter, CONTIGUOUS), session.prepare(coach, CONTIGUOUS), pool, val, section, runtime,
        session.seed, prior, augment=(augment, export),
    )
    if not session.resume and ctx.is_main:
        objective.keep(run, 0)  # the budget "0 epochs": the pretraining network as initialised
    history = loop.fit(objective, run, ctx, int(section["epochs"]), session.seed, resume=session.resume,
                       num_workers=config["num_workers"], progress=progress and config["progress"])
    if not ctx.is_main:
        return {}
    extra = {"stage": "pretrain", "network": inputs["network"], "run": str(run.path), "size": size,
             "prior_from": inputs["prior_from"]}
    save_model(inpainter, run.model_path, extra=extra)
    save_model(coach, run.path / "coach.safetensors", extra=extra)
    summary = {**extra, "epochs": len(history), "pool_images": len(pool), "val_images": len(val),
               "final": {k: v for k, v in history[-1].items() if k.startswith("val_")}}
    run.write_summary(summary)
    return summary


def _subset(files: list, limit: int, seed: int) -> list:
    """A seeded random ``limit`` of the unlabeled files (the CPU preset cannot afford all of them)."""
    if limit >= len(files):
        return files
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(derived_seed(seed, -2)))
    return [files[i] for i in sorted(order[:limit].tolist())]
