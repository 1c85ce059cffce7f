"""Best, median and worst slices of an evaluation, saved as small PNGs for the report's overlays."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ssinfnet import fileio

RANKS = ("best", "median", "worst")
#: Longest side of the saved PNGs: enough to see lesions, small enough to embed many in one HTML file.
MAX_SIDE = 256
GALLERY_JSON = "gallery.json"


@dataclass
class GalleryItem:
    id: str
    rank: str
    score: float
    image: np.ndarray
    """float (H, W) in [0, 1]."""
    truth: np.ndarray
    """uint8 (H, W) labels: 0 background, 1 GGO (or infection), 2 consolidation."""
    prediction: np.ndarray


def pick(rows: Sequence[dict[str, Any]], column: str, per_rank: int) -> list[tuple[str, int]]:
    """(rank, row index) of the ``per_rank`` best, median and worst rows by ``column`` (NaN skipped)."""
    scored = sorted(
        (i for i, row in enumerate(rows) if not math.isnan(row[column])), key=lambda i: rows[i][column]
    )
    if not scored:
        return []
    middle = max(0, len(scored) // 2 - per_rank // 2)
    candidates = {
        "best": scored[::-1][:per_rank],
        "median": scored[middle:middle + per_rank],
        "worst": scored[:per_rank],
    }
    picked, seen = [], set()
    for rank in RANKS:
        for index in candidates[rank]:
            if index not in seen:  # few images: a slice can be both best and median; show it once
                seen.add(index)
                picked.append((rank, index))
    return picked


def write_gallery(folder: Path, task: str, items: Sequence[GalleryItem]) -> None:
    """``folder/gallery/<n>.{image,truth,prediction}.png`` and ``folder/gallery.json``."""
    entries = []
    for n, item in enumerate(items):
        entry: dict[str, Any] = {"id": item.id, "rank": item.rank, "score": item.score}
        for part, array, resample in (
            ("image", np.rint(np.clip(item.image, 0, 1) * 255), Image.BILINEAR),
            ("truth", item.truth, Image.NEAREST),
            ("prediction", item.prediction, Image.NEAREST),
        ):
            name = f"gallery/{n}.{part}.png"
            fileio.write_bytes(folder / name, _png(np.asarray(array, dtype=np.uint8), resample))
            entry[part] = name
        entries.append(entry)
    fileio.write_json(folder / GALLERY_JSON, {"task": task, "items": entries})


def read_gallery(folder: Path) -> tuple[str, list[GalleryItem]]:
    """The task and items written by :func:`write_gallery` (no gallery.json: no items)."""
    path = folder / GALLERY_JSON
    if not path.is_file():
        return "single", []
    data = json.loads(path.read_text())
    items = [
        GalleryItem(
            id=entry["id"], rank=entry["rank"], score=entry["score"],
            image=np.asarray(Image.open(folder / entry["image"]), dtype=np.float32) / 255,
            truth=np.asarray(Image.open(folder / entry["truth"])),
            prediction=np.asarray(Image.open(folder / entry["prediction"])),
        )
        for entry in data["items"]
    ]
    return data["task"], items


def _png(array: np.ndarray, resample: int) -> bytes:
    image = Image.fromarray(array)
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
