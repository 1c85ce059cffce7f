"""Segment scans: read, two-stage prediction in slice batches, lung mask, quantities, result.

Inputs (:func:`find_inputs` expands a list of paths; formats are those of the one reader registry,
:mod:`ssinfnet.data.formats`, which ``data validate`` uses too):

- a NIfTI volume (``.nii`` / ``.nii.gz``), in Hounsfield units, or 8-bit display values when every
  voxel is an integer in 0..255 (other value ranges, e.g. raw scanner values, are refused);
- a DICOM series folder (the largest series when the folder mixes several, with a warning naming
  it; or the one given by ``series_uid``);
- one PNG/JPG/TIFF/BMP image (a 2D slice in the radiological view like the training slices; one stored
  upside down is flipped for prediction, with a warning, :mod:`ssinfnet.inference.orientation`; with no
  orientation known, no left/right split is reported);
- a folder of any of these (each file or series is its own scan), or a numpy array from a notebook.

Orientation: volumes are cut into axial slices in the radiological view (rows anterior -> posterior,
columns patient right -> left) using the affine
(:func:`ssinfnet.data.volumes.display_plane`: the slice axis is the array axis closest to
superior-inferior, so sagittal or coronal acquisitions are resliced to axial without interpolation),
through the readers' one orientation function, :func:`ssinfnet.data.volumes.display_view`.
Predictions are written back into the input's own voxel grid, so outputs have the input's exact
shape, affine and orientation. What a volume must pass (single slices, broken or strongly oblique
affines, values that are not CT are refused) is :func:`ssinfnet.data.volumes.check_scan`.

What the network sees (:func:`predict_scan`, the one prediction path of every verb): the lung mask is
computed first; slices are cropped to the lungs' bounding box (plus a margin, one box per scan, see
:func:`lung_box`) because the training slices are chest crops, and slices beyond the lung apices and
bases are skipped; slices are windowed by the training intensity policy
(:func:`ssinfnet.data.intensity.to_unit_range`) and predicted in the radiological view, the view every
reader gives the training data in (COVID-SemiSeg included); the labels are pasted into the full slice
and confined to the lung (:func:`~ssinfnet.inference.lungmask.confine_lesions`).

Memory: the stored scan and one uint8 label volume are held; slices are predicted ``batch_size`` at
a time and probability maps (when asked for) are kept as uint8 (``evaluate``: the infection map as
float32, for scoring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import logging

import numpy as np
from tqdm.auto import tqdm

from ssinfnet.data import formats, readers, volumes
from ssinfnet.data.intensity import Anchors, scan_anchors, to_unit_range
from ssinfnet.data.sample import Sample
from ssinfnet.errors import InputError
from ssinfnet.inference import orientation
from ssinfnet.inference.lungmask import AIR_HU, bounding_box, confine_lesions, lung_mask
from ssinfnet.inference.outputs import PROBABILITY_NAMES, SegmentationResult
from ssinfnet.inference.quantify import quantify

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8


@dataclass
class Scan:
    """One input read for segmentation, as a stack of display slices ``(slices, rows, cols[, rgb])``.

    ``stack`` holds the values as stored (HU for CT volumes). ``plane`` is the readers' display plane
    of the input volume (None for 2D images). ``voxel_size`` is (slice, row, col) mm for volumes and
    (row, col) mm for 2D images, or None when unknown.
    """

    name: str
    source: str
    stack: np.ndarray
    modality: str
    input_shape: tuple[int, ...]
    voxel_size: tuple[float, ...] | None = None
    affine: np.ndarray | None = None
    plane: dict[str, Any] | None = None
    nifti_header: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    turn: str = "none"  # 2D images: the turn into the radiological view (inference/orientation.py)

    @property
    def volumetric(self) -> bool:
        return self.affine is not None

    @property
    def element_size(self) -> float | None:
        """mm^3 per voxel (from the affine: right for sheared, gantry-tilted grids too), mm^2 per
        pixel for 2D images with a known spacing, else None."""
        if self.affine is not None:
            return float(abs(np.linalg.det(self.affine[:3, :3])))
        return None if self.voxel_size is None else float(np.prod(self.voxel_size))

    def unit_slice(self, k: int) -> np.ndarray:
        """Slice ``k`` in [0, 1] by the training intensity policy (lung window for HU)."""
        return to_unit_range(self.stack[k], self.modality)

    def to_display(self, array: np.ndarray) -> np.ndarray:
        """An array in the input's layout as a display stack (slices, rows, cols): a view, no copy."""
        return orientation.turned(array, self.turn)[None] if self.plane is None else volumes.display_view(array, self.plane)

    def to_input(self, stack: np.ndarray) -> np.ndarray:
        """A display stack back in the input's layout (exact inverse of :meth:`to_display`)."""
        if self.plane is None:
            return orientation.turned_back(stack[0], self.turn)
        out = np.zeros(self.input_shape, dtype=stack.dtype)
        volumes.display_view(out, self.plane)[...] = stack
        return out


def find_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Every scan in ``paths``: files as given, DICOM folders as one scan, other folders expanded."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InputError("not found", path)
        scans = [path] if path.is_file() or formats.DICOM.can_read(path) else formats.list_scans(path)
        if not scans:
            raise InputError(formats.NO_SCANS, path)
        found.extend(scans)
    for scan in found:  # names end up in outputs (quantities.json/.csv, summary lines): refuse before any work
        try:
            str(scan).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError("file name is not valid UTF-8; rename it (or its folder) to segment it", scan) from None
    return found


def read_scan(path: str | Path, series_uid: str | None = None,
              spacing: tuple[float, float] | None = None) -> Scan:
    """Read one scan file or DICOM folder; ``spacing`` (row, col mm) only for 2D images."""
    path = Path(path)
    if path.is_dir() and not formats.DICOM.can_read(path) and formats.list_scans(path):
        raise InputError("a folder of scans; segment them one at a time (find_inputs lists them) "
                         "or all at once with the ssinfnet segment command", path)
    image = formats.read(path, series_uid, pick_largest=series_uid is None)
    if isinstance(image, formats.Picture):
        return _image_scan(scan_name(path), path, image.array, image.modality, spacing)
    # the series UID identifies a DICOM input; patient identifiers are not copied into outputs
    info = {"series_uid": image.info["series_uid"]} if "series_uid" in image.info else {}
    return _volume_scan(scan_name(path), path, image.array, image.affine, image.header, info)


def scan_name(path: Path) -> str:
    """A scan's name: the folder name for DICOM, the file name without ``.nii.gz`` etc. otherwise."""
    return path.name if path.is_dir() else readers.file_stem(path)


def scan_from_array(array: np.ndarray, spacing: tuple[float, ...] | None = None,
                    affine: np.ndarray | None = None, name: str = "array") -> Scan:
    """A scan from a notebook array.

    - 2D ``(rows, cols)``: one slice, given to the network as it is; ``spacing`` (row, col) mm optional.
    - 3D with ``affine`` (RAS, as from nibabel): treated exactly like that NIfTI's data.
    - 3D without affine: ``(slices, rows, cols)`` of radiological-view axial slices (the order of
      ``np.stack(slices)`` and of SimpleITK arrays); ``spacing`` = (slice, row, col) mm is required.
    HU is assumed unless every value is an integer in 0..255 (8-bit display values).
    """
    array = np.asarray(array)
    if not np.isfinite(array).all():
        raise InputError(f"array contains {int((~np.isfinite(array)).sum())} NaN/inf values", name)
    if array.ndim == 2 and affine is None:
        return _image_scan(name, name, array, volumes.value_modality(array, name), spacing)
    if array.ndim == 2:  # an affine promises a volume: refused below as a single slice
        array = array[:, :, None]
    if array.ndim != 3:
        raise InputError(f"array has shape {array.shape}; expected 2D (rows, cols) or 3D", name)
    if affine is None:
        if spacing is None or len(spacing) != 3:
            raise InputError("a 3D array needs spacing=(slice, row, col) in mm, or an affine", name)
        affine = _radiological_stack_affine(spacing)
    return _volume_scan(name, name, array.astype(np.float32), np.asarray(affine, dtype=np.float64), None, {})


def scan_from_samples(samples: Sequence[Sample]) -> Scan:
    """The scan that a reader cut ``samples`` from (one 2D image, or every slice of one volume in the
    readers' display order), holding the values the reader gave, so that a labelled dataset is predicted
    by the same path as ``segment`` predicts its files (:func:`predict_scan`).

    2D images keep the reader's [0, 1] image (modality ``unit``: the intensity policy is not applied
    twice); volume slices keep their HU, affine and display plane.
    """
    first = samples[0].meta
    if first.modality != "hu" or samples[0].hu is None:
        if len(samples) != 1:
            raise ValueError(f"{first.id}: a 2D image is one sample, got {len(samples)}")
        return image_scan(samples[0].image, first.id, first.source, first.spacing)
    geometry = first.geometry
    plane = {key: geometry[key] for key in ("axis", "transpose", "flip_rows", "flip_cols", "orientation")}
    array = np.zeros(geometry["volume_shape"], dtype=np.float32)
    volumes.display_view(array, plane)[...] = np.stack([s.hu for s in samples])
    # the volume as segment reads it, through segment's own checks (a volume segment refuses is refused here)
    return _volume_scan(first.id.rsplit("#", 1)[0], first.source, array,
                        np.asarray(geometry["affine"], dtype=np.float64), None, {})


def image_scan(image: np.ndarray, name: str, source: str, spacing: tuple[float, float] | None = None) -> Scan:
    """A 2D image already in [0, 1] (a reader's ``Sample.image``, or an export of one) as segment reads a
    2D file: orientation check and finite values included; the intensity policy is not applied twice."""
    spacing = None if spacing is None else tuple(float(v) for v in spacing)
    return _image_scan(name, source, image, "unit", spacing)


def scans_of(samples: Sequence[Sample]) -> Iterator[tuple[int, int]]:
    """(start, stop) of each scan's samples in a reader's list: a 2D image alone, a volume's slices together
    (consecutive samples of one source with volume geometry)."""
    start = 0
    while start < len(samples):
        stop = start + 1
        if samples[start].hu is not None:
            while stop < len(samples) and samples[stop].hu is not None \
                    and samples[stop].meta.source == samples[start].meta.source:
                stop += 1
        yield start, stop
        start = stop


def segment(source: str | Path | np.ndarray | Scan, model: Any = None, spacing: tuple[float, ...] | None = None,
            affine: np.ndarray | None = None, series_uid: str | None = None, probabilities: bool = False,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False, device: str | None = None,
            bf16: bool | None = None) -> SegmentationResult:
    """Segment one scan (a path, an array, or a :class:`Scan`) and quantify its lesions.

    ``model``: None for the bundled default pipeline, a pipeline folder, or a loaded pipeline (any
    object with ``predict(images) -> list[Prediction]``; reuse one for many scans).
    ``device``/``bf16``: see :func:`resolve_pipeline`. ``spacing``/``affine`` describe arrays (see
    :func:`scan_from_array`); ``spacing`` (row, col) also gives mm^2 for a 2D image file.
    Returns a :class:`SegmentationResult` (``.save(out_dir)``).
    """
    if isinstance(source, Scan):
        scan = source
    elif isinstance(source, np.ndarray):
        scan = scan_from_array(source, spacing, affine)
    else:
        scan = read_scan(source, series_uid, spacing)
    pipeline = resolve_pipeline(model, device, bf16)
    predicted = predict_scan(pipeline, scan, batch_size=batch_size,
                             probabilities="uint8" if probabilities else None, progress=progress)
    labels, lung, probs = predicted.labels, predicted.lung, predicted.probabilities
    return SegmentationResult(
        name=scan.name, source=scan.source,
        labels=scan.to_input(labels), lung=scan.to_input(lung),
        quantities=quantify(labels, lung, scan.element_size, scan.volumetric, sides=scan.volumetric),
        affine=scan.affine, nifti_header=scan.nifti_header, display=scan,
        details={**scan.info, "voxel_size_mm": scan.voxel_size},
        save_image=scan.volumetric and scan.nifti_header is None,
        probabilities=None if probs is None else {name: scan.to_input(p) for name, p in probs.items()},
    )


@dataclass
class ScanPrediction:
    """What the product path gives for one scan, as display stacks ``(slices, rows, cols)``."""

    labels: np.ndarray
    """uint8: 0 background, 1 GGO, 2 consolidation (0/1 for a pipeline without a multi-class stage)."""
    lung: np.ndarray | None
    """bool lung mask, confined lesions included; None for a raw prediction."""
    probabilities: dict[str, np.ndarray] | None
    """The maps asked for (see :func:`predict_scan`), 0 outside the lung mask; None when none were."""
    scan: Scan
    """The scan predicted (``scan.to_input`` puts a display stack back into the input's geometry)."""

    def per_sample(self, stack: np.ndarray) -> np.ndarray:
        """A display stack as a reader's samples of the scan hold it (see :func:`scan_from_samples`): a
        volume's samples are its display slices; a 2D sample is the image as read (segment may have turned
        it into the radiological view to predict it)."""
        return stack if self.scan.volumetric else self.scan.to_input(stack)[None]


#: What :func:`predict_scan` keeps of the probabilities: "uint8" all of :data:`PROBABILITY_NAMES` as
#: 0..255 (segment's files), "float32" the infection map as it is (scoring: pixel ROC, Inf-Net protocol).
PROBABILITY_KINDS = ("uint8", "float32")


def predict_scan(pipeline: Any, scan: Scan, *, raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                 probabilities: str | None = None, progress: bool = False) -> ScanPrediction:
    """The one path from a scan to labels, used by every verb that predicts (``segment``, ``evaluate``,
    ``pseudolabel``) and by the benchmarks: the intensity policy, the lung mask, the crop to the lungs' box
    (:func:`lung_box`), the two stages with the pipeline's own test-time augmentation, the lesions confined
    to the lung (:func:`~ssinfnet.inference.lungmask.confine_lesions`), as display stacks of the scan
    (``scan.to_input`` puts them back into the input's geometry).

    ``raw=True``: the networks alone on every whole slice, each with its own contrast anchors, with no
    lung mask, crop or confinement: the Inf-Net benchmark protocol, which scores the network, not the
    product. ``probabilities``: one of :data:`PROBABILITY_KINDS`, or None for labels only.
    """
    return next(predict_scans(pipeline, [scan], raw=raw, batch_size=batch_size, probabilities=probabilities,
                              progress=progress))


def predict_scans(pipeline: Any, scans: Iterable[Scan], *, raw: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                  probabilities: str | None = None, progress: bool = False) -> Iterator[ScanPrediction]:
    """:func:`predict_scan` of each of ``scans`` (lazily, in order), with the slices of consecutive scans
    predicted together, ``batch_size`` at a time: a dataset of 2D images runs in full batches, not one
    image per network call. Memory grows with the batch and the scans it spans, not with the dataset."""
    if probabilities not in (None, *PROBABILITY_KINDS):
        raise ValueError(f"probabilities must be one of {PROBABILITY_KINDS} or None, got {probabilities!r}")
    pending: list[_ScanWork] = []  # scans whose slices are (partly) still to be predicted, in order
    batch: list[tuple[_ScanWork, int]] = []
    with tqdm(desc="segment", unit="slice", disable=not progress, leave=False) as bar:
        for scan in scans:
            work = _ScanWork.start(scan, raw, probabilities)
            pending.append(work)
            bar.total = (bar.total or 0) + len(work.todo)
            for k in work.todo:
                batch.append((work, k))
                if len(batch) == batch_size:
                    _predict_batch(pipeline, batch)
                    bar.update(len(batch))
                    batch = []
            while pending and pending[0].done:  # scans finish in order; a scan with no lung finishes at once
                yield pending.pop(0).finish()
        if batch:
            _predict_batch(pipeline, batch)
            bar.update(len(batch))
        for work in pending:
            yield work.finish()


@dataclass
class _ScanWork:
    """One scan on its way through :func:`predict_scans`: its lung step, what is left to predict, its stacks."""

    scan: Scan
    lung: np.ndarray | None
    lung_input: np.ndarray | None
    """What the lung mask was computed from (HU, or the [0, 1] display stack), for the confinement."""
    box: tuple[slice, slice, slice] | None
    anchors: Anchors | None
    labels: np.ndarray
    probabilities: dict[str, np.ndarray] | None
    kind: str | None
    todo: range
    predicted: int = 0

    @classmethod
    def start(cls, scan: Scan, raw: bool, kind: str | None) -> "_ScanWork":
        shape = (len(scan.stack), *scan.stack.shape[1:3])
        stack = None
        if raw:
            lung, anchors = None, None
            box = tuple(slice(0, size) for size in shape)
        else:
            stack = scan.stack if scan.modality == "hu" else np.stack([scan.unit_slice(k) for k in range(shape[0])])
            lung = lung_mask(stack, _lung_modality(scan))
            _warn_if_unusual(scan, lung)
            box, anchors = lung_box(lung), _anchors(scan, lung)
        names = {None: (), "uint8": PROBABILITY_NAMES, "float32": PROBABILITY_NAMES[:1]}[kind]
        probabilities = {name: np.zeros(shape, dtype=kind) for name in names} if kind else None
        todo = range(0) if box is None else range(shape[0])[box[0]]  # no lung: nothing to predict
        return cls(scan, lung, stack, box, anchors, np.zeros(shape, dtype=np.uint8), probabilities, kind, todo)

    @property
    def done(self) -> bool:
        return self.predicted == len(self.todo)

    def crop(self, k: int) -> np.ndarray:
        return np.ascontiguousarray(self.scan.unit_slice(k)[self.box[1:]])

    def paste(self, k: int, prediction: Any) -> None:
        in_plane = self.box[1:]
        self.labels[k][in_plane] = prediction.labels
        if self.probabilities is not None:
            maps = (prediction.infection_prob, *(() if prediction.class_probs is None else prediction.class_probs[1:]))
            for name, prob in zip(self.probabilities, maps):
                self.probabilities[name][k][in_plane] = _to_uint8(prob) if self.kind == "uint8" else prob
        self.predicted += 1

    def finish(self) -> ScanPrediction:
        labels, lung, probs = self.labels, self.lung, self.probabilities
        if lung is not None:
            labels, lung = confine_lesions(lung, labels, self.lung_input, _lung_modality(self.scan),
                                           self.scan.voxel_size)
            for prob in (probs or {}).values():  # the maps say what the labels say: nothing outside the lung mask
                prob[~lung] = 0
        return ScanPrediction(labels, lung, probs, self.scan)


def _lung_modality(scan: Scan) -> str:
    return "hu" if scan.modality == "hu" else "display"


def _predict_batch(pipeline: Any, batch: list[tuple[_ScanWork, int]]) -> None:
    """Predict one batch of (scan, slice) crops, each with its scan's contrast anchors, and paste them back."""
    images = [work.crop(k) for work, k in batch]
    options = {"anchors": [work.anchors for work, _ in batch]} if getattr(pipeline, "uses_anchors", False) else {}
    for (work, k), prediction in zip(batch, pipeline.predict(images, batch_size=len(images), **options)):
        work.paste(k, prediction)


def lung_box(lung: np.ndarray) -> tuple[slice, slice, slice] | None:
    """(slices, rows, cols) bounding box of the lungs plus a margin on each side
    (:func:`ssinfnet.data.volumes.crop_margin`); None when the lung mask is empty (nothing is predicted: no lung, no lung lesion).

    In-plane, the training slices are chest crops, so cropping a full field of view the same way
    keeps lesions at the scale the network learnt (2D full-slice exports included); one box for the
    whole scan keeps that scale equal across slices. Along the scan, slices beyond the lung apices
    and bases cannot hold lung lesions and are not predicted (every slice between them is, even
    where dense disease hides the lung from the mask).
    """
    box = bounding_box(lung)
    if box is None:
        return None
    margins = [volumes.crop_margin(size) for size in lung.shape]
    return tuple(slice(max(0, b.start - m), min(size, b.stop + m)) for b, m, size in zip(box, margins, lung.shape))


def resolve_pipeline(model: Any = None, device: str | None = None, bf16: bool | None = None) -> Any:
    """The two-stage pipeline for ``model`` (None = bundled default, a pipeline folder, or a loaded one).

    ``device``: None picks the GPU when present. ``bf16``: None uses bf16 autocast with channels_last
    where the hardware computes bf16 natively (AMX / AVX-512-BF16 CPUs, bf16 GPUs): 2.7x faster than
    fp32 on the project's CPU (``benchmarks/bench_segment.py --precision``), probabilities within
    about 1e-2.
    """
    if not hasattr(model, "predict"):
        # torch is imported only when a model is loaded
        from ssinfnet.inference import predictor  # noqa: PLC0415

        device, bf16 = resolve_precision(device, bf16)
        if model is None:
            model = predictor.default_pipeline(device=device, bf16=bf16)
        else:
            model = predictor.load_pipeline(Path(model), device=device, bf16=bf16)
    if getattr(model, "multi", True) is None:
        raise InputError("the model has no multi-class stage, so it cannot tell GGO from consolidation; "
                         "give a pipeline folder with multi.safetensors")
    return model


def resolve_precision(device: str | None = None, bf16: bool | None = None) -> tuple[Any, bool]:
    """(torch device, bf16) as :func:`resolve_pipeline` chooses them: ``device`` None = the GPU when present;
    ``bf16`` None = bf16 where the hardware computes it natively. Every verb that predicts loads its
    networks with these, so that they all give segment's pixels."""
    device = _torch_device(device or "auto")
    return device, _native_bf16(device) if bf16 is None else bf16


def _torch_device(name: str) -> Any:
    """:func:`ssinfnet.models.speed.resolve_device`, its refusal as one line naming the device."""
    from ssinfnet.models.speed import resolve_device  # noqa: PLC0415

    try:
        return resolve_device(name)
    except ValueError as err:
        raise InputError(f"unknown device {name!r}: {err}") from None


def _native_bf16(device: Any) -> bool:
    import torch  # noqa: PLC0415

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16()


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


#: The slices with the most lung that give a volume its contrast anchors.
ANCHOR_SLICES = 9
#: A CT in HU: soft tissue (the median of what is not air inside the body) lies in this range.
HU_TISSUE_RANGE = (-250.0, 250.0)


def _anchors(scan: Scan, lung: np.ndarray) -> Anchors | None:
    """The scan's contrast anchors, from its :data:`ANCHOR_SLICES` slices with the most lung, *whole*:
    one contrast for a volume, as one window would be; and, for a 2D image too, taken before the lung
    crop, where the air around the body still lines the border and is recognised as outside air (in
    the crop, remnants of it or of the black padding would pass for the darkest lung)."""
    area = lung.sum(axis=(1, 2))
    chosen = [k for k in np.argsort(area)[::-1][:ANCHOR_SLICES] if area[k] > 0]
    return scan_anchors([scan.unit_slice(k) for k in chosen]) if chosen else None


def _warn_if_unusual(scan: Scan, lung: np.ndarray) -> None:
    """One warning line when the scan has no lung, or when its HU values do not look like CT."""
    if scan.modality == "hu":
        body = np.asarray(scan.stack[:, ::4, ::4], dtype=np.float32)
        tissue = body[(body > AIR_HU) & (body < 2000)]
        median = float(np.median(tissue)) if tissue.size else float("nan")
        low, high = HU_TISSUE_RANGE
        if not low <= median <= high:
            log.warning("%s: soft tissue at a median of %.0f HU (CT: about 0-60 HU); are these values "
                        "Hounsfield units? Results may be wrong", scan.source, median)
    if not lung.any():
        # a display image in a soft-tissue window shows the lungs as black as the air around the body:
        # there is no lung contrast to find them by (nor GGO to see), so say how to export instead
        window = "" if scan.modality == "hu" else (", or a window that shows the lungs as black as air: "
                                                   "export with a lung window")
        log.warning("%s: no lung found (not a chest scan, or the lungs are cut by the field of view%s); "
                    "no lesion is reported", scan.source, window)


def _volume_scan(name: str, source: str | Path, array: np.ndarray, affine: np.ndarray, header: Any,
                 info: dict[str, Any]) -> Scan:
    voxel_size, modality = volumes.check_scan(array, affine, source)
    plane = volumes.display_plane(affine, array.shape)
    return Scan(name=name, source=str(Path(source).resolve()) if isinstance(source, Path) else str(source),
                stack=volumes.display_view(array, plane), modality=modality, input_shape=tuple(array.shape),
                voxel_size=(voxel_size[plane["axis"]], *volumes.in_plane_spacing(voxel_size, plane)),
                affine=affine, plane=plane, nifti_header=header, info=info)


def _image_scan(name: str, source: str | Path, array: np.ndarray, modality: str,
                spacing: tuple[float, ...] | None) -> Scan:
    if spacing is not None:
        if len(spacing) != 2:
            raise InputError(f"a 2D image takes spacing=(row, col) in mm, got {tuple(spacing)}", source)
        volumes.check_spacing(spacing, source)
    if not np.isfinite(array).all():
        raise InputError(f"values must be finite; the image holds {int((~np.isfinite(array)).sum())} NaN/inf pixels",
                         source)
    turn = orientation.image_turn(array, modality, source)
    return Scan(name=name, source=str(Path(source).resolve()) if isinstance(source, Path) else str(source),
                stack=orientation.turned(array, turn)[None], modality=modality, input_shape=tuple(array.shape[:2]),
                voxel_size=None if spacing is None else tuple(float(s) for s in spacing), turn=turn)


def _radiological_stack_affine(spacing: tuple[float, ...]) -> np.ndarray:
    """RAS affine of a (slices, rows, cols) stack: slices go superior, rows posterior, columns to the
    patient's left (the radiological view)."""
    slice_mm, row_mm, col_mm = (float(s) for s in spacing)
    affine = np.zeros((4, 4))
    affine[2, 0] = slice_mm
    affine[1, 1] = -row_mm
    affine[0, 2] = -col_mm
    affine[3, 3] = 1.0
    return affine


def _to_uint8(prob: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(prob, dtype=np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
