"""Verb ``demo``: the whole method on a generated cohort, end to end."""

from __future__ import annotations

import argparse

from ssinfnet.errors import InputError
from ssinfnet.training import distributed
from ssinfnet.training.loop import TrainingInterrupted


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="generate a small cohort, pretrain, train both stages and score them (a few minutes on CPU)",
        description="Generated cohort -> coach-guided pretraining -> single stage -> multi stage -> Dice per "
                    "class on the generated test slices. Everything lands in --out.",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder, must not exist yet (default runs/demo)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a key of the demo preset, e.g. --set single.epochs=5")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ssinfnet.workflows.demo import run_demo

    if Path(args.out).exists():
        raise InputError("already exists: choose a new --out (the demo never overwrites)", args.out)
    try:
        run_demo(args.out, args.overrides, progress=not args.no_progress)
    except TrainingInterrupted as stop:
        print(f"ssinfnet: {stop}")
        return 130
    finally:
        distributed.teardown_current()
    return 0
