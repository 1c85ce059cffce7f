"""Training configuration: a YAML preset, then ``key.sub=value`` overrides, resolved into one dict.

The resolved dict is saved in every run directory (``config.json``) so a run can be rebuilt exactly.
Override values are parsed as YAML (``single.lr=1e-3``, ``model.backbone=resnet34``,
``single.focal=null``). Unknown keys are refused so that a typo does not silently do nothing,
except inside the sections that are passed through as keyword arguments (``model``,
``multi_model``, ``coach``), whose keys belong to the model builders.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ssinfnet.errors import InputError

PRESETS = ("demo", "cpu", "paper")
DEFAULT_PRESET = "cpu"
#: Sections whose keys are keyword arguments of ``build_model`` / ``Coach``: any key may be added.
OPEN_SECTIONS = ("model", "multi_model", "coach")


def preset_path(name: str) -> Path:
    """A bundled preset by name, or a user YAML file by path."""
    if name in PRESETS:
        return Path(str(resources.files("ssinfnet.training") / "presets" / f"{name}.yaml"))
    path = Path(name)
    if not path.is_file():
        raise InputError(f"unknown preset (choose {', '.join(PRESETS)} or give a YAML file)", name)
    return path


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read YAML config: {err}".splitlines()[0], path) from err
    if not isinstance(data, dict):
        raise InputError("config must be a YAML mapping", path)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"single.lr=1e-3"`` -> (["single", "lr"], 0.001)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InputError(f"override {text!r} is not key=value (e.g. single.epochs=10)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise InputError(f"override {text!r}: value is not valid YAML ({err.problem})") from err
    return key.strip().split("."), _number_if_numeric(parsed)


def _number_if_numeric(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; on the command line it means a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_override(config: dict[str, Any], keys: list[str], value: Any) -> None:
    node = config
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if not isinstance(child, dict):
            if key in node or not _is_open(keys[: depth + 1]):
                raise InputError(f"unknown config key {'.'.join(keys)!r} ({'.'.join(keys[:depth + 1])} is not a section)")
            child = node[key] = {}
        node = child
    if keys[-1] not in node and not _is_open(keys):
        known = ", ".join(sorted(node)) or "none"
        raise InputError(f"unknown config key {'.'.join(keys)!r} (known here: {known})")
    node[keys[-1]] = value


def _is_open(keys: list[str]) -> bool:
    return len(keys) > 1 and keys[0] in OPEN_SECTIONS


def load_config(
    preset: str = DEFAULT_PRESET, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> dict[str, Any]:
    """The preset's config with ``overrides`` applied (strings ``a.b=v`` or a mapping ``{"a.b": v}``)."""
    config = copy.deepcopy(read_yaml(preset_path(preset)))
    config["preset"] = preset
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for keys, value in items:
        apply_override(config, keys.split(".") if isinstance(keys, str) else keys, value)
    return config
