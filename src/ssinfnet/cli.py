"""The ``ssinfnet`` command: one verb per pipeline stage.

Each stage package owns its verbs in a ``cli`` module with ``register(subparsers)``; each verb sets
``func(args) -> int | None``. Bad input raises :class:`ssinfnet.errors.InputError`, printed here as one
line with exit code 2 (the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ssinfnet import __version__
from ssinfnet.errors import InputError

# Stage packages whose verbs the CLI offers, in pipeline order.
COMMAND_MODULES = (
    "ssinfnet.data.cli",
    "ssinfnet.models.cli",
    "ssinfnet.training.cli",
    "ssinfnet.evaluation.cli",
    "ssinfnet.inference.cli",
    "ssinfnet.analysis.cli",
    "ssinfnet.workflows.cli",
    "ssinfnet.workflows.export",
    "ssinfnet.workflows.reproduce",
)


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
        return int(args.func(args) or 0)
    except InputError as err:
        if args.debug:
            raise
        print(f"ssinfnet: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ssinfnet: interrupted", file=sys.stderr)
        return 130
