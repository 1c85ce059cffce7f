"""Verb ``pseudolabel``: label unlabeled COVID slices with a trained pipeline, for semi-supervised training.

Semi-Inf-Net's idea ("randomly selected propagation"): a model trained on the few labeled slices
labels a random batch of unlabeled ones, and the next model trains on both (``train --pseudo``, at
the loss weight ``pseudo.weight``: these labels are a model's guess). Only the pool's *training*
part is drawn from (``data.pool.split_pool``; its held-out part stays unseen for the specificity
benchmark), and only slices the manifest labels COVID (NonCOVID ones are negatives already). Labels are
what ``ssinfnet segment`` gives (lung mask, lesions only inside it), so training sees inference's
own answers; a pipeline without a multi-class stage (a study's fold model) gives 0/1 infection labels
through the same path (``predict_scan``). The output is a paired folder (``images/`` with copies of the files, ``masks/`` with
0/1/2 PNGs, ``pseudolabels.json`` with where they came from), written atomically.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ssinfnet.errors import InputError
from ssinfnet.fileio import refuse_existing

POSITIVE_LABELS = ("COVID",)


def pseudo_label(pool: str | Path, model: str | Path, out: str | Path, count: int, seed: int = 0,
                 heldout_fraction: float = 0.2, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Label ``count`` randomly chosen COVID slices of ``pool``'s training part with the pipeline ``model``."""
    from PIL import Image
    from tqdm import tqdm

    from ssinfnet.data.pool import split_pool
    from ssinfnet.fileio import atomic_dir, write_json
    from ssinfnet.inference.predictor import load_pipeline
    from ssinfnet.inference.segment import predict_scan, read_scan, resolve_precision

    check_manifest_files(pool)
    train, _ = split_pool(pool, heldout_fraction)
    positives = sorted((item.path for item in train if item.label in POSITIVE_LABELS), key=str)
    if not positives:
        raise InputError("no COVID-labelled slices in the training part of this folder (manifest.csv)", pool)
    chosen = [positives[i] for i in sorted(np.random.default_rng(seed).permutation(len(positives))[:count])]
    device, bf16 = resolve_precision()
    pipeline = model if hasattr(model, "predict") else load_pipeline(Path(model), device=device, bf16=bf16)
    shares = []
    # "no lung found" per figure crop is noise here. A filter, not a level: it is removed by identity, so two
    # labellers running in one process (threads) cannot leave the loggers quieted.
    quiet = _BelowError()
    speakers = [logging.getLogger(name) for name in ("ssinfnet.inference.segment", "ssinfnet.inference.orientation")]
    for logger in speakers:
        logger.addFilter(quiet)
    try:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            (tmp / "images").mkdir()
            (tmp / "masks").mkdir()
            for index, path in enumerate(tqdm(chosen, desc="pseudo-labels", disable=not progress)):
                scan = read_scan(path)  # segment's path, which also takes a pipeline of the single stage alone
                labels = np.asarray(scan.to_input(predict_scan(pipeline, scan).labels)).astype(np.uint8)
                labels = labels[..., 0] if labels.ndim == 3 else labels
                stem = f"{index:05d}"  # pool names repeat across sub-folders and hold odd characters
                shutil.copyfile(path, tmp / "images" / f"{stem}{path.suffix.lower()}")
                Image.fromarray(labels).save(tmp / "masks" / f"{stem}.png")
                shares.append(float((labels > 0).mean()))
            info = {"pool": Path(pool).name, "model": Path(model).name, "count": len(chosen), "seed": seed,
                    "heldout_fraction": heldout_fraction, "candidates": len(positives),
                    "files": [str(p.relative_to(pool)) if Path(pool) in p.parents else p.name for p in chosen],
                    "lesion_share_median": float(np.median(shares)),
                    "with_lesion": int(sum(s > 0 for s in shares))}
            write_json(tmp / "pseudolabels.json", info)
    finally:
        for logger in speakers:
            logger.removeFilter(quiet)
    return info


class _BelowError(logging.Filter):
    """Drops the records under ERROR (warnings) of the loggers it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def check_manifest_files(pool: str | Path) -> None:
    """Refuse a pool whose ``manifest.csv`` names a file that is not there (the draw would quietly
    be made from fewer slices than the manifest lists), naming the first such file."""
    from ssinfnet.data.readers import read_manifest

    manifest = Path(pool) / "manifest.csv"
    if not manifest.is_file():
        return
    missing = [name for name in read_manifest(manifest) if not (Path(pool) / name).is_file()]
    if missing:
        raise InputError(f"listed in {manifest} but not found ({len(missing)} listed file(s) missing)",
                         Path(pool) / missing[0])


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "pseudolabel", help="label unlabeled COVID slices with a pipeline (semi-supervised training data)",
        description="A seeded random draw of COVID slices from an unlabeled folder's training part -> "
                    "segment -> a paired images/ + masks/ folder for train --pseudo.",
    )
    parser.add_argument("pool", help="unlabeled folder with manifest.csv (e.g. ../shared/data/unlabeled-ct)")
    parser.add_argument("--model", required=True, help="pipeline folder (ssinfnet export) that labels them")
    parser.add_argument("--out", required=True, help="paired folder to write")
    parser.add_argument("--count", type=int, default=500, help="slices to label (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw")
    parser.add_argument("--heldout-fraction", type=float, default=0.2,
                        help="of the pool's source groups held out (must match training's data.heldout_fraction)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise InputError(f"--count must be at least 1, got {args.count}")
    if not 0.0 <= args.heldout_fraction < 1.0:
        raise InputError(f"--heldout-fraction must be in [0, 1), got {args.heldout_fraction}")
    refuse_existing(args.out, args.overwrite)
    info = pseudo_label(args.pool, args.model, args.out, args.count, args.seed, args.heldout_fraction,
                        args.overwrite, progress=not args.no_progress)
    print(f"{info['count']} pseudo-labelled slices ({info['with_lesion']} with lesions, median lesion share "
          f"{info['lesion_share_median']:.3f}) written to {args.out}")
    return 0
