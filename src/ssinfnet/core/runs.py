"""Read-only view of a training run folder, for every stage that consumes runs (evaluation, export,
``train --init`` / ``--prior-from``, the report). The writer is ``ssinfnet.training.runs.RunDir``.

Layout::

    RUN/config.json        resolved config (rebuilds the run)
    RUN/run.json           kind, seed, git commit, data fingerprint, command line, versions
    RUN/metrics.jsonl      one line per finished epoch (+ metrics.csv, the same table)
    RUN/checkpoints/       full states to resume from (``last``, ``best``)
    RUN/model.safetensors  best (segmentation) or final (pretraining) model, + model.json
    RUN/examples/*.png     pretraining runs: inpaintings and coach masks per round
    RUN/epochs/epoch-NNNN/ pretraining runs with ``pretrain.keep_epochs``: the inpainter after epoch N
                           (model.safetensors + model.json + summary.json: a finished run for --init)
    RUN/summary.json       validation Dice, chosen threshold, where the data/prior/init came from;
                           written last: the run's completion marker

A run is a model only once it is finished: :func:`finished_model`. A run killed or interrupted mid-way
already holds a best ``model.safetensors`` but no ``summary.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssinfnet.core.folders import read_json, read_jsonl
from ssinfnet.errors import InputError

CONFIG = "config.json"
RUN_INFO = "run.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MODEL = "model.safetensors"
EXAMPLES = "examples"
KEPT_EPOCHS = "epochs"


def kept_epoch(run_dir: str | Path, epoch: int) -> Path:
    """Where a pretraining run keeps its inpainter after ``epoch`` (``pretrain.keep_epochs``; 0: before
    training): a folder that :func:`finished_model` and ``train --init`` take."""
    return Path(run_dir) / KEPT_EPOCHS / f"epoch-{int(epoch):04d}"


class RunFolder:
    """What a run folder holds; reading only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    def is_run(self) -> bool:
        return (self.path / CONFIG).is_file()

    def has_records(self) -> bool:
        """Anything a report can show: per-epoch metrics or pretraining examples."""
        return (self.path / METRICS).is_file() or (self.path / EXAMPLES).is_dir()

    def finished_model(self) -> Path:
        """The exported model of a finished run; an input error for anything else.

        A folder without ``model.safetensors`` is not a run; one without ``summary.json`` is a run that
        never finished (killed, interrupted, crashed): its model is an intermediate one and its summary,
        which holds the threshold chosen on validation, does not exist yet.
        """
        if not self.path.is_dir():
            raise InputError("not a training run folder (no such directory)", self.path)
        if not self.model_path.is_file():
            raise InputError(f"not a training run (no {MODEL})", self.path)
        if not (self.path / SUMMARY).is_file():
            raise InputError(
                f"unfinished training run (no {SUMMARY}): finish it with --resume before using it as a model",
                self.path)
        return self.model_path

    def config(self) -> dict[str, Any]:
        if not self.is_run():
            raise InputError(f"not a run directory (no {CONFIG})", self.path)
        return read_json(self.path / CONFIG)

    def info(self) -> dict[str, Any]:
        return read_json(self.path / RUN_INFO)

    def summary(self) -> dict[str, Any]:
        """{} while the run is unfinished."""
        return read_json(self.path / SUMMARY)

    def history(self) -> list[dict[str, Any]]:
        """One row per finished epoch."""
        return read_jsonl(self.path / METRICS)

    def examples(self) -> list[Path]:
        """Pretraining example grids, oldest first."""
        return sorted((self.path / EXAMPLES).glob("*.png"))


def finished_model(run_dir: str | Path) -> Path:
    """:meth:`RunFolder.finished_model` of ``run_dir``."""
    return RunFolder(run_dir).finished_model()
