"""Verbs ``phenotypes`` (segmentations -> feature table), ``clinical`` (parse a clinical table) and
``mediate`` (mediation analysis). Heavy imports happen inside the verbs so that ``--help`` stays fast.

Like the other verbs, each refuses an existing output before doing any work (``--overwrite`` replaces it),
and a multi-file output is written as one folder renamed into place, never as old and new files mixed."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path
from typing import Iterator

from ssinfnet.errors import InputError
from ssinfnet.fileio import atomic_dir, refuse_existing, write_csv, write_json, write_text

OVERWRITE_HELP = "replace an existing output (default: refuse it)"


@contextlib.contextmanager
def output_folder(path: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder renamed onto ``path`` when the block succeeds (the whole set at once)."""
    try:
        with atomic_dir(path, overwrite=overwrite) as tmp:
            yield tmp
    except FileExistsError:
        raise InputError("already exists (pass --overwrite to replace it)", path) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_phenotypes(subparsers)
    _register_clinical(subparsers)
    _register_mediate(subparsers)


def _register_phenotypes(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "phenotypes",
        help="lesion phenotype table from segmentation outputs",
        description="Engineered lesion features (burden, lesion count and sizes, HU statistics, left/right and "
        "peripheral/central distribution) per scan and per patient. Writes into the --out folder, as one set: "
        "phenotypes.csv (per patient), phenotypes_scans.csv (one row per scan) and features.md/.json (the "
        "data dictionary).",
    )
    p.add_argument("inputs", nargs="*", type=Path,
                   help="segment output folders, cohort subject folders, or folders of those (e.g. demo volumes/)")
    p.add_argument("--scan", nargs=3, action="append", default=[], metavar=("IMAGE", "LABELS", "LUNG"),
                   help="an explicit NIfTI triplet (repeatable); scan id = the label file's name")
    p.add_argument("--patient-map", type=Path,
                   help="CSV with columns scan_id, patient_id (default: every scan is its own patient)")
    p.add_argument("--per-patient", choices=("worst", "mean"), default="worst",
                   help="worst: the patient's scan with the largest lesion_pct; mean: feature means (default worst)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (must not exist)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_run_phenotypes)


def _run_phenotypes(args: argparse.Namespace) -> int:
    from ssinfnet.analysis.phenotypes import write_data_dictionary
    from ssinfnet.analysis.scans import find_scans, per_patient, phenotype_table, read_patient_map

    if args.out.suffix.lower() == ".csv":
        raise InputError("--out is the output folder (it receives phenotypes.csv and the files beside it), "
                         "not a .csv file", args.out)
    refuse_existing(args.out, args.overwrite)
    patient_of = read_patient_map(args.patient_map) if args.patient_map else None
    scans = find_scans(args.inputs, args.scan)
    table = phenotype_table(scans, patient_of)
    patients = per_patient(table, args.per_patient)
    with output_folder(args.out, args.overwrite) as tmp:
        write_csv(tmp / "phenotypes_scans.csv", table.to_dict("records"), list(table.columns))
        write_csv(tmp / "phenotypes.csv", patients.to_dict("records"), list(patients.columns))
        write_data_dictionary(tmp)
    print(f"{len(table)} scans, {len(patients)} patients -> {args.out / 'phenotypes.csv'} "
          "(+ phenotypes_scans.csv, features.md, features.json)")
    return 0


def _add_table_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--map", nargs="+", default=[], metavar="NAME=COLUMN",
                   help="rename columns for the analysis, e.g. --map age=Age severe=Outcome")
    p.add_argument("--map-file", type=Path, help="YAML/JSON {name: column} mapping (same as --map)")
    p.add_argument("--include-cap-controls", action="store_true",
                   help="iCTCF: code 'Control (Community-acquired pneumonia)' as severity 0 (default: missing)")


def _read_clinical(args: argparse.Namespace, path: Path):
    from ssinfnet.analysis.clinical import parse_mapping, read_clinical

    return read_clinical(path, parse_mapping(args.map, args.map_file), args.include_cap_controls)


def _register_clinical(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clinical", help="parse a clinical table (iCTCF or generic CSV) and report the parsing",
        description="Prints (or writes to --report) the parsing rules, the counts per severity code and what was "
        "set missing and why; --out writes the parsed table.")
    p.add_argument("table", type=Path, help="iCTCF All_Patients.csv (recognised by its header) or any CSV")
    _add_table_arguments(p)
    p.add_argument("--out", type=Path, help="write the parsed table (CSV)")
    p.add_argument("--report", type=Path, metavar="DIR", help="write parsing.md and parsing.json into DIR (a new folder)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_run_clinical)


def _run_clinical(args: argparse.Namespace) -> int:
    from ssinfnet.analysis.clinical import parsing_markdown

    refuse_existing(args.out, args.overwrite)
    refuse_existing(args.report, args.overwrite)
    table = _read_clinical(args, args.table)
    markdown = parsing_markdown(table)
    if args.report:
        with output_folder(args.report, args.overwrite) as tmp:
            write_text(tmp / "parsing.md", markdown)
            write_json(tmp / "parsing.json", table.report)
    if args.out:
        write_csv(args.out, table.frame.to_dict("records"), [str(c) for c in table.frame.columns])
    print(markdown)
    return 0


def _register_mediate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mediate", help="causal mediation analysis (exposure -> mediators -> outcome)",
        description="statsmodels Mediation per mediator: ACME, ADE, total effect and proportion mediated with CIs "
        "and p-values, Benjamini-Hochberg FDR across mediators; complete cases per mediator, on the rows common "
        "to all mediators, and with missing mediator values multiply imputed (MICE); covariates entered and "
        "missingness by outcome level recorded. Writes mediation.csv, mediation.json, forest.png and summary.md "
        "to the --out folder, as one set.")
    p.add_argument("--table", type=Path, required=True, help="clinical CSV (iCTCF recognised by its header)")
    _add_table_arguments(p)
    p.add_argument("--phenotypes", type=Path, help="phenotype table from `ssinfnet phenotypes` to join")
    p.add_argument("--join-on", default="patient_id", help="column of both tables to join on (default patient_id)")
    p.add_argument("--where", nargs="+", default=[], metavar="COLUMN=VALUE",
                   help="keep only rows where every COLUMN=VALUE / COLUMN!=VALUE holds (e.g. covid_label=COVID)")
    p.add_argument("--exposure", required=True, help="numeric exposure column (0/1 or continuous)")
    p.add_argument("--mediator", nargs="+", required=True, dest="mediators", help="one or more mediator columns")
    p.add_argument("--outcome", required=True)
    p.add_argument("--covariates", nargs="*", default=[], help="adjustment columns; text columns are dummy-coded")
    p.add_argument("--outcome-type", choices=("binary", "ordinal", "continuous"),
                   help="default: inferred (0/1 binary, few integer levels ordinal, else continuous)")
    p.add_argument("--link", choices=("logit", "probit"), default="logit", help="link of binary outcome models")
    p.add_argument("--method", choices=("quasi-bayesian", "bootstrap"), default="quasi-bayesian")
    p.add_argument("--sims", type=int, default=1000, help="simulations / bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contrast", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="exposure values compared (default: 0 -> 1 for 0/1 exposures, mean -> mean + 1 SD otherwise)")
    p.add_argument("--transform", nargs="+", default=[], metavar="MEDIATOR=NAME",
                   help="transform a mediator before modelling: log, log1p or logit_pct (e.g. CRP=log1p)")
    p.add_argument("--imputations", type=int, default=20,
                   help="multiply imputed data sets for the missing-data sensitivity analysis (default 20; 0: off)")
    p.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_run_mediate)


def _run_mediate(args: argparse.Namespace) -> int:
    from ssinfnet.analysis.mediation import MediationSpec, run_mediation
    from ssinfnet.analysis.mediation_outputs import write_outputs
    from ssinfnet.analysis.tables import filter_rows, join_phenotypes

    refuse_existing(args.out, args.overwrite)
    clinical = _read_clinical(args, args.table)
    frame, join = clinical.frame, None
    if args.phenotypes:
        frame, join = join_phenotypes(frame, args.phenotypes, args.join_on)
    frame, filters = filter_rows(frame, args.where)
    transforms = {}
    for item in args.transform:
        mediator, sep, name = item.partition("=")
        if not sep:
            raise InputError(f"bad --transform {item!r} (use MEDIATOR=NAME)")
        transforms[mediator] = name
    spec = MediationSpec(
        exposure=args.exposure, mediators=args.mediators, outcome=args.outcome, covariates=args.covariates,
        outcome_type=args.outcome_type, link=args.link, method=args.method, sims=args.sims, seed=args.seed,
        contrast=tuple(args.contrast) if args.contrast else None, transforms=transforms,
        imputations=args.imputations)
    try:
        result = run_mediation(frame, spec)
    except InputError as err:  # a problem of the analysis table names the file(s) it was read from
        if err.path is not None:
            raise
        source = f"{args.table} joined with {args.phenotypes}" if args.phenotypes else args.table
        raise InputError(err.problem, source) from err
    provenance = {
        "command": _command_line(),
        "table": str(args.table), "rows_read": len(clinical.frame), "clinical_report": clinical.report,
        "join": join, "filters": filters,
    }
    paths = write_outputs(result, args.out, provenance, overwrite=args.overwrite)
    print(paths["summary.md"].read_text())
    return 0


def _command_line() -> str:
    """The command as typed, when run as ``ssinfnet`` / ``python -m ssinfnet`` (not when called from Python)."""
    if Path(sys.argv[0]).name in ("ssinfnet", "__main__.py"):
        return "ssinfnet " + shlex.join(sys.argv[1:])
    return "(called from Python; the spec in mediation.json is complete)"
