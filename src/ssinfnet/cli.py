"""The ``ssinfnet`` command: one verb per pipeline stage.

Each stage package owns its verbs in a ``cli`` module with ``register(subparsers)``; each verb sets
``func(args) -> int | None``. Bad input raises :class:`ssinfnet.errors.InputError`, printed here as one
line with exit code 2 (the traceback only with ``--debug``); so is an OSError that reaches this
boundary (a read-only or full disk, a folder where a file is to be written), naming its path.

Numeric options that several verbs share (``--threshold``, ``--batch-size``, ``--gallery``...) are
checked here once, by name, after parsing (:data:`OPTION_RULES`), before any verb starts work; every
float option must be finite.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from typing import Any, Callable

from ssinfnet import __version__
from ssinfnet.errors import InputError, from_os_error

# Stage packages whose verbs the CLI offers, in pipeline order.
COMMAND_MODULES = (
    "ssinfnet.data.cli",
    "ssinfnet.models.cli",
    "ssinfnet.training.cli",
    "ssinfnet.evaluation.cli",
    "ssinfnet.inference.cli",
    "ssinfnet.analysis.cli",
    "ssinfnet.report.cli",
    "ssinfnet.workflows.cli",
    "ssinfnet.workflows.export",
    "ssinfnet.workflows.crossval",
    "ssinfnet.workflows.pseudolabel",
    "ssinfnet.workflows.reproduce",
    "ssinfnet.workflows.study",
)

#: Option (argparse dest) -> (test of one value, what is expected), for the verbs that have it.
OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "threshold": (lambda v: 0.0 <= v <= 1.0, "a probability threshold in 0..1"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "gallery": (lambda v: v >= 0, "0 or more"),
    "size": (lambda v: v >= 1, "at least 1 pixel"),
    "jobs": (lambda v: v >= 1, "at least 1"),
    "width": (lambda v: v >= 1, "at least 1"),
    "unet_width": (lambda v: v >= 1, "at least 1"),
    "sims": (lambda v: v >= 1, "at least 1"),
    "spacing": (lambda v: v > 0, "positive (mm)"),
}


def check_options(args: argparse.Namespace) -> None:
    """Refuse a shared numeric option outside its range, and any float option that is NaN or inf."""
    for dest, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not numbers:
            continue
        option = "--" + dest.replace("_", "-")
        shown = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
        if not all(math.isfinite(v) for v in numbers):
            raise InputError(f"{option} must be a finite number, got {shown}")
        rule = OPTION_RULES.get(dest)
        if rule is not None and not all(rule[0](v) for v in numbers):
            raise InputError(f"{option} must be {rule[1]}, got {shown}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssinfnet",
        description="Self-supervised Inf-Net: segment GGO and consolidation in chest CT.",
    )
    parser.add_argument("--version", action="version", version=f"ssinfnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        check_options(args)
        return int(args.func(args) or 0)
    except (InputError, OSError) as err:
        if args.debug:
            raise
        error = err if isinstance(err, InputError) else from_os_error(err)
        print(f"ssinfnet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ssinfnet: interrupted", file=sys.stderr)
        return 130
