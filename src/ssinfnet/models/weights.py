"""Weights on disk: safetensors only (never pickle) + a JSON sidecar that rebuilds the model.

``save_model(model, "m.safetensors")`` writes ``m.safetensors`` and ``m.json``
{format, model, config, heads, normalisation, extra}; ``load_model`` rebuilds and loads it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ssinfnet.data.intensity import CONTRASTS, UNIT_CONTRAST
from ssinfnet.errors import InputError
from ssinfnet.fileio import atomic_path, write_json

FORMAT = "ssinfnet-weights/1"
SUFFIX = ".safetensors"
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header size


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def save_state_dict(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write a flat tensor dict atomically as safetensors (tensors made contiguous and unshared)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"weights must be written as {SUFFIX}, not {path.name}")
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_state_dict(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read a safetensors file; anything else (a pickle checkpoint included) raises InputError unread,
    and so do weights holding NaN or inf (a diverged training would otherwise predict nothing, quietly)."""
    path = Path(path)
    _check_safetensors(path)
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise InputError(f"cannot read safetensors weights: {err}", path) from err
    broken = {name: int((~torch.isfinite(t)).sum()) for name, t in state.items() if t.is_floating_point()}
    broken = {name: count for name, count in broken.items() if count}
    if broken:
        name = next(iter(broken))
        raise InputError(f"weights hold NaN/inf values ({broken[name]} in {name!r}, {len(broken)} tensor(s) in all): "
                         "not a usable model (a diverged training?)", path)
    return state


def save_model(model: nn.Module, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Weights + sidecar for a model built by :func:`ssinfnet.models.build_model`."""
    name = getattr(model, "name", None)
    if name is None:
        raise ValueError("save_model needs a model built by build_model (it records the model name)")
    save_state_dict(model.state_dict(), path)
    write_json(sidecar_path(path), {
        "format": FORMAT,
        "model": name,
        "config": model.config,
        "heads": getattr(model, "head_mode", None),
        "normalisation": getattr(model, "normalisation", None),
        "input_contrast": input_contrast(model),
        "extra": extra or {},
    })


def input_contrast(model: nn.Module) -> str:
    """What the network's input contrast is (sidecar ``input_contrast``; see ssinfnet.data.intensity):
    ``"unit"`` for models saved before the canonical map existed."""
    return getattr(model, "input_contrast", UNIT_CONTRAST)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise InputError(f"missing sidecar {side.name} (model name and config) beside the weights", path)
    try:
        info = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"sidecar is not valid JSON: {err}", side) from err
    if not isinstance(info, dict) or info.get("format") != FORMAT or "model" not in info:
        raise InputError(f"not an ssinfnet weights sidecar (expected format {FORMAT!r})", side)
    return info


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model named in the sidecar, set its heads, load the weights (strictly), eval mode."""
    from ssinfnet.models.registry import build_model  # registry imports every network; keep this module light

    path = Path(path)
    _check_safetensors(path)
    info = read_sidecar(path)
    model = build_model(info["model"], **info.get("config", {}))
    if info.get("heads"):
        model.use_heads(info["heads"])
    model.input_contrast = info.get("input_contrast", UNIT_CONTRAST)
    if model.input_contrast not in CONTRASTS:
        raise InputError(f"unknown input_contrast {model.input_contrast!r} (this version knows {', '.join(CONTRASTS)})",
                         sidecar_path(path))
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first_line = str(err).splitlines()[0] if str(err) else "state does not match"
        raise InputError(f"weights do not match model {info['model']!r} with its config: {first_line}", path) from err
    return model.to(device).eval()


def _check_safetensors(path: Path) -> None:
    """Refuse anything but a safetensors file from its first bytes, before any library reads it."""
    if not path.is_file():
        raise InputError("weights file not found", path)
    if path.suffix != SUFFIX:
        raise InputError(f"weights must be a {SUFFIX} file (pickle checkpoints are never loaded)", path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        raise InputError("not a safetensors file (too short)", path)
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_len > _MAX_HEADER or header_len + 8 > path.stat().st_size:
        kind = "a PyTorch zip/pickle checkpoint" if head[:2] in (b"PK", b"\x80\x02") or head[:1] == b"\x80" else "unknown data"
        raise InputError(f"not a safetensors file (looks like {kind}); ssinfnet never unpickles weights", path)
