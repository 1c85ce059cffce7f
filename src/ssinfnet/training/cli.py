"""Verbs ``pretrain``, ``train single|multi`` and ``config`` (the resolved config, validated).

Run under ``torchrun --nproc_per_node N`` for data-parallel training; only rank 0 writes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ssinfnet.errors import InputError
from ssinfnet.training import distributed
from ssinfnet.training.config import DEFAULT_PRESET, PRESETS, load_config
from ssinfnet.training.loop import TrainingInterrupted
from ssinfnet.training.runs import RunDir


def register(subparsers) -> None:
    pre = subparsers.add_parser(
        "pretrain", help="self-supervised pretraining: coach-guided inpainting on unlabeled slices",
        description="Inpainting against a coach (warm-up with random blocks, then coach and inpainter rounds). "
                    "Data: unlabeled folders and/or labeled data sets (their training images only).",
    )
    add_run_arguments(pre)
    pre.add_argument("--network", choices=("single", "multi"), default="single",
                     help="pretrain the single network (CT) or the multi network (CT + prior)")
    pre.add_argument("--prior-from", metavar="SINGLE_RUN",
                     help="multi network: single-stage run whose prediction is the prior (zeros without it)")
    pre.set_defaults(func=run_pretrain)

    train = subparsers.add_parser(
        "train", help="supervised training of the single (infection) or multi (GGO/consolidation) stage",
        description="Validation is carved from the training slices; the best model on validation is "
                    "exported as RUN/model.safetensors.",
    )
    train.add_argument("stage", choices=("single", "multi"))
    add_run_arguments(train)
    train.add_argument("--init", metavar="PRETRAIN_RUN", help="start from a pretraining run's weights")
    train.add_argument("--prior-from", metavar="SINGLE_RUN", help="multi stage: the single-stage run making the prior")
    train.add_argument("--negatives", nargs="+", metavar="PATH",
                       help="unlabeled folders of slices without lesions (the NonCOVID slices of a manifest's "
                            "training part, or every file of a folder without labels), learnt as background")
    train.add_argument("--pseudo", nargs="+", metavar="FOLDER",
                       help="pseudo-labelled slices (paired images/ + masks/ folders, e.g. from ssinfnet "
                            "pseudolabel): training side only, loss weight pseudo.weight")
    train.set_defaults(func=run_train)


    shown = subparsers.add_parser(
        "config", help="print the resolved training config (preset + defaults + --set), validated",
        description="The config a run started with these --preset/--set options would save as config.json; "
                    "a bad setting is one line naming the key (exit 2), as for train and pretrain.",
    )
    add_config_arguments(shown)
    shown.add_argument("--json", action="store_true", help="JSON instead of YAML")
    shown.set_defaults(func=run_config)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help=f"{', '.join(PRESETS)} or a YAML file (default {DEFAULT_PRESET})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set single.epochs=20 (repeatable)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", metavar="PATH", help="data folders/files (training part only is used)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run directory to create (or to resume)")
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint, with its saved config")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve(args: argparse.Namespace) -> dict | None:
    """The config of a new run, or None to resume (which takes config and inputs from the run)."""
    if args.resume:
        if args.overrides or args.data:
            raise InputError("--resume continues a run with its saved config and data: drop --set/--data", args.out)
        return None
    if not args.data:
        raise InputError("--data is required to start a run")
    return load_config(args.preset, args.overrides)


def run_config(args: argparse.Namespace) -> int:
    import yaml

    config = load_config(args.preset, args.overrides)
    print(json.dumps(config, indent=2) if args.json else yaml.safe_dump(config, sort_keys=False), end="\n" if args.json else "")
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    from ssinfnet.training.pretrain import pretrain

    return _guarded(lambda: pretrain(args.out, args.data, resolve(args), args.network, args.prior_from,
                                     progress=not args.no_progress), args)


def run_train(args: argparse.Namespace) -> int:
    from ssinfnet.training.supervised import train_multi, train_single

    config = resolve(args)
    if args.stage == "single":
        if args.prior_from:
            raise InputError("--prior-from is for the multi stage")
        return _guarded(lambda: train_single(args.out, args.data, config, args.init, progress=not args.no_progress,
                                             negatives=args.negatives, pseudo=args.pseudo), args)
    return _guarded(lambda: train_multi(args.out, args.data, config, args.prior_from, args.init,
                                        progress=not args.no_progress, negatives=args.negatives, pseudo=args.pseudo), args)


def _guarded(start, args: argparse.Namespace) -> int:
    """Run, print the summary (rank 0), turn Ctrl-C into a saved checkpoint and exit code 130.
    A new run that fails before its first checkpoint leaves nothing behind (see ``RunDir.abandon``)."""
    run = RunDir(args.out, writer=os.environ.get("RANK", "0") == "0")
    before = None if args.resume else run.entries()
    try:
        summary = start()
    except TrainingInterrupted as stop:
        print(f"ssinfnet: {stop}", file=sys.stderr)
        return 130
    except BaseException:
        if not args.resume:
            run.abandon(before)
        raise
    finally:
        distributed.teardown_current()
    if summary:
        print(json.dumps(summary, indent=2))
    return 0
