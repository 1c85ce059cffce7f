"""``ssinfnet data ...``: check a data path, make the generated demo cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssinfnet.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="check data folders, make the demo cohort")
    verbs = parser.add_subparsers(dest="data_command", metavar="VERB", required=True)

    validate = verbs.add_parser(
        "validate", help="report what a data path holds and what is wrong with it",
        description="Auto-detects COVID-SemiSeg roots, paired images/ + masks/ folders, NIfTI image or "
                    "label volumes, DICOM series folders and unlabeled folders; prints counts, size range, "
                    "modes, label histogram, class pixel shares and problems. Exit 2 when problems are found.")
    validate.add_argument("path", type=Path, help="data folder or file (NIfTI, image, DICOM)")
    validate.add_argument("--json", type=Path, metavar="OUT", help="also write the report as JSON")
    validate.add_argument("--deep", action="store_true",
                          help="decode every pixel of unlabeled images (default: headers only)")
    validate.set_defaults(func=run_validate)

    demo = verbs.add_parser("make-demo", help="write the generated demo cohort (NIfTI, PNG, clinical.csv)")
    demo.add_argument("out", type=Path, help="folder to create")
    demo.add_argument("--subjects", type=int, default=12, help="number of generated subjects")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    demo.set_defaults(func=run_make_demo)


def run_validate(args: argparse.Namespace) -> int:
    from ssinfnet.data.validate import format_report, validate_path  # noqa: PLC0415 (fast --help)
    from ssinfnet.fileio import refuse_file_in_the_way, write_json  # noqa: PLC0415

    if args.json:
        refuse_file_in_the_way(args.json)  # before the scan, not after it
    report = validate_path(args.path, deep=args.deep)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    if report["problems"]:
        raise InputError(f"{len(report['problems'])} problem(s) found; first: {report['problems'][0]}")
    return 0


def run_make_demo(args: argparse.Namespace) -> int:
    from ssinfnet.data.demo_cohort import make_demo_cohort  # noqa: PLC0415 (pulls in the generator only here)

    out = make_demo_cohort(args.out, n_subjects=args.subjects, seed=args.seed, overwrite=args.overwrite)
    print(f"demo cohort written to {out}")
    return 0
