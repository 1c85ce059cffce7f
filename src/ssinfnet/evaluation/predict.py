"""Load the model(s) to evaluate, with the input size and the threshold they were tuned at.

A model is given as a training run folder (``RUN/model.safetensors``, threshold from
``RUN/summary.json``, size from ``RUN/config.json``), as a ``.safetensors`` file (threshold and
size from its sidecar when recorded), or as a pipeline folder (``pipeline.json``). The threshold
is never chosen here: it comes from validation data, or from the command line, and the summary
says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ssinfnet.data.sample import Sample
from ssinfnet.errors import InputError
from ssinfnet.core.runs import RunFolder
from ssinfnet.inference.predictor import Pipeline, load_pipeline
from ssinfnet.inference.segment import predict_scans, resolve_precision, scan_from_samples, scans_of
from ssinfnet.models.weights import load_model, read_sidecar

DEFAULT_THRESHOLD = 0.5


@dataclass
class ModelUnderTest:
    pipeline: Pipeline
    threshold_source: str
    """Where the threshold came from: "validation", "command line", "pipeline.json" or "default"."""
    description: dict[str, Any]
    """Per stage: run folder name (no machine paths), model name and config (written into summary.json)."""


@dataclass
class _Stage:
    weights: Path
    run: RunFolder | None
    sidecar: dict[str, Any]

    @classmethod
    def locate(cls, path: str | Path) -> "_Stage":
        path = Path(path)
        if path.is_dir():
            run = RunFolder(path)
            weights = run.finished_model()  # a run is a model only once finished (summary.json)
            return cls(weights, run, read_sidecar(weights))
        return cls(path, None, read_sidecar(path))

    def describe(self) -> dict[str, Any]:
        return {"path": (self.run.path if self.run else self.weights).name, "model": self.sidecar["model"],
                "config": self.sidecar.get("config", {})}

    def threshold(self) -> float | None:
        """The validation threshold: the run's summary.json, else the sidecar's validation record."""
        summary = self.run.summary() if self.run else {}
        for record in (summary, summary.get("validation", {}), self.sidecar.get("extra", {}).get("validation", {})):
            if "threshold" in record:
                return float(record["threshold"])
        return None

    def size(self) -> int | None:
        extra = self.sidecar.get("extra", {})
        if "size" in extra:
            return int(extra["size"])
        config = self.run.config() if self.run else {}
        size = config.get("data", {}).get("size")
        return None if size is None else int(size)


def load_model_under_test(
    single: str | Path | None = None,
    multi: str | Path | None = None,
    pipeline: str | Path | None = None,
    threshold: float | None = None,
    size: int | None = None,
    device: str | None = None,
    bf16: bool | None = None,
) -> ModelUnderTest:
    """Either ``pipeline`` or ``single`` (+ optional ``multi``); ``threshold``/``size`` override.
    ``device``/``bf16``: as segment chooses them by default (:func:`~ssinfnet.inference.segment.resolve_precision`)."""
    if (pipeline is None) == (single is None):
        raise InputError("give either a pipeline folder or a single-stage model (optionally with a multi-class one)")
    device, bf16 = resolve_precision(device, bf16)
    if pipeline is not None:
        loaded = load_pipeline(pipeline, device=device, bf16=bf16)
        source = "pipeline.json"
        if threshold is not None:
            loaded.threshold, source = float(threshold), "command line"
        if size is not None:
            loaded.size = int(size)
        description = {"pipeline": Path(pipeline).name, "size": loaded.size, **loaded.meta}
        return ModelUnderTest(loaded, source, description)

    stages = {"single": _Stage.locate(single)}
    if multi is not None:
        stages["multi"] = _Stage.locate(multi)
    chosen = stages["single"].threshold()
    if threshold is not None:
        chosen, source = float(threshold), "command line"
    elif chosen is not None:
        source = "validation"
    else:
        chosen, source = DEFAULT_THRESHOLD, "default"
    size = size or stages["single"].size()
    if size is None:
        raise InputError("the model does not record its input size: pass --size", stages["single"].weights)
    models = {name: load_model(stage.weights) for name, stage in stages.items()}
    try:
        loaded = Pipeline(models["single"], models.get("multi"), size=size, threshold=chosen, device=device,
                          bf16=bf16)
    except ValueError as err:  # e.g. a multi-class network given as --single
        raise InputError(str(err), single) from err
    description = {name: stage.describe() for name, stage in stages.items()}
    return ModelUnderTest(loaded, source, {**description, "size": size})


def predict_samples(
    model: ModelUnderTest, samples: Sequence[Sample], batch_size: int = 8, raw: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(infection probability map, label map, lung mask or None) per sample, at each image's original
    size, one scan at a time.

    Each scan (a 2D image, or all the slices of one volume) goes through segment's own path,
    :func:`~ssinfnet.inference.segment.predict_scans`, the slices of consecutive scans batched: what is scored is what ``segment`` gives for that
    input. ``raw=True`` scores the networks alone on the whole slices (the Inf-Net benchmark protocol;
    no lung mask).
    """
    spans = list(scans_of(samples))
    scans = (scan_from_samples(samples[start:stop]) for start, stop in spans)
    predictions = predict_scans(model.pipeline, scans, raw=raw, batch_size=batch_size, probabilities="float32")
    for (start, stop), predicted in zip(spans, predictions):
        probs, labels = (predicted.per_sample(a) for a in (predicted.probabilities["infection"], predicted.labels))
        lung = None if predicted.lung is None else predicted.per_sample(predicted.lung)
        for k in range(stop - start):
            yield probs[k], labels[k], None if lung is None else lung[k]
