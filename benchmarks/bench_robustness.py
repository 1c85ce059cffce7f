"""Robustness to how a scan was exported: infection Dice on the 48 COVID-SemiSeg test slices, each
slice under realistic export differences, next to the clean slices. Not a test.

Every transformed slice is stored as 8-bit, as an export would be, and segmented as a 2D image by
``ssinfnet.segment`` (lung mask, lung crop, two-stage prediction, lesions confined to the lung);
Dice = per-image F1 of predicted vs true infection (GGO or consolidation), mean over the slices
(with 95% CI), the truth resized with the image where the geometry changes. The slices are never
used to choose anything: the transforms are fixed here, and training augments with the same
*kinds* of difference at random strengths (ssinfnet.data.augment.ExportAugmentation).

Transforms: ``ssinfnet.data.augment.FIXED_EXPORTS`` (each described there), after the clean slice.

    .venv/bin/python benchmarks/bench_robustness.py --data ../shared/data --model after=default \\
        --model before=/tmp/bundle-before   # -> results/benchmarks/robustness.{json,md}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from realscan_common import REPO, command, load, machine, markdown_table, mean_ci, parse_models
from ssinfnet.data.augment import FIXED_EXPORTS, as_8bit
from ssinfnet.data.readers import read_semiseg
from ssinfnet.core.metrics import binary_scores
from ssinfnet.core.provenance import content_fingerprint, git_commit
from ssinfnet.evaluation.ledger import ledger_for
from ssinfnet.fileio import write_json, write_text
from ssinfnet.inference.segment import segment

#: The largest Dice loss accepted for any transform (issue 12).
MAX_LOSS = 0.05


TRANSFORMS = {"clean": lambda x, m: (x, m), **FIXED_EXPORTS}


def dice_under(pipeline, samples, transform) -> list[float]:
    scores = []
    for sample in samples:
        image, mask = transform(sample.image.astype(np.float32), sample.mask)
        result = segment(as_8bit(image), model=pipeline)
        scores.append(binary_scores(np.asarray(mask) > 0, result.labels > 0)["f1"])
    return scores


def evaluate(name: str, folder: str | None, samples) -> dict:
    pipeline = load(folder)
    start = time.perf_counter()
    dice = {key: mean_ci(dice_under(pipeline, samples, transform)) for key, transform in TRANSFORMS.items()}
    clean = dice["clean"]["mean"]
    for value in dice.values():
        value["loss_vs_clean"] = None if value["mean"] is None else clean - value["mean"]
    worst = max((k for k in dice if k != "clean"), key=lambda k: dice[k]["loss_vs_clean"])
    record = {"model": name, "pipeline": folder or "bundled default", "slices": len(samples), "dice": dice,
              "worst": worst, "worst_loss": dice[worst]["loss_vs_clean"],
              "meets_target": dice[worst]["loss_vs_clean"] <= MAX_LOSS, "seconds": round(time.perf_counter() - start, 1)}
    print({k: round(v["mean"], 3) for k, v in dice.items()})
    return record


def rows(records: list[dict]) -> list[dict]:
    """One row per transform, a column per model: Dice (loss vs clean); the worst loss last."""
    out = [{"transform": key, **{f"{r['model']}: Dice (loss vs clean)":
                                 f"{r['dice'][key]['mean']:.3f} ({r['dice'][key]['loss_vs_clean']:+.3f})" for r in records}}
           for key in TRANSFORMS]
    out.append({"transform": "**worst loss**",
                **{f"{r['model']}: Dice (loss vs clean)": f"{r['worst_loss']:.3f} ({r['worst']})" for r in records}})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PIPELINE",
                        help="a pipeline folder to score (repeatable; 'default' = the bundled model)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "robustness.json")
    args = parser.parse_args()
    samples = read_semiseg(args.data / "covid-semiseg", split="test")
    test_split = ledger_for(samples)  # the test ledger (ssinfnet.evaluation.ledger): one row per model scored
    data_sha256 = content_fingerprint(args.data / "covid-semiseg")["sha256"]
    records = []
    for name, folder in parse_models(args.model or ["default"]):
        records.append(evaluate(name, folder, samples))
        if test_split:
            print(test_split.record({"pipeline": Path(folder).name if folder else "default", "model": name},
                                    commit=git_commit(), prediction="product", data_sha256=data_sha256,
                                    purpose="benchmark: robustness to exports (reported)", record=args.out.name))
    table = rows(records)
    write_json(args.out, {"command": command(), "machine": machine(), "max_loss": MAX_LOSS, "models": records,
                          "rows": table})
    write_text(args.out.with_suffix(".md"), f"Written by `{command()}`\n\nInfection Dice (per-image F1, mean of "
               f"{records[0]['slices']} test slices) through `ssinfnet.segment`.\n\n" + markdown_table(table))
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
