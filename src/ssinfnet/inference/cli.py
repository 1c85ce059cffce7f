"""``ssinfnet segment``: label GGO and consolidation in scans and quantify them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ssinfnet.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment GGO / consolidation in CT scans and quantify them",
        description="Segment GGO and consolidation in NIfTI volumes, DICOM series folders or 2D images "
                    "(or folders of them); each scan gets its own folder under --out with labels in the "
                    "input's geometry, a lung mask, colour tables, overlays and quantities.json/.csv. "
                    "Every input is read and checked before the model loads: a bad one stops the run "
                    "with nothing written. --out/summary.csv lists every scan folder under --out "
                    "(those of earlier runs too).",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="NIfTI file, DICOM series folder, PNG/JPG/TIFF image, or a folder of these")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder (one sub-folder per scan)")
    parser.add_argument("--model", type=Path, default=None,
                        help="pipeline folder (pipeline.json + safetensors); default: the bundled model")
    parser.add_argument("--series", default=None, metavar="UID",
                        help="DICOM SeriesInstanceUID to use (default: the largest series, with a warning)")
    parser.add_argument("--spacing", type=float, nargs=2, default=None, metavar=("ROW_MM", "COL_MM"),
                        help="pixel spacing of 2D images, for areas in mm^2")
    parser.add_argument("--probabilities", action="store_true", help="also write probability maps")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output folders")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="slices predicted at once (memory grows with it; default: segment's default)")
    parser.add_argument("--device", default=None, help="torch device (default: GPU when present, else CPU)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: bf16 where the hardware runs it natively (default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here so that `ssinfnet --help` and the other verbs do not pay for them
    from ssinfnet import fileio  # noqa: PLC0415
    from ssinfnet.inference.outputs import write_summary  # noqa: PLC0415
    from ssinfnet.inference.segment import (  # noqa: PLC0415
        DEFAULT_BATCH_SIZE, find_inputs, read_scan, resolve_pipeline, segment)

    batch_size = DEFAULT_BATCH_SIZE if args.batch_size is None else args.batch_size  # >= 1: ssinfnet.cli
    _check_out(args.out)
    fileio.remove_stale_temporaries(args.out)  # left by a killed run
    inputs = find_inputs(args.inputs)
    outputs = _output_folders(inputs, args.out)
    existing = [out for out in outputs if out.exists()]
    if existing and not args.overwrite:
        raise InputError(f"output folder exists ({len(existing)} of {len(outputs)}); "
                         "pass --overwrite to replace", existing[0])
    for path in inputs:  # each read, checked and dropped: a bad input stops the run before any output
        _named(lambda: read_scan(path, args.series, args.spacing), path)
    bf16 = {"auto": None, "fp32": False, "bf16": True}[args.precision]
    pipeline = resolve_pipeline(args.model, args.device, bf16)
    try:
        for path, out in zip(inputs, outputs):
            result = _named(lambda: segment(read_scan(path, args.series, args.spacing), model=pipeline,
                                            probabilities=args.probabilities, batch_size=batch_size,
                                            progress=not args.no_progress), path)
            result.save(out, overwrite=args.overwrite)
            print(_summary_line(out, result.quantities))
    finally:  # the scans written so far (each folder whole) are listed, even when a later one fails
        write_summary(args.out)
    return 0


def _named(work, path: Path):
    """``work()``; an InputError that names no file (the model refusing "image 0") names the scan."""
    try:
        return work()
    except InputError as err:
        if err.path is not None:
            raise
        raise InputError(err.problem, path) from err


def _check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot become the output folder before any scan is read."""
    from ssinfnet import fileio  # noqa: PLC0415

    try:
        str(out).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("--out: folder name is not valid UTF-8", out) from None
    if out.exists() and not out.is_dir():
        raise InputError("--out is a file; expected a folder to write the scans' folders into", out)
    fileio.check_writable(out)  # read-only or full disk: an OSError, one line at the CLI boundary


def _output_folders(inputs: list[Path], out: Path) -> list[Path]:
    """``out/<scan name>``, with ``-2``, ``-3``... when two inputs share a name."""
    from ssinfnet.inference.segment import scan_name  # noqa: PLC0415

    folders, seen = [], {}
    for path in inputs:
        name = scan_name(path)
        seen[name] = seen.get(name, 0) + 1
        folders.append(out / (name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return folders


def _summary_line(out: Path, q: dict) -> str:
    unit = "ml" if "lesion_ml" in q else "mm2" if "lesion_mm2" in q else None
    amounts = (f"GGO {q[f'ggo_{unit}']:.2f} {unit}, consolidation {q[f'consolidation_{unit}']:.2f} {unit}"
               if unit else f"GGO {q['ggo_pixels']} px, consolidation {q['consolidation_pixels']} px")
    percent = q["lesion_percent_of_lung"]
    lung = "lung mask empty" if percent is None else f"lesions {percent:.1f}% of lung"
    return f"{out.name}: {amounts}; {lung} -> {out}"
