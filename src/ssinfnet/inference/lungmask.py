"""Lung mask from a simple, documented classical method (no model), as the denominator of lesion percentages.

Layout: every function takes a stack of axial slices ``(slices, rows, cols)`` (a single 2D image is a
stack of one). Connectivity used for "the border" and for hole filling is in-plane only, so each slice
is treated on its own there; the largest-component choice is 3D so the two lungs are followed through
the stack.

Method (HU input):
1. Air-like voxels: HU < -320. Aerated lung parenchyma is about -900..-500 HU and soft tissue above
   -100 HU; -320 HU sits between them and is a threshold in common use for CT lung masks.
2. Per slice, air connected to the image border is air outside the body (or the table gap) and is
   removed, in slices where such air lines at least half of the border (a field of view around the
   whole body). Where it lines less, the image is a crop through the chest (as the COVID-SemiSeg
   slices are) and the dark regions at its edge are lungs cut by the crop: they stay.
3. 3D connected components of what is left; the largest component is kept, plus the second largest
   when it is at least 10% of the largest (the two lungs when they do not touch). Bowel gas, which
   is usually smaller, is dropped.
4. Per slice, holes are filled: vessels, airway walls and lesions enclosed by aerated lung join the
   mask.
5. :func:`include_lesions` then adds each predicted lesion that touches the mask: dense peripheral
   consolidation is above -320 HU and would otherwise be outside the lung and missing from the
   percentages.

8-bit input (display-windowed images without HU): step 1 uses an Otsu threshold on the image
intensities (dark = air or lung) because the window that made the image is unknown, after an
in-plane median filter (:data:`MEDIAN_PX` pixels) against JPEG noise. The darkest value is left out
of the histogram: it is mostly padding (the black corners outside a round reconstruction field),
which would otherwise pull the threshold below the grey of air and lung. Steps 2-5 are the same.

Limits (say them when quoting percentages):
- Lungs reaching the border of a full field of view (the body cut by it) are removed with the
  outside air in step 2 and the mask is partial; percentages are then too high or ``None``. In a
  crop, air outside the body at its edge is kept as lung if it is among the two largest regions.
- The trachea and main bronchi are counted as lung (a few percent of lung volume).
- Large consolidation not touching aerated lung, pleural effusion, and collapsed lung are excluded.
- Emphysema, bullae and air in other places connected to the lungs (pneumothorax, pneumomediastinum)
  are included.
- For 8-bit input the Otsu split is only as good as the contrast between lung and soft tissue in the
  chosen display window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: One-line summary recorded with every result's quantities.
METHOD = ("HU < -320 (Otsu threshold for 8-bit images), air outside the body removed, largest 3D "
          "components, holes filled per slice, touching lesions added; limits in ssinfnet.inference.lungmask")
#: HU below which a voxel counts as air or aerated lung.
AIR_HU = -320.0
#: In-plane median filter width (pixels) applied to 8-bit images before their threshold.
MEDIAN_PX = 5
#: Border-connected air is outside air in slices where it covers at least this fraction of the border.
OUTSIDE_AIR_BORDER_FRACTION = 0.5
#: A second component is a lung only if at least this fraction of the largest one.
SECOND_LUNG_MIN_FRACTION = 0.10

# In-plane 4-connectivity inside a (slices, rows, cols) stack: no links between slices.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def lung_mask(stack: np.ndarray, modality: str = "hu") -> np.ndarray:
    """Boolean lung mask for a ``(slices, rows, cols)`` stack of HU (``modality="hu"``) or 8-bit/unit
    intensities (any other modality: Otsu threshold)."""
    if stack.ndim != 3:
        raise ValueError(f"expected (slices, rows, cols), got shape {stack.shape}")
    if modality != "hu":
        # display images are often JPEG: blocky noise in soft tissue dips below the threshold and
        # webs of such pixels would join the lungs; an in-plane median removes them, keeping edges
        stack = ndimage.median_filter(stack, size=(1, MEDIAN_PX, MEDIAN_PX))
    threshold = AIR_HU if modality == "hu" else otsu_threshold(stack[stack > stack.min()])
    air = stack < threshold
    inside = air & ~_outside_air(air)
    lung = np.zeros(stack.shape, dtype=bool)
    box = bounding_box(inside)  # later steps only look where air inside the body is: much faster
    if box is not None:
        lungs = _largest_components(inside[box])
        # Holes: background not reachable from the box border; beyond the box there is no lung, so
        # that border is as good as the slice border.
        lung[box] = ~_border_connected(~lungs)
    return lung


def include_lesions(lung: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The lung mask plus every connected lesion (``labels > 0``) that overlaps or touches it."""
    box = bounding_box(labels > 0)
    if box is None:
        return lung
    # one voxel more than the lesions' box, so that lung touching a lesion from outside it counts
    box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in box)
    lesion = labels[box] > 0
    components, count = ndimage.label(lesion)
    touching = np.unique(components[ndimage.binary_dilation(lung[box]) & lesion])
    merged = lung.copy()
    merged[box] |= _select(components, count, touching[touching > 0])
    return merged


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Threshold that maximises the between-class variance of the intensity histogram (Otsu 1979)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        return high
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = sum_low / weight_low
        mean_high = (sum_low[-1] - sum_low) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[1:][np.nanargmax(between)])


def _outside_air(air: np.ndarray) -> np.ndarray:
    """Border-connected air, in the slices where it lines most of the border (see step 2)."""
    connected = _border_connected(air)
    lined = _edges(connected).mean(axis=1) >= OUTSIDE_AIR_BORDER_FRACTION
    return connected & lined[:, None, None]


def _edges(stack: np.ndarray) -> np.ndarray:
    """(slices, border pixels): the four borders of every slice side by side."""
    return np.concatenate([stack[:, 0, :], stack[:, -1, :], stack[:, :, 0], stack[:, :, -1]], axis=1)


def _border_connected(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` connected, within their slice, to the slice's border."""
    components, count = ndimage.label(mask, structure=_IN_PLANE)
    touching = np.unique(_edges(components))
    return _select(components, count, touching[touching > 0])


def _largest_components(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(components.ravel())[1:]
    order = np.argsort(sizes)[::-1]
    keep = [order[0] + 1]
    if count > 1 and sizes[order[1]] >= SECOND_LUNG_MIN_FRACTION * sizes[order[0]]:
        keep.append(order[1] + 1)
    return _select(components, count, keep)


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel of ``mask``; None when there is none."""
    box = []
    for axis in range(mask.ndim):
        found = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if not found.size:
            return None
        box.append(slice(found[0], found[-1] + 1))
    return tuple(box)


def _select(components: np.ndarray, count: int, chosen) -> np.ndarray:
    """Boolean mask of the ``chosen`` component ids (a lookup table: much faster than np.isin)."""
    table = np.zeros(count + 1, dtype=bool)
    table[np.asarray(chosen, dtype=np.int64)] = True
    return table[components]
