"""Lung mask by documented CT anatomy (no model): the denominator of lesion percentages and the region
lesion labels are confined to.

Layout: every function takes a stack of axial slices ``(slices, rows, cols)`` (a single 2D image is a
stack of one).

Method (HU input; display images are first put on a pseudo-HU scale, below):
1. Air-like voxels: HU < -320. Aerated lung parenchyma is about -900..-500 HU and soft tissue above
   -100 HU; -320 HU sits between them and is a threshold in common use for CT lung masks.
2. Per slice, air connected to the image border is air outside the body (or the table gap) and is
   removed, in slices where such air lines at least half of the border (a field of view around the
   whole body). Where it lines less, the image is a crop through the chest (as the COVID-SemiSeg
   slices are) and the dark regions at its edge are lungs cut by the crop: they stay.
3. Per slice, each remaining air region whose median is below :data:`GAS_MEDIAN_HU` is pure gas, not
   parenchyma: the trachea and main bronchi, gas in the stomach and bowel. Parenchyma holds vessels
   and partial volume and has a median of -950..-600 HU even when healthy.
4. 3D connected components of what is left (26-connectivity: the lungs are followed through the stack).
   A component is lung when, in some slice, its cross-section reaches :data:`LUNG_MIN_BODY_FRACTION`
   of the body's cross-section there (in a chest each lung's central cross-section is 8-25% of the
   body's; in the real upper-abdomen scan the largest gas pocket is 1.6%): the small air pockets of
   mottled bowel content, whose median looks like parenchyma, never reach it. Relative to the body,
   the rule holds for any pixel size, known or not. Lung bases and apices count through their
   connection to the large cross-sections of the same lung; a scan of the upper abdomen that holds
   only the lung bases gets an empty or near-empty mask.
5. Per slice, holes are filled: vessels, airway walls and lesions enclosed by aerated lung join the mask.
6. :func:`confine_lesions` then decides which predicted lesions are lung; they join the mask, so lesion
   labels always lie inside the reported lung mask. Dense consolidation is above -320 HU and outside
   the aerated lung, so it can only be taken in by where it lies; what decides, and why:

   a. *In its own slice, a lesion must reach the lung.* A lesion voxel is kept only when its in-plane
      lesion region (4-connected, within its slice) overlaps or touches the lung mask of that slice.
      Consolidation at the lung border borders aerated lung in the slices it lies in (on the 50
      training slices 98% of the true lesion pixels are kept so). Below the lung base the diaphragm
      is a dome: the first slices beyond the lung's last cross-section hold only the abdomen (liver,
      spleen, stomach, bowel), which the old 3D rule took in through a lesion touching the base from
      the slice above. Predictions in the abdomen, mediastinum or outside the body that do not reach
      the lung are dropped as before.
   b. *Gas outside the lung marks the abdomen* (volumes only; a single slice cannot tell an airway from
      gas). In the slices through the dome the lung is a crescent whose hollow holds the abdomen
      (stomach, colon, spleen, liver) across the diaphragm, a few mm of soft tissue that looks like
      the lesion it separates, so rule a cannot exclude them there. Gas outside the lung is air
      inside the body (step 2) whose 3D component (face neighbours) holds no lung voxel and is at
      least :data:`GAS_FRACTION` pure gas (below -950 HU, step 3): the stomach, the bowel's gas, the
      oesophagus. The trachea, the bronchi and air bronchograms inside consolidation are joined to
      the lung through the airways; pockets of partly aerated lung cut off inside a lesion (on the
      real chest scan: 2-48 voxels, median -330..-390 HU) are not pure gas. A lesion voxel within
      :data:`GAS_REACH_MM` of such gas (mottled bowel content), or nearer to it than to the lung
      (stomach fluid under its gas), is not lung: consolidation has no gas of its own but its airways.

Display images (8-bit, 16-bit, float: no HU): each slice is put on a pseudo-HU scale through its
contrast anchors (:func:`ssinfnet.data.intensity.estimate_anchors`): the darkest aerated lung ->
:data:`DARK_ANCHOR_HU`, soft tissue -> :data:`BRIGHT_ANCHOR_HU`, linearly. Slices without anchors (no
dark or no bright part) have no lung. Exports that clip air and lung to one grey lose step 3 there.

Limits (say them when quoting percentages):
- Lungs reaching the border of a full field of view (the body cut by it) are removed with the
  outside air in step 2 and the mask is partial.
- Severe emphysema or bullae (median below -950 HU in a slice) are taken for gas in step 3.
- A slice whose lung is consolidated nearly throughout can lose its mask (and its lesions) in
  step 4; so does, by rule 6a, a slice at the base or apex where a lung's whole cross-section is
  consolidated (no aerated lung left beside the lesion). Pleural effusion and collapsed lung are
  outside the mask; a false lesion in the chest wall that touches the lung is kept with it.
- In the slices through the dome, rule 6b only trims the abdomen in the crescent's hollow around its
  pure-gas pockets: solid organs, the bowel wall and stool whose bubbles are partial volume (not
  pure gas) stay when a prediction covers them and reaches the lung in that slice. Measured on the
  real upper-abdomen scan placed under a generated lung dome, with every soft-tissue voxel inside the
  lungs' outlines predicted as lesion (tests/test_lungmask.py): the slices below the lung 1538 mL ->
  0 mL, the real gut in the crescent's hollow 20.4 -> 19.1 mL (only a 5 mm shell around the colon's
  gas pocket dropped).
- Rule 6b drops consolidation within :data:`GAS_REACH_MM` of stomach or bowel gas across the
  diaphragm, or farther from the aerated lung than from that gas; an air bronchogram cut off from
  the airways (in 3D, through faces) counts as such gas; a partial-volume voxel that joins bowel gas
  to the lung across a thin diaphragm makes that gas count as lung air.
- Pneumothorax and other air in the chest outside the lung that has a parenchyma-like median count as lung.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ssinfnet.data.intensity import estimate_anchors

#: One-line summary recorded with every result's quantities.
METHOD = ("HU < -320 inside the body, pure-gas regions (median < -950 HU: airways, stomach, bowel) removed, "
          "3D components with a cross-section of at least 4% of the body's, holes filled per slice; lesions kept "
          "where they reach the lung within their slice and lie neither within 5 mm of gas outside the lung "
          "(pure-gas pockets: bowel, stomach) nor nearer to it than to the lung, and added to it; limits in "
          "ssinfnet.inference.lungmask")
#: HU below which a voxel counts as air or aerated lung.
AIR_HU = -320.0
#: A slice's air region whose median HU is below this is gas (airways, stomach, bowel), not parenchyma.
GAS_MEDIAN_HU = -950.0
#: A lung's largest cross-section reaches at least this fraction of the body's cross-section.
LUNG_MIN_BODY_FRACTION = 0.04
#: Border-connected air is outside air in slices where it covers at least this fraction of the border.
OUTSIDE_AIR_BORDER_FRACTION = 0.5
#: Pseudo-HU of a display image's contrast anchors (darkest aerated lung, soft tissue).
DARK_ANCHOR_HU, BRIGHT_ANCHOR_HU = -900.0, 20.0
#: Lowest HU kept (padding outside the reconstruction field is often -2048 or -3024).
HU_FLOOR = -1024.0
#: A lesion voxel this close (mm) to gas outside the lung is abdomen (step 6b): gas bubbles in stool lie a
#: few mm apart, and the diaphragm between lung and bowel is a few mm thick.
GAS_REACH_MM = 5.0
#: A component of air is gas when at least this fraction of it is pure gas (below :data:`GAS_MEDIAN_HU`):
#: a gas pocket's rim is partial volume (the real colon's gas: median -917 HU in 2 mm slices, not below
#: -950), while aerated lung has only a few per cent of its voxels there.
GAS_FRACTION = 0.25
#: Lung and gas farther (mm) than this from a lesion voxel are not looked for (bounds the distance maps);
#: a lesion voxel with neither this close keeps its label.
GAS_SEARCH_MM = 20.0

# In-plane 4-connectivity inside a (slices, rows, cols) stack: no links between slices.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def lung_mask(stack: np.ndarray, modality: str = "hu") -> np.ndarray:
    """Boolean lung mask of a ``(slices, rows, cols)`` stack in HU (``modality="hu"``) or display
    values of any scale (any other modality)."""
    if stack.ndim != 3:
        raise ValueError(f"expected (slices, rows, cols), got shape {stack.shape}")
    hu = _hu(stack, modality)
    air = hu < AIR_HU
    outside = _outside_air(air)
    inside = air & ~outside
    lung = np.zeros(stack.shape, dtype=bool)
    box = bounding_box(inside)  # later steps only look where air inside the body is: much faster
    if box is None:
        return lung
    parenchyma = _without_gas(inside[box], hu[box])
    lungs = _large_components(parenchyma, (~outside).sum(axis=(1, 2))[box[0]])
    # Holes: background not reachable from the box border; beyond the box there is no lung.
    lung[box] = ~_border_connected(~lungs) if lungs.any() else lungs
    return lung


def pseudo_hu(stack: np.ndarray) -> np.ndarray:
    """Display slices on a pseudo-HU scale through each slice's contrast anchors (module doc); slices
    without anchors are set to soft tissue (no air, hence no lung)."""
    out = np.full(stack.shape, BRIGHT_ANCHOR_HU, dtype=np.float32)
    for k, image in enumerate(stack):
        anchors = estimate_anchors(image)
        if anchors is not None:
            scale = (BRIGHT_ANCHOR_HU - DARK_ANCHOR_HU) / (anchors.bright - anchors.dark)
            out[k] = np.maximum((np.asarray(image, dtype=np.float32) - anchors.dark) * scale + DARK_ANCHOR_HU,
                                HU_FLOOR)
    return out


def confine_lesions(lung: np.ndarray, labels: np.ndarray, stack: np.ndarray | None = None,
                    modality: str = "hu", spacing: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels of the predicted lesions that are lung, lung mask with those lesions added); every other
    predicted lesion is dropped (step 6 of the module doc says what decides, and why).

    ``stack`` (the scan as given to :func:`lung_mask`, with its ``modality``) and ``spacing`` ((slice,
    row, col) mm; None: 1 mm) let a volume's gas outside the lung exclude the abdomen (rule 6b); without
    them, or for a single slice, only rule 6a applies.
    """
    lesion = labels > 0
    if not lesion.any():
        return labels, lung
    if stack is not None and lesion.shape[0] > 1:
        spacing = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
        lesion &= ~_near_gas(lung, lesion, _hu(stack, modality), spacing)
    kept = _reaching_lung_in_plane(lung, lesion)
    return np.where(kept, labels, 0).astype(labels.dtype, copy=False), lung | kept


def _reaching_lung_in_plane(lung: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """The in-plane regions of ``lesion`` that overlap or touch ``lung`` in their own slice (rule 6a)."""
    kept = np.zeros(lesion.shape, dtype=bool)
    box = bounding_box(lesion)
    if box is None:
        return kept
    # one pixel more than the lesions' box, so that lung touching a lesion from outside it counts
    box = _grow(box, (0, 1, 1), lesion.shape)
    components, count = ndimage.label(lesion[box], structure=_IN_PLANE)
    touching = np.unique(components[ndimage.binary_dilation(lung[box], structure=_IN_PLANE) & lesion[box]])
    kept[box] = _select(components, count, touching[touching > 0])
    return kept


def _near_gas(lung: np.ndarray, lesion: np.ndarray, hu: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Voxels within :data:`GAS_REACH_MM` of gas outside the lung, or nearer to it than to ``lung``,
    in the region where they can matter: around ``lesion`` and that gas (rule 6b)."""
    near = np.zeros(lesion.shape, dtype=bool)
    air = hu < AIR_HU
    inside = air & ~_outside_air(air)
    # faces only: a partial-volume voxel across a thin diaphragm joins bowel gas to the lung less easily
    components, count = ndimage.label(inside)
    if count == 0:
        return near
    lung_air = np.unique(components[lung & inside])
    pure = np.bincount(components[hu < GAS_MEDIAN_HU], minlength=count + 1)
    gassy = np.flatnonzero(pure >= GAS_FRACTION * np.bincount(components.ravel(), minlength=count + 1))
    gas = _select(components, count, np.setdiff1d(gassy[gassy > 0], lung_air)) & ~lung
    gas_box, lesion_box = bounding_box(gas), bounding_box(lesion)
    if gas_box is None:
        return near
    margin = tuple(int(np.ceil(GAS_SEARCH_MM / s)) for s in spacing)
    # lesion voxels with gas within the search distance, and around them all gas and lung that close
    box = _intersect(_grow(lesion_box, margin, lesion.shape), _grow(gas_box, margin, lesion.shape))
    if box is None:
        return near
    outer = _grow(box, margin, lesion.shape)
    to_gas = ndimage.distance_transform_edt(~gas[outer], sampling=spacing)
    to_lung = ndimage.distance_transform_edt(~lung[outer], sampling=spacing) if lung[outer].any() else np.inf
    found = (to_gas <= GAS_REACH_MM) | ((to_gas < to_lung) & (to_gas <= GAS_SEARCH_MM))
    inner = tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer))
    near[box] = found[inner]
    return near


def _hu(stack: np.ndarray, modality: str) -> np.ndarray:
    """The stack in HU (floored at :data:`HU_FLOOR`), or display values on the pseudo-HU scale."""
    return np.maximum(np.asarray(stack, dtype=np.float32), HU_FLOOR) if modality == "hu" else pseudo_hu(stack)


def _grow(box: tuple[slice, ...], margin: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``margin`` voxels per axis, within ``shape``."""
    return tuple(slice(max(0, b.start - m), min(n, b.stop + m)) for b, m, n in zip(box, margin, shape))


def _intersect(a: tuple[slice, ...], b: tuple[slice, ...]) -> tuple[slice, ...] | None:
    """The overlap of two boxes; None when they do not overlap."""
    box = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))
    return box if all(s.start < s.stop for s in box) else None


def _without_gas(inside: np.ndarray, hu: np.ndarray) -> np.ndarray:
    """``inside`` without the per-slice regions whose median HU is that of pure gas (step 3)."""
    components, count = ndimage.label(inside, structure=_IN_PLANE)
    if count == 0:
        return inside
    medians = ndimage.median(hu, components, index=np.arange(1, count + 1))
    return _select(components, count, np.flatnonzero(np.asarray(medians) >= GAS_MEDIAN_HU) + 1)


def _large_components(mask: np.ndarray, body_area: np.ndarray) -> np.ndarray:
    """The 3D components of ``mask`` whose cross-section somewhere is that of a lung (step 4);
    ``body_area``: pixels inside the body per slice of ``mask``."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    keep = []
    for index, found in enumerate(ndimage.find_objects(components), start=1):
        areas = (components[found] == index).sum(axis=(1, 2))
        if np.any(areas >= LUNG_MIN_BODY_FRACTION * np.maximum(body_area[found[0]], 1)):
            keep.append(index)
    return _select(components, count, keep)


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


