"""Is a 2D slice in the radiological view (anterior at the top)? Told by the spine, for images without an affine.

Public PNG sets mix conventions (one stores half of its volumes upside down), and the networks were
trained on radiological-view slices, so :func:`ssinfnet.inference.segment.segment` turns a 2D image
whose posterior is at the top before predicting (labels are turned back, so outputs keep the input's
geometry) and warns in one line. Volumes have affines and never come here.

Decision rule (on a copy of at most :data:`DECISION_PX` pixels a side, block-averaged, in the [0, 1]
display range the network sees):

1. Body: the larger class of an Otsu split (tissue vs air and lung), its largest connected component
   with holes filled. It must hold :data:`MIN_BODY_SHARE` of all tissue pixels: a real slice's soft
   tissue is one piece (mediastinum, chest wall and spine connected), while an image that shows only
   the lungs (everything else blacked out) splits into two lungs of similar size -> unknown.
2. Bone: pixels (3x3 median) brighter than soft tissue + ``level`` x (the body's 99.5th percentile -
   soft tissue), at each of :data:`BONE_LEVELS` (lung-window exports saturate bone, contrast-filled
   vessels and sometimes the heart alike; 8-bit exports keep bone brighter than the heart: no single
   level suits both).
3. Spine rows: rows whose bone run through the body's central columns (+-:data:`CENTRE_HALF_WIDTH` of
   the body width) is :data:`SPINE_RUN_WIDTH` of the body width: the vertebra (about 4-5 cm of a
   30-35 cm chest). The heart, the liver or the couch make wider runs, vessels in the lung narrower ones.
4. Posterior is the half of the body's height holding at least :data:`DOMINANCE` times the other
   half's spine rows and at least :data:`MIN_SPINE_ROWS` of the body's height: the vertebral body and
   its arch take about a fifth of the chest's depth, the sternum (the only midline bone in front) a
   twentieth. The view is decided only when every bone level that decides agrees; otherwise unknown.

Not used, on purpose: the couch and the flat body contour (both lie at the anterior chest of a prone
patient, as in the real prone scan the tests use), and dependent lung density (it follows gravity too).
Conservative by design: turning a correct slice is worse than leaving a wrong one, so no clear spine
means "unknown" and nothing is turned. Measured on real slices: tests/test_orientation.py.
Only "none" and a vertical flip are told apart: which side is the patient's left cannot be told from a
2D slice this way (the networks see slices and their mirror images alike), and quarter turns are not
detected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ssinfnet.data.intensity import otsu_split, to_unit_range

log = logging.getLogger(__name__)

#: The decision runs on a copy at most this many pixels on a side (anatomy, not detail).
DECISION_PX = 128
#: Bone thresholds, as fractions of the way from soft tissue to the body's 99.5th percentile.
BONE_LEVELS = (0.5, 0.65, 0.8)
#: Half width of the central columns a spine row's bone run must cross, as a fraction of the body width.
CENTRE_HALF_WIDTH = 0.04
#: Width of a vertebra's bone run, as fractions of the body width.
SPINE_RUN_WIDTH = (0.04, 0.25)
#: Fewest spine rows, as a fraction of the body's height, for the posterior half.
MIN_SPINE_ROWS = 0.08
#: The posterior half holds at least this many times the other half's spine rows.
DOMINANCE = 2.0
#: The body's component holds at least this share of all tissue pixels (else: no body, e.g. lungs only).
MIN_BODY_SHARE = 0.75

#: turn name -> (into the radiological view, back into the input's view).
TURNS = {"none": (lambda a: a, lambda a: a), "flip": (np.flipud, np.flipud)}


@dataclass(frozen=True)
class Orientation:
    """``turn``: "none" (radiological view), "flip" (posterior at the top: flip rows) or "unknown"
    (the anatomy does not tell: leave it); ``reason``: one line saying why."""

    turn: str
    reason: str

    @property
    def turns(self) -> bool:
        return self.turn in TURNS and self.turn != "none"


def radiological_turn(image: np.ndarray, modality: str = "unit") -> Orientation:
    """Which turn brings the 2D slice ``image`` into the radiological view (module doc).

    ``modality``: "unit" for values already in [0, 1] (a segment scan's ``unit_slice``), else one of
    :data:`ssinfnet.data.intensity.MODALITIES` (HU is put in the lung window first, like the network's input).
    """
    data = np.asarray(image, dtype=np.float32) if modality == "unit" else to_unit_range(image, modality)
    if data.ndim != 2 or min(data.shape) < 16:
        return Orientation("unknown", f"not a 2D slice of at least 16x16 pixels (shape {data.shape})")
    small = _block_mean(data)
    if np.ptp(small) == 0:
        return Orientation("unknown", "a blank image")
    tissue = small > otsu_split(small.ravel())
    components, count = ndimage.label(tissue)
    sizes = np.bincount(components.ravel())[1:]
    if not count or sizes.max() < MIN_BODY_SHARE * sizes.sum():
        return Orientation("unknown", "no body: the tissue is in separate pieces (lungs only?)")
    main = components == np.argmax(sizes) + 1
    votes = {_spine_side(small, main, level) for level in BONE_LEVELS} - {None}
    if len(votes) != 1:
        return Orientation("unknown", "no clear spine" if not votes else "the spine cues disagree")
    turn = votes.pop()
    where = "bottom" if turn == "none" else "top"
    return Orientation(turn, f"the spine is in the {where} half (posterior at the {where})")


def _spine_side(small: np.ndarray, main: np.ndarray, level: float) -> str | None:
    """"none" when the spine rows at bone ``level`` lie in the bottom half, "flip" in the top half, else None."""
    body = ndimage.binary_fill_holes(main)
    rows, cols = np.flatnonzero(body.any(axis=1)), np.flatnonzero(body.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    soft, top = np.median(small[main]), np.percentile(small[main], 99.5)
    bone = (ndimage.median_filter(small, size=3) > soft + level * (top - soft)) & body
    runs, _ = ndimage.label(bone, structure=[[0, 0, 0], [1, 1, 1], [0, 0, 0]])  # runs along each row
    run_width = np.bincount(runs.ravel())
    run_width[0] = 0
    middle, half = (cols[0] + cols[-1]) // 2, max(1, round(CENTRE_HALF_WIDTH * width))
    widest = run_width[runs[:, max(0, middle - half): middle + half + 1]].max(axis=1)
    low, high = SPINE_RUN_WIDTH
    spine = (widest >= low * width) & (widest <= high * width)
    depth = (np.arange(len(small)) - rows[0]) / max(height - 1, 1)
    top_rows, bottom_rows = int(spine[(depth >= 0) & (depth < 0.5)].sum()), int(spine[(depth > 0.5) & (depth <= 1)].sum())
    for turn, posterior, anterior in (("none", bottom_rows, top_rows), ("flip", top_rows, bottom_rows)):
        if posterior >= DOMINANCE * anterior and posterior >= MIN_SPINE_ROWS * height:
            return turn
    return None


def _block_mean(data: np.ndarray) -> np.ndarray:
    """``data`` averaged in square blocks to at most :data:`DECISION_PX` a side (averaging, unlike
    sampling, lowers the noise that would pass for bone in a lung-window export). The last partial
    block is padded with edge values on both sides, not cropped: cropping a tight crop's edge rows can
    cut the body's tissue apart on one side only, and the decision on an image and on its flipped copy
    must be the same (mirrored)."""
    step = max(1, int(np.ceil(max(data.shape) / DECISION_PX)))
    pads = [((-n) % step // 2, (-n) % step - (-n) % step // 2) for n in data.shape]
    padded = np.pad(data, pads, mode="edge")
    rows, cols = padded.shape
    return padded.reshape(rows // step, step, cols // step, step).mean(axis=(1, 3))


def turned(array: np.ndarray, turn: str) -> np.ndarray:
    """``array`` (rows, cols, ...) turned into the radiological view by ``turn`` ("unknown": as it is)."""
    return TURNS.get(turn, TURNS["none"])[0](array)


def turned_back(array: np.ndarray, turn: str) -> np.ndarray:
    """The inverse of :func:`turned`: a result in the radiological view back in the input's view."""
    return TURNS.get(turn, TURNS["none"])[1](array)


def image_turn(image: np.ndarray, modality: str, source: object) -> str:
    """The turn ``segment`` applies to a 2D image (:func:`radiological_turn`), with one warning line
    naming ``source`` and the turn when it is not "none"."""
    found = radiological_turn(image, modality)
    if found.turns:
        log.warning("%s: not in the radiological view (%s); flipped upside down for prediction, outputs "
                    "keep the input's orientation", source, found.reason)
        return found.turn
    return "none"
