"""Run directories: what a training run leaves behind, and atomic checkpoints to resume it.

The layout and the read-only view every consumer uses are in :mod:`ssinfnet.core.runs`
(:class:`~ssinfnet.core.runs.RunFolder`, :func:`~ssinfnet.core.runs.finished_model`); :class:`RunDir`
adds the writing.

A checkpoint is a folder with ``state.safetensors`` (every tensor) and ``state.json`` (everything
else, with references to the tensors): no pickle anywhere. The folder is written beside its final
place and renamed in one step, so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ssinfnet import __version__, fileio
from ssinfnet.core.provenance import git_commit
from ssinfnet.core.runs import CONFIG, METRICS, RUN_INFO, SUMMARY, RunFolder
from ssinfnet.errors import InputError

CHECKPOINT_TENSORS = "state.safetensors"
CHECKPOINT_JSON = "state.json"


# --- nested state <-> (JSON tree, flat tensor dict) -----------------------------------------------

def flatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able tree of ``obj`` whose tensors are moved into ``tensors`` under generated names.

    Keeps what JSON would lose: tuples (python RNG state), non-string dict keys (optimiser state is
    keyed by parameter index) and numpy arrays (numpy RNG state).
    """
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: flatten_state(v, tensors) for k, v in obj.items()}
        return {"__items__": [[k, flatten_state(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if "__tuple__" in obj:
        return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: unflatten_state(v, tensors) for k, v in obj["__items__"]}
    return {k: unflatten_state(v, tensors) for k, v in obj.items()}


def save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) atomically into ``folder``."""
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten_state(state, tensors)
    with fileio.atomic_dir(folder, overwrite=True) as tmp:
        save_file(tensors, str(tmp / CHECKPOINT_TENSORS))
        (tmp / CHECKPOINT_JSON).write_text(json.dumps(tree))


def load_checkpoint(folder: Path) -> dict[str, Any]:
    try:
        tree = json.loads((folder / CHECKPOINT_JSON).read_text())
        tensors = load_file(str(folder / CHECKPOINT_TENSORS))
    except (OSError, ValueError, SafetensorError) as err:
        raise InputError(f"cannot read checkpoint ({err})", folder) from err
    return unflatten_state(tree, tensors)


# --- random number generators ------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def random_streams(obj: Any) -> list[Any]:
    """Every random generator reachable from ``obj`` (numpy RandomState/Generator, torch Generator,
    python Random) through the attributes of ssinfnet/MONAI objects, lists, tuples and dicts, in a
    fixed order: what an augmentation object draws from (MONAI keeps one RandomState per transform)."""
    found: list[Any] = []
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, (np.random.RandomState, np.random.Generator, torch.Generator, random.Random)):
            found.append(node)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)
        elif type(node).__module__.split(".")[0] in ("ssinfnet", "monai") and hasattr(node, "__dict__"):
            for item in vars(node).values():
                walk(item)

    walk(obj)
    return found


def streams_state(obj: Any) -> list[Any]:
    """The state of :func:`random_streams` of ``obj`` (checkpointable with :func:`save_checkpoint`)."""
    states = []
    for stream in random_streams(obj):
        if isinstance(stream, np.random.RandomState):
            states.append(stream.get_state())
        elif isinstance(stream, np.random.Generator):
            states.append(stream.bit_generator.state)
        else:  # torch.Generator and random.Random
            states.append(stream.get_state() if isinstance(stream, torch.Generator) else stream.getstate())
    return states


def set_streams_state(obj: Any, states: list[Any]) -> None:
    streams = random_streams(obj)
    if len(streams) != len(states):
        raise ValueError(f"{type(obj).__name__} has {len(streams)} random streams, the saved state {len(states)}")
    for stream, state in zip(streams, states):
        if isinstance(stream, np.random.RandomState):
            stream.set_state(state)
        elif isinstance(stream, np.random.Generator):
            stream.bit_generator.state = state
        elif isinstance(stream, torch.Generator):
            stream.set_state(state)
        else:
            stream.setstate(state)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derived_seed(*parts: int) -> int:
    """A seed for (run seed, epoch, rank, ...) that does not collide across neighbouring values."""
    digest = hashlib.sha256(":".join(str(int(p)) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**63


# --- the run directory -------------------------------------------------------------------------

class RunDir(RunFolder):
    """One run's folder, written. Only the main process writes (``writer=False`` on other DDP ranks)."""

    def __init__(self, path: str | Path, writer: bool = True):
        super().__init__(path)
        self.writer = writer

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def require_new(self) -> None:
        """Refuse what a new run may not be written into: a folder that holds a run (``--resume``
        continues one), one that holds anything else (a new run never mixes its files with others),
        a file. A missing or empty folder is taken."""
        fileio.refuse_file_in_the_way(self.path)
        if self.is_run():
            raise InputError("already holds a run: pass --resume to continue it, or choose another --out", self.path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError("is a file; expected a folder for the run (a new or empty one)", self.path)
        others = sorted(p.name for p in self.path.iterdir() if not fileio.is_temporary(p)) if self.path.is_dir() else []
        if others:
            raise InputError(f"is a folder that holds no training run but {len(others)} other entries (e.g. {others[0]!r}): "
                             "choose a new or empty --out", self.path)

    def start(self, kind: str, config: dict[str, Any], info: dict[str, Any]) -> None:
        """Create a new run: refuse a folder that already holds one (use ``--resume`` for that)."""
        if not self.writer:
            return
        self.require_new()
        self.path.mkdir(parents=True, exist_ok=True)
        fileio.write_json(self.path / CONFIG, config)
        fileio.write_json(
            self.path / RUN_INFO,
            {
                "kind": kind,
                "seed": config["seed"],
                "git_commit": git_commit(),
                "ssinfnet": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "torch_threads": torch.get_num_threads(),
                "command": sys.argv,
                **info,
            },
        )

    def entries(self) -> set[str] | None:
        """Names in the folder now (None: no folder), for :meth:`abandon`."""
        return set(os.listdir(self.path)) if self.path.is_dir() else None

    def abandon(self, before: set[str] | None) -> None:
        """Remove what a new run wrote (everything not in ``before``, the folder too if it had none)
        when it failed before anything resumable existed (no ``last`` checkpoint): the corrected
        command then starts afresh instead of finding "already holds a run"."""
        if not self.writer or not self.path.is_dir() or (self.checkpoints / "last").exists():
            return
        for name in set(os.listdir(self.path)) - (before or set()):
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        if before is None and not any(self.path.iterdir()):
            self.path.rmdir()

    def save(self, name: str, state: dict[str, Any]) -> None:
        if self.writer:
            save_checkpoint(self.checkpoints / name, state)

    def load(self, name: str = "last") -> dict[str, Any] | None:
        folder = self.checkpoints / name
        return load_checkpoint(folder) if (folder / CHECKPOINT_JSON).is_file() else None

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite both metric tables from the history kept in the checkpoint (so a resumed run never
        holds duplicate rows for epochs it trains again)."""
        if not self.writer:
            return
        fileio.write_text(self.path / METRICS, "".join(json.dumps(row) + "\n" for row in history))
        fileio.write_csv(self.path / "metrics.csv", history)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            fileio.write_json(self.path / SUMMARY, summary)

    def write_json(self, name: str, obj: Any) -> None:
        if self.writer:
            fileio.write_json(self.path / name, obj)
