"""What the real-scan benchmarks share: the models compared ("before/after") and the record format."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_models(specs: list[str]) -> list[tuple[str, str | None]]:
    """``NAME=PIPELINE_FOLDER`` specs (``default`` = the bundled model) -> [(name, folder or None)]."""
    models = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            name, folder = spec, spec
        models.append((name, None if folder == "default" else folder))
    return models


def load(folder: str | None):
    from ssinfnet.inference.segment import resolve_pipeline

    return resolve_pipeline(folder)


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def command() -> str:
    return " ".join(["python", *[a if " " not in a else repr(a) for a in sys.argv]])


def mean_ci(values) -> dict:
    """Mean with a normal-approximation 95% CI (1.96 standard errors), and n."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not data.size:
        return {"mean": None, "ci95": None, "n": 0}
    half = 1.96 * data.std(ddof=1) / np.sqrt(data.size) if data.size > 1 else 0.0
    return {"mean": float(data.mean()), "ci95": [float(data.mean() - half), float(data.mean() + half)], "n": int(data.size)}


def markdown_table(rows: list[dict]) -> str:
    """Rows (dicts of cells, one key order) as a markdown table."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(r[k]) for k in header) + " |" for r in rows]) + "\n"
