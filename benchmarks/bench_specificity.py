"""Specificity on real scans: does the model find lesions where there are none? Not a test.

1. The unlabeled pool's held-out part (``ssinfnet.data.pool``: 20% of the source groups, never seen by
   any training step): each slice is segmented as a 2D image (``ssinfnet.segment``: lung mask, lung
   crop, two-stage prediction, lesions confined to the lung) and scored by its predicted lesion share
   of the lung (0 when no lung is found). Slice-level detection of COVID vs NonCOVID by that share:
   ROC AUC with a 95% bootstrap CI; the false-positive burden on NonCOVID slices (median and 95th
   percentile of the share). The slice labels are weak: NonCOVID slices may show other disease, and
   COVID slices may show none.
2. The real DICOM negative controls (``real-ct/``): lesion mL and % of lung, lesions outside the lung.

    .venv/bin/python benchmarks/bench_specificity.py --data ../shared/data --model after=default \\
        --model before=/tmp/bundle-before   # -> results/benchmarks/specificity.{json,md}
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from realscan_common import REPO, command, load, machine, markdown_table, parse_models
from ssinfnet.data.imageio import read_image_2d
from ssinfnet.data.pool import HELDOUT_FRACTION, split_pool
from ssinfnet.fileio import write_json, write_text
from ssinfnet.inference.segment import read_scan, segment

BOOTSTRAPS = 2000
REAL_CASES = ("chest-2slices-dicom", "abdomen-20slices-dicom")


def lesion_share(result) -> float:
    """Lesion pixels / lung pixels in percent (the lung mask includes the kept lesions); 0 without lung."""
    lung = int(np.count_nonzero(result.lung))
    return 100.0 * np.count_nonzero(result.labels) / lung if lung else 0.0


#: The pool's collections, told apart by their file names (data README): the SARS-CoV-2 CT-scan data set,
#: the UCSD COVID-CT figure crops, and the rest (512 px hospital slices).
SOURCES = (("SARS-CoV-2 CT-scan", re.compile(r"^(Non-)?Covid \(\d+\)", re.I)),
           ("UCSD COVID-CT", re.compile(r"^\d{4}\.\d{2}\.\d{2}\.")))


def source_of(name: str) -> str:
    return next((label for label, pattern in SOURCES if pattern.match(name)), "hospital slices")


def pool_scores(pipeline, files) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    shares, labels, sources, no_lung = [], [], [], 0
    for item in files:
        array, _ = read_image_2d(item.path)
        result = segment(np.asarray(array), model=pipeline)
        no_lung += not np.count_nonzero(result.lung)
        shares.append(lesion_share(result))
        labels.append(item.label == "COVID")
        sources.append(source_of(item.path.name))
    return np.asarray(shares), np.asarray(labels), sources, no_lung


def by_source(shares: np.ndarray, covid: np.ndarray, sources: list[str]) -> dict:
    out = {}
    for name in sorted(set(sources)):
        pick = np.asarray([s == name for s in sources])
        if covid[pick].min() != covid[pick].max():
            out[name] = {"slices": int(pick.sum()), "auc": float(roc_auc_score(covid[pick], shares[pick])),
                         "noncovid_share_median": float(np.median(shares[pick & ~covid])),
                         "covid_share_median": float(np.median(shares[pick & covid]))}
    return out


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAPS):
        index = rng.integers(0, len(labels), len(labels))
        if labels[index].min() != labels[index].max():
            values.append(roc_auc_score(labels[index], scores[index]))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def real_case(pipeline, folder: Path) -> dict:
    scan = read_scan(folder)
    result = segment(scan, model=pipeline)
    q = result.quantities
    lung, lesion = result.lung.astype(bool), result.labels > 0
    hu = scan.to_input(np.asarray(scan.stack, dtype=np.float32))
    rest = hu[lung & ~lesion]
    return {"lesion_ml": round(q["ggo_ml"] + q["consolidation_ml"], 2), "lung_ml": q.get("lung_ml"),
            "lesion_percent_of_lung": q.get("lesion_percent_of_lung"),
            "lesion_voxels_outside_lung": int(np.count_nonzero(lesion & ~lung)),
            # where the "lesions" are, in HU: against the rest of the lung and its darkest 5%
            "lesion_median_hu": float(np.median(hu[lesion])) if lesion.any() else None,
            "other_lung_median_hu": float(np.median(rest)) if rest.size else None,
            "other_lung_p5_hu": float(np.percentile(rest, 5)) if rest.size else None}


def evaluate(name: str, folder: str | None, data: Path, files, limit: int | None) -> dict:
    pipeline = load(folder)
    start = time.perf_counter()
    # --limit: every k-th file, so that both labels stay in a quick look
    shares, covid, sources, no_lung = pool_scores(pipeline, files[:: max(1, len(files) // limit)] if limit else files)
    negative = shares[~covid]
    record = {
        "model": name, "pipeline": folder or "bundled default",
        "heldout_slices": int(len(shares)), "covid": int(covid.sum()), "noncovid": int((~covid).sum()),
        "slices_without_lung": no_lung,
        "auc": float(roc_auc_score(covid, shares)), "auc_ci95": bootstrap_auc(covid, shares),
        "noncovid_share_median": float(np.median(negative)), "noncovid_share_p95": float(np.percentile(negative, 95)),
        "covid_share_median": float(np.median(shares[covid])),
        "by_source": by_source(shares, covid, sources),
        "real_ct": {case: real_case(pipeline, data / "real-ct" / case) for case in REAL_CASES},
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(record)
    return record


def rows(records: list[dict]) -> list[dict]:
    """One row per model: the table of the results file, the README and the model card."""
    out = []
    for r in records:
        chest, abdomen = (r["real_ct"][c] for c in REAL_CASES)
        out.append({
            "model": r["model"],
            "held-out slices (COVID / NonCOVID)": f"{r['heldout_slices']} ({r['covid']} / {r['noncovid']})",
            "detection AUC [95% CI]": f"{r['auc']:.3f} [{r['auc_ci95'][0]:.3f}, {r['auc_ci95'][1]:.3f}]",
            "NonCOVID lesion % of lung, median / p95": f"{r['noncovid_share_median']:.2f} / {r['noncovid_share_p95']:.2f}",
            "healthy chest DICOM: lesion mL, % of lung": f"{chest['lesion_ml']:.2f}, {_pct(chest)}",
            "abdomen DICOM: lesion mL, % of lung, voxels outside lung":
                f"{abdomen['lesion_ml']:.2f}, {_pct(abdomen)}, {abdomen['lesion_voxels_outside_lung']}",
            "AUC by source": "; ".join(f"{k} {v['auc']:.2f} (n={v['slices']})" for k, v in r["by_source"].items()),
        })
    return out


def _pct(case: dict) -> str:
    value = case["lesion_percent_of_lung"]
    return "no lung" if value is None else f"{value:.1f}%"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PIPELINE",
                        help="a pipeline folder to score (repeatable; 'default' = the bundled model)")
    parser.add_argument("--limit", type=int, default=None, help="about N of the held-out slices, evenly spread (a quick look)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "specificity.json")
    args = parser.parse_args()
    _, heldout = split_pool(args.data / "unlabeled-ct", HELDOUT_FRACTION)
    records = [evaluate(name, folder, args.data, heldout, args.limit) for name, folder in parse_models(args.model or ["default"])]
    table = rows(records)
    write_json(args.out, {"command": command(), "machine": machine(), "heldout_fraction": HELDOUT_FRACTION,
                          "bootstraps": BOOTSTRAPS, "models": records, "rows": table})
    write_text(args.out.with_suffix(".md"), f"Written by `{command()}`\n\n" + markdown_table(table))
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
