"""Example images of a run (inpaintings, coach masks) as one PNG grid, for a human to look at."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ssinfnet import fileio

GAP = 2  # pixels of white between tiles


def save_grid(rows: list[list[torch.Tensor]], path: Path) -> None:
    """Tile equally sized (H, W) tensors in [0, 1] row by row into an 8-bit grayscale PNG."""
    tiles = [[np.clip(t.detach().float().cpu().numpy(), 0.0, 1.0) for t in row] for row in rows]
    height, width = tiles[0][0].shape
    n_rows, n_cols = len(tiles), max(len(row) for row in tiles)
    canvas = np.ones((n_rows * (height + GAP) - GAP, n_cols * (width + GAP) - GAP), dtype=np.float32)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            top, left = r * (height + GAP), c * (width + GAP)
            canvas[top : top + height, left : left + width] = tile
    buffer = io.BytesIO()
    Image.fromarray(np.round(canvas * 255).astype(np.uint8)).save(buffer, format="PNG")
    fileio.write_bytes(path, buffer.getvalue())
