"""Label values of every mask in the project (index = value), and the one colour and legend of each
lesion class: segment's overlays and colour tables, the evaluation gallery and the report all use these."""

from __future__ import annotations

import numpy as np

#: 0 background, 1 ground-glass opacity, 2 consolidation.
CLASS_NAMES = ("background", "GGO", "consolidation")

#: Label value -> (name, RGB, colour word) of each lesion class, as in the paper's Fig. 7.
LABEL_COLOURS = {1: ("GGO", (255, 0, 0), "red"), 2: ("consolidation", (0, 255, 0), "green")}
#: A single-stage model's lesions are label 1 without a class: "infection", in label 1's colour.
INFECTION = "infection"
#: Weight of a label's colour over the grey image in an overlay.
OVERLAY_ALPHA = 0.45


def legend_entries(task: str = "multi") -> list[tuple[int, str, tuple[int, int, int], str]]:
    """(label value, name, RGB, colour word) of every label an overlay of ``task`` shows: "multi" (GGO,
    consolidation) or "single" (infection, label 1)."""
    if task == "single":
        _, rgb, word = LABEL_COLOURS[1]
        return [(1, INFECTION, rgb, word)]
    return [(value, name, rgb, word) for value, (name, rgb, word) in LABEL_COLOURS.items()]


def legend_text(task: str = "multi") -> str:
    """The legend in words, e.g. "GGO red, consolidation green"."""
    return ", ".join(f"{name} {word}" for _, name, _, word in legend_entries(task))


def overlay_rgb(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): grey ``image`` in [0, 1] with each lesion label's colour blended in at OVERLAY_ALPHA."""
    rgb = np.repeat(np.asarray(image, dtype=np.float32)[..., None] * 255.0, 3, axis=-1)
    for value, (_, colour, _) in LABEL_COLOURS.items():
        where = labels == value
        rgb[where] = (1 - OVERLAY_ALPHA) * rgb[where] + OVERLAY_ALPHA * np.array(colour, dtype=np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
