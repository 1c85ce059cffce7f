"""Verb ``report``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report", help="one self-contained HTML report",
        description="Evaluation, comparison, training/pretraining run and mediation folders -> one HTML file.",
    )
    report.add_argument("inputs", nargs="+", metavar="FOLDER")
    report.add_argument("--out", required=True, help="HTML file to write")
    report.add_argument("--title", default="ssinfnet report")
    report.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ssinfnet.fileio import refuse_file_in_the_way
    from ssinfnet.report.html import write_report

    refuse_file_in_the_way(args.out)
    print(f"wrote {write_report(args.inputs, args.out, args.title)}")
    return 0
