"""Robustness to how a scan was exported: infection Dice on the 48 COVID-SemiSeg test slices, each
slice under realistic export differences, next to the clean slices. Not a test.

Every transformed slice is stored as 8-bit, as an export would be, and segmented as a 2D image by
``ssinfnet.segment`` (lung mask, lung crop, two-stage prediction, lesions confined to the lung);
Dice = per-image F1 of predicted vs true infection (GGO or consolidation), mean over the slices
(with 95% CI), the truth resized with the image where the geometry changes. The slices are never
used to choose anything: the transforms are fixed here, and training augments with the same
*kinds* of difference at random strengths (ssinfnet.data.augment.ExportAugmentation).

Transforms (x = the stored slice in [0, 1]):
- window_narrow / window_wide: another display window, x -> clip((x - 0.1) / 0.7), x -> 0.15 + 0.7 x;
- minmax_full_range: min-max scaling of the full HU range (-1024..3071 HU) instead of a lung window:
  the slice's ~1100 HU window then takes 27% of the grey levels, x -> 0.27 x + 0.01;
- clahe_2 / _4 / _8: contrast-limited adaptive histogram equalisation, OpenCV clip limits 2, 4, 8;
- gamma_0.6 / gamma_1.6; noise: Gaussian, sd 0.03 (8 grey levels);
- downsample_256: the longer side to 256 px and back; blur: Gaussian, sd 1.5 px;
- jpeg_50: JPEG quality 50;
- full_fov: the crop inside a field of view 1.6x as large: a chest wall of soft tissue around it (the
  crops cut through the lungs), air beyond and a table below.

    .venv/bin/python benchmarks/bench_robustness.py --data ../shared/data --model after=default \\
        --model before=/tmp/bundle-before   # -> results/benchmarks/robustness.{json,md}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from realscan_common import REPO, command, load, machine, markdown_table, mean_ci, parse_models
from ssinfnet.data.augment import clahe, full_field_of_view, jpeg
from ssinfnet.data.readers import read_semiseg
from ssinfnet.core.metrics import binary_scores
from ssinfnet.fileio import write_json, write_text
from ssinfnet.inference.segment import segment

#: The largest Dice loss accepted for any transform (issue 12).
MAX_LOSS = 0.05


def _resize(image: np.ndarray, shape: tuple[int, int], resample) -> np.ndarray:
    return np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize(shape[::-1], resample))


def _downsample(x: np.ndarray, mask: np.ndarray):
    scale = 256 / max(x.shape)
    small = _resize(x, (round(x.shape[0] * scale), round(x.shape[1] * scale)), Image.BILINEAR)
    return _resize(small, x.shape, Image.BILINEAR), mask


def _full_fov(x: np.ndarray, mask: np.ndarray):
    return full_field_of_view(x, mask, 1 / 1.6, np.random.default_rng(0))


TRANSFORMS = {
    "clean": lambda x, m: (x, m),
    "window_narrow": lambda x, m: (np.clip((x - 0.1) / 0.7, 0, 1), m),
    "window_wide": lambda x, m: (0.15 + 0.7 * x, m),
    "minmax_full_range": lambda x, m: (0.27 * x + 0.01, m),
    "clahe_2": lambda x, m: (clahe(x, 2.0), m),
    "clahe_4": lambda x, m: (clahe(x, 4.0), m),
    "clahe_8": lambda x, m: (clahe(x, 8.0), m),
    "gamma_0.6": lambda x, m: (x ** 0.6, m),
    "gamma_1.6": lambda x, m: (x ** 1.6, m),
    "noise": lambda x, m: (x + np.random.default_rng(1).normal(0, 0.03, x.shape), m),
    "downsample_256": _downsample,
    "blur": lambda x, m: (ndimage.gaussian_filter(x, 1.5), m),
    "jpeg_50": lambda x, m: (jpeg(x, 50), m),
    "full_fov": _full_fov,
}


def to_8bit(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def dice_under(pipeline, samples, transform) -> list[float]:
    scores = []
    for sample in samples:
        image, mask = transform(sample.image.astype(np.float32), sample.mask)
        result = segment(to_8bit(image), model=pipeline)
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
    records = [evaluate(name, folder, samples) for name, folder in parse_models(args.model or ["default"])]
    table = rows(records)
    write_json(args.out, {"command": command(), "machine": machine(), "max_loss": MAX_LOSS, "models": records,
                          "rows": table})
    write_text(args.out.with_suffix(".md"), f"Written by `{command()}`\n\nInfection Dice (per-image F1, mean of "
               f"{records[0]['slices']} test slices) through `ssinfnet.segment`.\n\n" + markdown_table(table))
    print(markdown_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
