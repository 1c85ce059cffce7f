"""The predictor bridge: trained networks -> per-image probabilities and labels at the image's own size.

``Pipeline(single, multi)`` runs the two-stage model of the paper: the single-stage network gives the
infection probability; the multi-class network sees cat(image, that probability) and gives
background / GGO / consolidation probabilities. Every image is resized to the models' square ``size``
(bilinear, as in training), predicted in batches, and the probabilities are resized back (bilinear).
Each image gets the input contrast the networks were trained on (sidecar ``input_contrast``, see
:mod:`ssinfnet.data.intensity`): the canonical map before resizing, with the image's own anchors or
with the ones the caller passes (one pair for a whole volume), the equalisation after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import ssinfnet
from ssinfnet.data.intensity import UNIT_CONTRAST, Anchors, after_resize, before_resize
from ssinfnet.errors import InputError
from ssinfnet.fileio import atomic_dir, write_json
from ssinfnet.models.ensemble import Ensemble, members_of
from ssinfnet.models.speed import autocast_context, channels_last_input, resolve_device, to_channels_last
from ssinfnet.models.weights import input_contrast, load_model, save_model

PIPELINE_FORMAT = "ssinfnet-pipeline/1"
DEFAULT_WEIGHTS = Path(ssinfnet.__file__).parent / "weights" / "default"
_RANGE_TOLERANCE = 1e-3  # float rounding of [0, 1] images


@dataclass
class Prediction:
    infection_prob: np.ndarray
    """float32 (H, W): probability of infection (GGO or consolidation) from the single stage."""
    class_probs: np.ndarray | None
    """float32 (3, H, W): background / GGO / consolidation probabilities; None without a multi model."""
    labels: np.ndarray
    """int64 (H, W): argmax of ``class_probs`` (0/1/2), or (infection_prob >= threshold) (0/1)."""


class Pipeline:
    """Single-stage (+ optional multi-class) networks with the input size and threshold they were tuned at.

    ``bf16=True`` runs under bf16 autocast with channels_last tensors (the fast path on CPUs with
    AVX-512-BF16/AMX and on GPUs); probabilities then differ from fp32 by about 1e-2.
    The pipeline takes the models over: they are moved to its device and put in eval mode in place
    (call ``model.train()`` again when predicting from inside a training loop).
    """

    def __init__(
        self,
        single: nn.Module,
        multi: nn.Module | None = None,
        size: int = 352,
        threshold: float = 0.5,
        meta: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        bf16: bool = False,
    ):
        _check_stage(single, "single", in_channels=1, num_classes=1)
        if multi is not None:
            _check_stage(multi, "multi", in_channels=2, num_classes=3)
        self.device = resolve_device(device)
        self.bf16 = bf16
        self.single = self._prepare(single)
        self.multi = self._prepare(multi) if multi is not None else None
        self.size = int(size)
        self.threshold = float(threshold)
        self.meta = dict(meta or {})
        self.contrast = input_contrast(single)
        if multi is not None and input_contrast(multi) != self.contrast:
            raise ValueError(f"the stages were trained on different input contrasts: single {self.contrast!r}, "
                             f"multi {input_contrast(multi)!r}")

    @property
    def uses_anchors(self) -> bool:
        """Whether the input contrast uses a scan's contrast anchors (ssinfnet.data.intensity)."""
        return self.contrast != UNIT_CONTRAST

    def _prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device).eval()
        return to_channels_last(model) if self.bf16 else model

    def predict(self, images: Iterable[np.ndarray], batch_size: int = 8,
                anchors: Anchors | Sequence[Anchors | None] | None = None,
                sources: Sequence[str] | None = None) -> Iterator[Prediction]:
        """Predictions in the order of ``images`` (float32 (H, W) in [0, 1], any sizes); lazy, batch by batch.
        ``anchors``: the contrast anchors of all the images (a volume's), or one per image (None: the
        image's own), instead of each image's own.
        ``sources``: the file of each image, named when one is refused (else its index)."""
        per_image = anchors if isinstance(anchors, Sequence) else None
        batch: list[np.ndarray] = []
        chosen: list[Anchors | None] = []
        for index, image in enumerate(images):
            batch.append(_check_image(image, index, None if sources is None else sources[index]))
            chosen.append(anchors if per_image is None else per_image[index])
            if len(batch) == batch_size:
                yield from self._predict_batch(batch, chosen)
                batch, chosen = [], []
        if batch:
            yield from self._predict_batch(batch, chosen)

    @torch.inference_mode()
    def _predict_batch(self, images: list[np.ndarray], anchors: list[Anchors | None]) -> list[Prediction]:
        square = (self.size, self.size)
        resized = [_resize(torch.from_numpy(before_resize(im, self.contrast, a))[None, None], square)[0, 0]
                   for im, a in zip(images, anchors)]
        x = torch.from_numpy(np.stack([after_resize(im.numpy(), self.contrast) for im in resized]))[:, None]
        x = x.to(self.device)
        infection = torch.sigmoid(self._run(self.single, x))
        class_probs = None
        if self.multi is not None:
            class_probs = torch.softmax(self._run(self.multi, torch.cat([x, infection], dim=1)), dim=1)
        predictions = []
        for i, image in enumerate(images):
            shape = image.shape
            prob = _resize(infection[i : i + 1], shape)[0, 0].clamp(0, 1).cpu().numpy()
            if class_probs is None:
                classes, labels = None, (prob >= self.threshold).astype(np.int64)
            else:
                back = _resize(class_probs[i : i + 1], shape)[0]
                classes = (back / back.sum(0, keepdim=True)).cpu().numpy()  # bilinear keeps sums; fix rounding
                labels = classes.argmax(0).astype(np.int64)
            predictions.append(Prediction(prob, classes, labels))
        return predictions

    def _run(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.bf16:
            x = channels_last_input(x)
        with autocast_context(self.device, self.bf16):
            return model(x)[model.main_output].float()


def predict_single(model: nn.Module, images: Iterable[np.ndarray], size: int = 352,
                   batch_size: int = 8, bf16: bool = False) -> list[np.ndarray]:
    """Infection probability (H, W) per image from a single-stage network alone."""
    return [p.infection_prob for p in Pipeline(model, size=size, bf16=bf16).predict(images, batch_size)]


def save_pipeline(folder: str | Path, pipeline: Pipeline, overwrite: bool = False) -> None:
    """Write the networks (``single.safetensors``, optional ``multi.safetensors``; an :class:`Ensemble`
    as ``single-0.safetensors``, ``single-1...``), their sidecars and ``pipeline.json`` in one atomic rename."""
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        files = {}
        for stage in ("single", "multi"):
            model = getattr(pipeline, stage)
            if model is None:
                continue
            members = members_of(model)
            names = [f"{stage}.safetensors"] if not isinstance(model, Ensemble) else \
                [f"{stage}-{i}.safetensors" for i in range(len(members))]
            for name, member in zip(names, members):
                save_model(member, tmp / name)
            files[stage] = {"files": names, "flip": bool(getattr(model, "flip", False))}
        write_json(tmp / "pipeline.json", {
            "format": PIPELINE_FORMAT,
            "size": pipeline.size,
            "threshold": pipeline.threshold,
            "multi": pipeline.multi is not None,
            "networks": files,
            "meta": pipeline.meta,
        })


def load_pipeline(folder: str | Path, device: str | torch.device | None = None, bf16: bool = False) -> Pipeline:
    folder = Path(folder)
    info_path = folder / "pipeline.json"
    if not info_path.is_file():
        raise InputError("not a pipeline folder (pipeline.json missing)", folder)
    try:
        info = json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"pipeline.json is not valid JSON: {err}", info_path) from err
    if not isinstance(info, dict) or info.get("format") != PIPELINE_FORMAT:
        raise InputError(f"not an ssinfnet pipeline (expected format {PIPELINE_FORMAT!r})", info_path)
    try:
        single = _load_stage(folder, info, "single")
        multi = _load_stage(folder, info, "multi") if info.get("multi") else None
        return Pipeline(single, multi, size=info["size"], threshold=info["threshold"], meta=info.get("meta"),
                        device=device, bf16=bf16)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"unusable pipeline: {err}", folder) from err


def _load_stage(folder: Path, info: dict[str, Any], stage: str) -> nn.Module:
    """One stage's network; several files (or flip augmentation) make an :class:`Ensemble`. Folders
    written before ensembles existed have no ``networks`` entry: one plain ``STAGE.safetensors``."""
    entry = (info.get("networks") or {}).get(stage) or {"files": [f"{stage}.safetensors"], "flip": False}
    members = [load_model(folder / name) for name in entry["files"]]
    if entry["files"] == [f"{stage}.safetensors"] and not entry["flip"]:
        return members[0]
    return Ensemble(members, flip=entry["flip"])


def default_pipeline(device: str | torch.device | None = None, bf16: bool = False) -> Pipeline:
    """The bundled model in ``ssinfnet/weights/default/``."""
    if not (DEFAULT_WEIGHTS / "pipeline.json").is_file():
        raise InputError(
            "no bundled model is installed; train one (ssinfnet train) and pass its pipeline folder instead",
            DEFAULT_WEIGHTS,
        )
    return load_pipeline(DEFAULT_WEIGHTS, device=device, bf16=bf16)


def _check_stage(model: nn.Module, stage: str, in_channels: int, num_classes: int) -> None:
    got = (getattr(model, "in_channels", None), getattr(model, "num_classes", None))
    if got != (in_channels, num_classes):
        raise ValueError(f"{stage} model must take {in_channels} channel(s) and give {num_classes} class(es), got {got}")
    if getattr(model, "head_mode", "segmentation") != "segmentation":
        raise ValueError(f"{stage} model has {model.head_mode} heads; segmentation heads are needed")


def _check_image(image: np.ndarray, index: int, source: str | None = None) -> np.ndarray:
    which = "" if source else f"image {index}: "
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or min(image.shape) < 1:
        raise InputError(f"{which}expected a 2-D (H, W) array, got shape {image.shape}", source)
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    if not np.isfinite(image).all() or low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise InputError(
            f"{which}values must be finite and in [0, 1] (got {low:.3g}..{high:.3g}); "
            "convert with ssinfnet.data.intensity.to_unit_range", source
        )
    return np.ascontiguousarray(image)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
