"""Print the README's two results tables (the self-supervision study's, then the shipped model's), generated
from committed result files (no number is typed in here except the published figures, which are papers'
numbers, not our runs).

    python scripts/results_table.py                    # print both tables
    python scripts/results_table.py --write README.md   # replace the blocks between the README's markers

``tests/test_readme_table.py`` checks that README.md's blocks hold exactly what this prints. A missing source
file or key stops it with one line naming the file (and the key), exit 1: the tables are never half filled.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results-table -->", "<!-- /results-table -->"
STUDY_BEGIN, STUDY_END = "<!-- study-table -->", "<!-- /study-table -->"

STUDY = "results/2026-12-07-self-supervision-cpu"
STUDY_JSON = f"{STUDY}/focal/study.json"  # the last of its studies: 3 seeds, focal + Lookahead with and without
STUDY_PROTOCOL = "self-supervision-cpu-focal"
STUDY_COMMAND = f"bash {STUDY}/run.sh {STUDY_PROTOCOL}"

PRODUCT_PATH = "results/2026-12-07-product-path"
PRODUCT_PATH_COMMAND = f"bash {PRODUCT_PATH}/run.sh"
RAW, PRODUCT, P001 = (f"{PRODUCT_PATH}/eval-{name}.json" for name in ("test-raw", "test-product", "P001"))
SEGMENT_SUMMARY = f"{PRODUCT_PATH}/segment-summary.csv"
#: segment-summary.csv names a DICOM series by its folder: "dicom" is real-ct/covid-ct-md-normal001/dicom
#: (a healthy chest; see results/2026-12-07-product-path/README.md).
HEALTHY_ROW, ABDOMEN_ROW = "dicom", "abdomen-20slices-dicom"
SEGMENT_SPEED, EVALUATE_SPEED = "results/benchmarks/segment.json", "results/benchmarks/evaluate.json"

#: Published Inf-Net-protocol infection Dice on the same 48 COVID-SemiSeg test slices: Fan et al., "Inf-Net:
#: Automatic COVID-19 Lung Infection Segmentation from CT Images", IEEE TMI 2020 (as listed in
#: ../shared/reference/method-notes.md, section 6). Papers' figures, not our runs.
PUBLISHED = {"U-Net": 0.439, "Inf-Net": 0.682, "Semi-Inf-Net": 0.739}
CITATION = "Fan et al., Inf-Net, IEEE TMI 2020: the same 48 slices and protocol"


class SourceError(Exception):
    """A source file or one of its keys is missing."""


def load(root: Path, relative: str) -> dict | list:
    path = root / relative
    if not path.is_file():
        raise SourceError(f"missing source file {relative}")
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    return json.loads(path.read_text(encoding="utf-8"))


def need(record: dict, dotted: str, relative: str):
    """``record["a"]["b"]...`` for ``dotted`` "a.b...", or a SourceError naming the file and key."""
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise SourceError(f"{relative}: no key {dotted!r}")
        value = value[key]
    return value


def scan_row(rows: list[dict], scan: str, relative: str) -> dict:
    found = [row for row in rows if row.get("scan") == scan]
    if len(found) != 1:
        raise SourceError(f"{relative}: expected one row for scan {scan!r}, found {len(found)}")
    return found[0]


def f1s(record: dict, relative: str) -> str:
    return " / ".join(f"{need(record, f'metrics.{c}.f1.mean', relative):.3f}"
                      for c in ("infection", "GGO", "consolidation"))


def table(root: Path = ROOT) -> str:
    raw, product, p001 = (load(root, name) for name in (RAW, PRODUCT, P001))
    scans = load(root, SEGMENT_SUMMARY)
    healthy, abdomen = scan_row(scans, HEALTHY_ROW, SEGMENT_SUMMARY), scan_row(scans, ABDOMEN_ROW, SEGMENT_SUMMARY)
    seg, ev = load(root, SEGMENT_SPEED), load(root, EVALUATE_SPEED)
    n = need(raw, "images", RAW)
    dice = "metrics.infnet.dice.mean"
    shape = "x".join(str(s) for s in need(seg, "volume_shape", SEGMENT_SPEED))
    ev_size = "x".join(str(s) for s in need(ev, "size", EVALUATE_SPEED))
    lung = float(need(abdomen, "lung_ml", SEGMENT_SUMMARY))
    rows = [
        (f"{n} test slices: Inf-Net-protocol Dice, networks alone, `--raw`",
         f"{need(raw, dice, RAW):.3f}", ", ".join(f"{k} {PUBLISHED[k]:.3f}" for k in ("Inf-Net", "Semi-Inf-Net"))),
        (f"{need(product, 'images', PRODUCT)} test slices: Inf-Net-protocol Dice, what `segment` gives",
         f"{need(product, dice, PRODUCT):.3f}", "—"),
        (f"{n} test slices: F1 infection / GGO / consolidation, networks alone", f1s(raw, RAW), "—"),
        (f"{n} test slices: F1 infection / GGO / consolidation, `segment`", f1s(product, PRODUCT), "—"),
        ("healthy chest CT (COVID-CT-MD normal001): lesion, % of lung",
         f"{float(need(healthy, 'lesion_percent_of_lung', SEGMENT_SUMMARY)):.3f}%", "—"),
        (f"COVID CT (COVID-CT-MD P001), {need(p001, 'images', P001)} labelled slices: slice-level AUC ²",
         f"{need(p001, 'auc.detection', P001):.3f} ({need(p001, 'detection.sensitivity', P001):.3f} / "
         f"{need(p001, 'detection.specificity', P001):.3f})", "—"),
        (f"upper-abdomen DICOM (`{ABDOMEN_ROW}`): lesion",
         f"{float(need(abdomen, 'lesion_ml', SEGMENT_SUMMARY)):.1f} mL" + (", no lung" if lung == 0 else ""), "—"),
        (f"speed: `segment` a {shape} generated volume, {need(seg, 'threads', SEGMENT_SPEED)} CPU threads",
         f"{need(seg, 'total_s', SEGMENT_SPEED):.1f} s", "—"),
        (f"speed: `evaluate` {need(ev, 'slices', EVALUATE_SPEED)} slices of {ev_size} px, "
         f"{need(ev, 'threads', EVALUATE_SPEED)} CPU threads",
         f"{need(ev, 'seconds_per_slice', EVALUATE_SPEED):.3f} s/slice", "—"),
    ]
    lines = ["| measure (bundled model) | ssinfnet | published ¹ |", "|---|---|---|"]
    lines += [f"| {measure} | {ours} | {theirs} |" for measure, ours, theirs in rows]
    lines += [
        "",
        f"¹ {CITATION} (U-Net {PUBLISHED['U-Net']:.3f} there).",
        f"² lesion share of lung per slice against the radiologists' slice labels; in brackets sensitivity /",
        f"specificity at \"{need(p001, 'detection.operating_point', P001)}\".",
        "",
        f"- `{PRODUCT_PATH}/`: `{Path(RAW).name}`, `{Path(PRODUCT).name}`, `{Path(P001).name}`,",
        f"  `{Path(SEGMENT_SUMMARY).name}`, written by `{PRODUCT_PATH_COMMAND}`; see its README",
        f"- `{SEGMENT_SPEED}`: `{need(seg, 'command', SEGMENT_SPEED)}`",
        f"- `{EVALUATE_SPEED}`: `{need(ev, 'command', EVALUATE_SPEED)}`",
    ]
    return "\n".join(lines) + "\n"


#: How the study's checks are headed in the README (the measure of each check, shortly).
CHECK_UNITS = {"lesion_percent_of_lung": "%", "slice_auc": "AUC", "lesion_ml": "mL"}


def study_table(root: Path = ROOT) -> str:
    """The self-supervision study's single-stage candidates by name (``-preN``: fine-tuned from N epochs of
    pretraining): out-of-fold endpoint, the paired difference to random init, the development-scan checks and
    the rule's choice (from the study's study.json)."""
    import textwrap

    study = load(root, STUDY_JSON)
    stage = need(study, "stages.single", STUDY_JSON)
    candidates, chosen = need(stage, "candidates", STUDY_JSON), need(stage, "chosen", STUDY_JSON)
    checks = [text.split(": ", 1) for text in need(study, "checks", STUDY_JSON)]  # "name: measure <= bound"
    heads = [f"{name} {CHECK_UNITS[rule.split()[0]]}" for name, rule in checks]
    lines = ["| candidate | out-of-fold Dice (a) | vs random init (b) | " + " | ".join(heads) + " | passes (c) |",
             "|---|---|---|" + "---|" * len(checks) + "---|"]
    for row in candidates:
        name = f"**{row['name']}** (chosen)" if row["name"] == chosen else row["name"]
        difference = ("—" if row["name"] == row["reference"] else
                      f"{row['vs_reference']:+.3f} [{row['vs_reference_low']:+.3f}, {row['vs_reference_high']:+.3f}]")
        values = [f"{row['checks'][name]:.3g}" for name, _ in checks]
        lines.append(f"| {name} | {row['endpoint']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] | {difference} | "
                     + " | ".join(values) + f" | {'yes' if row['passes'] else 'no'} |")
    seeds = sorted({seed for row in candidates for seed in row["seeds"]})
    units = {"lesion_percent_of_lung": "lesion % of lung", "slice_auc": "slice AUC", "lesion_ml": "mL"}
    bounds = ", ".join(f"{name} {units[rule.split()[0]]} {' '.join(rule.split()[1:])}" for name, rule in checks)
    slices = candidates[0]["images"] // len(seeds)  # images: the slice scores pooled over the seeds
    note = (f"(a) Inf-Net-protocol infection Dice of the out-of-fold predictions of the {slices} "
            f"labelled training slices (5 folds, {'seeds' if len(seeds) > 1 else 'seed'} {', '.join(seeds)}"
            f"{': their mean' if len(seeds) > 1 else ''}), [95% CI] clustered by source group; (b) paired by "
            f"{'seed and ' if len(seeds) > 1 else ''}slice. (c) Checks of each candidate's shipped form on "
            "development scans, never test: "
            f"{bounds}. The committed rule: {need(stage, 'why', STUDY_JSON)}.")
    lines += ["", textwrap.fill(note, 110), "",
              f"- `{STUDY_COMMAND}`; see its README",
              f"- `python {STUDY}/paired.py {STUDY_PROTOCOL} A B`: A minus B"]
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with everything between the markers ``begin`` and ``end`` replaced by ``block``."""
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SourceError(f"markers {begin} ... {end} not found")
    return text[: start + len(begin)] + "\n" + block + text[stop:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print (or write into a README) the results table.")
    parser.add_argument("--write", type=Path, metavar="README", help="replace the block between the markers")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root holding results/")
    args = parser.parse_args(argv)
    try:
        study, block = study_table(args.root), table(args.root)
        if args.write:
            text = replace_block(args.write.read_text(encoding="utf-8"), study, STUDY_BEGIN, STUDY_END)
            args.write.write_text(replace_block(text, block), encoding="utf-8")
    except SourceError as err:
        print(f"results_table: {err}", file=sys.stderr)
        return 1
    if not args.write:
        sys.stdout.write(study + "\n" + block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
