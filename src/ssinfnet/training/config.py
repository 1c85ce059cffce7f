"""Training configuration: typed defaults, a YAML preset over them, then ``key.sub=value`` overrides,
validated into one dict.

The schema is the dataclasses below: one per section, each field a setting with its type, default
and allowed range (:func:`setting`), plus cross-field :data:`RULES`. ``load_config`` fills keys a
preset leaves out with these defaults, applies the overrides and validates the result before any
caller writes a file, so a bad setting is one line naming the key (exit 2) and a corrected retry
starts cleanly. ``ssinfnet config`` prints the resolved config. The defaults live here only: the
bundled presets hold just the keys that differ from them.

The resolved dict is saved in every run directory (``config.json``) so a run can be rebuilt exactly.
Override values are parsed as YAML (``single.lr=1e-3``, ``model.backbone=resnet34``,
``single.focal=null``). Unknown keys are refused so that a typo does not silently do nothing,
except inside the sections that are passed through as keyword arguments (``model``,
``multi_model``, ``coach``), whose keys belong to the model builders (checked by building the
networks on the meta device, which allocates nothing). A preset's keys are checked the same way,
one line naming the key and the preset file: a new key is one line in its section of the schema.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import operator
import types
import typing
import warnings
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping

import yaml

from ssinfnet.core.folders import read_text
from ssinfnet.errors import InputError

PRESETS = ("demo", "cpu", "paper", "product")
DEFAULT_PRESET = "cpu"
#: Sections whose keys are keyword arguments of ``build_model`` / ``Coach``: any key may be added.
OPEN_SECTIONS = ("model", "multi_model", "coach")
OPTIMIZERS = ("adam", "sgd")


# --- the schema ---------------------------------------------------------------------------------

def setting(default: Any = MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: tuple | None = None,
            factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its allowed range (``ge``/``gt``/``le``/``lt``) or ``choices``."""
    metadata = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Focal:
    """Focal loss instead of BCE (Lin et al. 2017)."""

    strict: ClassVar[bool] = True  # keyword arguments: an unknown key is an error, not a pass-through
    alpha: float = setting(0.25, ge=0.0, le=1.0)
    gamma: float = setting(2.0, ge=0.0)


@dataclass(frozen=True)
class LookaheadSettings:
    """Lookahead around the optimiser (Zhang et al. 2019)."""

    strict: ClassVar[bool] = True
    k: int = setting(5, ge=1)
    alpha: float = setting(0.5, gt=0.0, le=1.0)


@dataclass(frozen=True)
class AugmentSettings:
    """The training augmentation (:class:`ssinfnet.data.augment.Augmentation`, whose defaults these
    are): flips, rotations and scales of image and mask, gamma, contrast and noise on the CT channel,
    each transform applied with ``probability``. ``data.augment: true`` is all of them at default."""

    strict: ClassVar[bool] = True
    flip: bool = True
    rotate_degrees: float = setting(10.0, ge=0.0, le=180.0)
    scale: float = setting(0.1, ge=0.0, lt=1.0)
    gamma: tuple[float, float] = setting((0.8, 1.25), gt=0.0)  # the range a gamma is drawn from
    contrast: float = setting(0.1, ge=0.0, lt=1.0)
    noise_std: float = setting(0.02, ge=0.0)
    probability: float = setting(0.5, ge=0.0, le=1.0)


@dataclass(frozen=True)
class ExportAugmentSettings:
    """Other exports' differences (:class:`ssinfnet.data.augment.ExportAugmentation`, whose defaults
    these are): one or two of them on a slice, with ``probability``."""

    strict: ClassVar[bool] = True
    probability: float = setting(0.7, ge=0.0, le=1.0)
    clahe_probability: float = setting(0.0, ge=0.0, le=1.0)  # extra CLAHE on this share of slices


@dataclass(frozen=True)
class Data:
    size: int = setting(224, ge=32)  # the coach's stride-16 grid needs two cells a side
    val_fraction: float = setting(0.2, gt=0.0, lt=1.0)  # carved from the training slices (never the test set)
    augment: bool | AugmentSettings = True  # false: none; a mapping: its settings
    unlabeled_limit: int | None = setting(None, ge=1)
    # Defaults below are what the code assumes for runs configured before these keys existed.
    canonical: bool = False  # inputs mapped to the canonical contrast
    equalize: bool = False  # then locally equalised (CLAHE): the "equalized" input contrast (needs canonical)
    export_augment: bool | ExportAugmentSettings = False  # other hospitals' export differences (with augment on)
    heldout_fraction: float = setting(0.0, ge=0.0, lt=1.0)  # of the unlabeled pool's source groups
    # Cross-validation: with ``fold`` set, validation is fold ``fold`` of ``folds`` group-aware folds
    # (data.splits.kfold, seeded by ``seed``) instead of a random ``val_fraction``.
    folds: int = setting(5, ge=2)
    fold: int | None = setting(None, ge=0)


@dataclass(frozen=True)
class Negatives:
    """Lesion-free slices (``train --negatives``)."""

    weight: float = setting(1.0, ge=0.0)  # loss weight of a negative slice (a labeled slice weighs 1)
    per_epoch: int = setting(0, ge=0)  # negatives drawn into each epoch
    # Hard-negative mining: 0 draws ``per_epoch`` at random; N >= per_epoch draws N at random each epoch,
    # scores them (unaugmented) with the current weights and keeps the ``per_epoch`` with the highest
    # mean lesion probability, i.e. the lesion-free slices the network gets most wrong now.
    mined_from: int = setting(0, ge=0)


@dataclass(frozen=True)
class Pseudo:
    """Pseudo-labelled slices (``train --pseudo``): labels predicted by a model, never checked by a reader."""

    weight: float = setting(0.5, ge=0.0)  # loss weight of a pseudo-labelled slice (a labeled slice weighs 1)
    per_epoch: int = setting(0, ge=0)  # a fresh seeded draw of this many joins each epoch; 0: all of them


@dataclass(frozen=True)
class Pretrain:
    epochs: int = setting(24, ge=1)
    warmup_epochs: int = setting(8, ge=1)
    coach_epochs: int = setting(4, ge=1)
    inpaint_epochs: int = setting(4, ge=1)
    batch_size: int = setting(8, ge=1)
    lr: float = setting(0.1, gt=0.0)
    momentum: float = setting(0.9, ge=0.0, lt=1.0)
    weight_decay: float = setting(0.0005, ge=0.0)
    grad_clip: float | None = setting(None, gt=0.0)
    erase_fraction: float = setting(0.25, gt=0.0, lt=1.0)
    block: int = setting(28, ge=1)
    kept_weight: float = setting(0.01, ge=0.0)
    coach_lr: float = setting(0.00001, gt=0.0)
    val_images: int = setting(64, ge=1)
    examples: int = setting(4, ge=1)
    # Epochs after which the inpainter's weights are kept as RUN/epochs/epoch-NNNN (a finished-run folder
    # that ``train --init`` takes; 0: the weights before training): the budgets of a study's recipes.
    keep_epochs: list[int] = setting(factory=list, ge=0)


@dataclass(frozen=True)
class Stage:
    """A supervised stage (``single`` or ``multi``)."""

    epochs: int = setting(300, ge=1)
    batch_size: int = setting(8, ge=1)
    optimizer: str = setting("adam", choices=OPTIMIZERS)
    lr: float = setting(0.0001, gt=0.0)
    momentum: float = setting(0.0, ge=0.0, lt=1.0)
    weight_decay: float = setting(0.0, ge=0.0)
    grad_clip: float | None = setting(None, gt=0.0)
    focal: Focal | None = None  # None: BCE (see losses.build_loss)
    lookahead: LookaheadSettings | None = None
    stop_at: float | None = setting(None, gt=0.0, le=1.0)  # stop after the first epoch whose validation Dice reaches it


@dataclass(frozen=True)
class Cohort:
    """The generated cohort of ``ssinfnet demo`` (only the demo preset has this section)."""

    n_subjects: int = setting(12, ge=4)
    seed: int = setting(0, ge=0)
    size: int = setting(128, ge=32)
    slices_per_subject: int = setting(8, ge=1)
    chest_crops: bool = False  # semiseg slices cropped to each slice's lungs, as segment crops (demo_cohort)


def _multi_stage() -> Stage:
    return Stage(optimizer="sgd", lr=0.01, momentum=0.7, focal=Focal(), lookahead=LookaheadSettings())


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = setting(0, ge=0)
    device: str = "auto"
    bf16: bool = False
    channels_last: bool = False
    num_workers: int = setting(0, ge=0)
    progress: bool = True
    model: dict = setting(factory=lambda: {"name": "infnet"})
    multi_model: dict = setting(factory=lambda: {"name": "multi_infnet"})
    coach: dict = setting(factory=dict)
    cohort: Cohort | None = None
    data: Data = setting(factory=Data)
    negatives: Negatives = setting(factory=Negatives)
    pseudo: Pseudo = setting(factory=Pseudo)
    pretrain: Pretrain = setting(factory=Pretrain)
    single: Stage = setting(factory=Stage)
    multi: Stage = setting(factory=_multi_stage)


def defaults() -> dict[str, Any]:
    """Every setting at its default (what a preset's missing keys get)."""
    return asdict(TrainingConfig())


# --- validation ---------------------------------------------------------------------------------

def _bad(key: str, value: Any, expected: str) -> InputError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return InputError(f"config {key}={shown}: {expected}")


def _range_text(meta: Mapping[str, Any]) -> str:
    bounds = [f"{op} {meta[name]:g}" for name, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
              if meta.get(name) is not None]
    return " and ".join(bounds)


def _number(value: Any, kind: type, key: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(key, value, f"must be {'an integer' if kind is int else 'a number'}")
    if not math.isfinite(value):
        raise _bad(key, value, "must be a finite number")
    if kind is int:
        if float(value) != int(value):
            raise _bad(key, value, "must be an integer")
        return int(value)
    return float(value)


_COMPARE = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def _check_range(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if isinstance(value, list):  # a fixed-length tuple setting: each number in range
        for item in value:
            _check_range(item, meta, key)
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise _bad(key, value, f"must be one of {', '.join(map(str, choices))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if any(meta.get(name) is not None and not compare(value, meta[name]) for name, compare in _COMPARE.items()):
            raise _bad(key, value, f"must be {_range_text(meta)}")


def _convert(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the type ``hint`` (int, float, bool, str, dict, a tuple of numbers (as a list),
    a schema dataclass, or a union of them): the first member of the union that takes values of its
    kind converts it."""
    union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise _bad(key, value, "must be set (null is not allowed here)")
    for kind in options:
        if _takes(kind, value):
            return _convert_one(value, kind, key)
    raise _bad(key, value, "must be " + " or ".join(_type_name(kind) for kind in options))


def _takes(kind: Any, value: Any) -> bool:
    if is_dataclass(kind) or kind is dict:
        return isinstance(value, dict)
    if typing.get_origin(kind) in (tuple, list):
        return isinstance(value, (list, tuple))
    if kind in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return kind is not type(None) and isinstance(value, kind)


def _type_name(kind: Any) -> str:
    if kind is type(None):
        return "null"
    if is_dataclass(kind):
        return "a mapping of " + ", ".join(f.name for f in fields(kind))
    if typing.get_origin(kind) is tuple:
        return f"a list of {len(typing.get_args(kind))} numbers"
    if typing.get_origin(kind) is list:
        return "a list of integers"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", dict: "a mapping"}[kind]


def _convert_one(value: Any, kind: Any, key: str) -> Any:
    if is_dataclass(kind):
        return validate_section(kind, value, key)
    if typing.get_origin(kind) is list:  # a list of any length of one kind of number
        return [_number(item, typing.get_args(kind)[0], key) for item in value]
    if typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        if len(value) != len(items):
            raise _bad(key, value, f"must be {_type_name(kind)}")
        return [_number(item, item_kind, key) for item, item_kind in zip(value, items)]
    if kind in (int, float):
        return _number(value, kind, key)
    return value


def validate_section(schema: type, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``values`` checked against the dataclass ``schema``: missing keys get their defaults, known
    keys are converted and range-checked, unknown keys are kept (refused when ``schema.strict``)."""
    hints = typing.get_type_hints(schema)
    known = {f.name: f for f in fields(schema)}
    unknown = [name for name in values if name not in known]
    if unknown and getattr(schema, "strict", False):
        raise InputError(f"config {prefix}.{unknown[0]}: unknown key (known here: {', '.join(known)})")
    template = asdict(schema())
    result: dict[str, Any] = {}
    for name, spec in known.items():
        key = f"{prefix}.{name}" if prefix else name
        value = _convert(values[name] if name in values else template[name], hints[name], key)
        _check_range(value, spec.metadata, key)
        result[name] = value
    result.update({name: values[name] for name in unknown})
    return result


# --- cross-field rules ---------------------------------------------------------------------------

def _warmup_shorter_than_pretraining(config: dict[str, Any]) -> None:
    pre = config["pretrain"]
    if pre["warmup_epochs"] >= pre["epochs"]:
        raise _bad("pretrain.warmup_epochs", pre["warmup_epochs"],
                   f"the warm-up must be shorter than pretrain.epochs={pre['epochs']} (coach rounds follow it)")


def _kept_epochs_exist(config: dict[str, Any]) -> None:
    pre = config["pretrain"]
    late = [epoch for epoch in pre["keep_epochs"] if epoch > pre["epochs"]]
    if late:
        raise _bad("pretrain.keep_epochs", pre["keep_epochs"],
                   f"epoch {late[0]} is after the last one (pretrain.epochs={pre['epochs']})")


def _block_fits_the_image(config: dict[str, Any]) -> None:
    if config["pretrain"]["block"] > config["data"]["size"]:
        raise _bad("pretrain.block", config["pretrain"]["block"],
                   f"an erased block must fit in the data.size={config['data']['size']} px image")


def _fold_exists(config: dict[str, Any]) -> None:
    fold, folds = config["data"]["fold"], config["data"]["folds"]
    if fold is not None and fold >= folds:
        raise _bad("data.fold", fold, f"must be below data.folds={folds} (folds count from 0)")


def _mining_draws_enough(config: dict[str, Any]) -> None:
    negatives = config["negatives"]
    if 0 < negatives["mined_from"] < negatives["per_epoch"]:
        raise _bad("negatives.mined_from", negatives["mined_from"],
                   f"must be 0 (no mining) or at least negatives.per_epoch={negatives['per_epoch']}")


def _equalize_needs_canonical(config: dict[str, Any]) -> None:
    data = config["data"]
    if data["equalize"] and not data["canonical"]:
        raise _bad("data.equalize", data["equalize"], "needs data.canonical=true (it equalises the canonical contrast)")


def _device_exists(config: dict[str, Any]) -> None:
    from ssinfnet.models.speed import resolve_device  # noqa: PLC0415 (torch: only when validating)

    try:
        resolve_device(config["device"])
    except ValueError as err:
        raise _bad("device", config["device"], str(err)) from None


#: (section, what the network must take and give: in_channels, num_classes) of each trained network.
NETWORKS = (("model", 1, 1), ("multi_model", 2, 3))


def _networks_build(config: dict[str, Any]) -> None:
    """Build every network on the meta device (no memory): unknown models, backbones and keyword
    arguments, or impossible sizes, fail here instead of after the run folder is written."""
    builds = [(section, dict(config[section]), shape) for section, *shape in NETWORKS]
    coach = {"in_channels": 1, "erase_fraction": config["pretrain"]["erase_fraction"], **config["coach"]}
    builds.append(("coach", {"name": "coach", **coach}, None))
    for section, options, shape in builds:
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise _bad(f"{section}.name", name, "must name a network (ssinfnet models lists them)")
        try:
            problem, channels = _network_shape(name, json.dumps(options, sort_keys=True))
        except TypeError:  # options that are not JSON cannot be the keyword arguments of a saved run
            problem, channels = "its options must be plain YAML values", None
        if problem:
            raise InputError(f"config {section}: cannot build {name!r}: {problem}")
        if shape is not None and channels != tuple(shape):
            raise _bad(f"{section}.name", name, f"must take {shape[0]} channel(s) and give {shape[1]} class(es)")


@functools.lru_cache(maxsize=64)
def _network_shape(name: str, options: str) -> tuple[str | None, tuple[int, int] | None]:
    """(why it cannot be built or None, (in_channels, num_classes)); cached: a Res2Net-50 takes a second."""
    import torch  # noqa: PLC0415

    from ssinfnet.models import build_model  # noqa: PLC0415

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = build_model(name, **json.loads(options))
    except (InputError, TypeError, ValueError, RuntimeError) as err:
        return str(getattr(err, "problem", err)).splitlines()[0], None
    if any(p.numel() == 0 for p in network.parameters()):
        return "it would have empty layers (a width or channel count of 0?)", None
    return None, (getattr(network, "in_channels", None), getattr(network, "num_classes", None))


#: Checks across keys, run after every key is valid on its own; add one function per rule.
RULES: tuple[Callable[[dict[str, Any]], None], ...] = (
    _warmup_shorter_than_pretraining, _kept_epochs_exist, _block_fits_the_image, _fold_exists, _mining_draws_enough,
    _equalize_needs_canonical, _device_exists,
    _networks_build,
)


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every known key type- and range-checked and every missing one at its default;
    one :class:`InputError` naming the first bad key."""
    resolved = validate_section(TrainingConfig, config)
    for rule in RULES:
        rule(resolved)
    return resolved


# --- presets and overrides -----------------------------------------------------------------------

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
        data = yaml.safe_load(read_text(path))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read YAML config: {err}", path) from err
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


def with_defaults(preset: Mapping[str, Any], source: str | Path | None = None) -> dict[str, Any]:
    """The preset over :func:`defaults`, one section deep (a section the preset gives replaces none
    of the defaults' other sections; inside it, the keys it leaves out keep their defaults). Each key
    is set as ``--set`` sets it (:func:`apply_override`), so a key the schema does not know is
    refused the same way, naming the preset file ``source``."""
    merged = defaults()
    for key, value in preset.items():
        items = value.items() if isinstance(merged.get(key), dict) and isinstance(value, dict) else [(None, value)]
        for sub_key, sub_value in items:
            try:
                apply_override(merged, [str(key)] if sub_key is None else [str(key), str(sub_key)], copy.deepcopy(sub_value))
            except InputError as err:
                raise InputError(err.problem, source) from None
    return merged


def load_config(
    preset: str = DEFAULT_PRESET, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> dict[str, Any]:
    """The preset's config over the defaults with ``overrides`` applied (strings ``a.b=v`` or a
    mapping ``{"a.b": v}``), validated (:func:`validate`)."""
    path = preset_path(preset)
    config = with_defaults(read_yaml(path), path)
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides)
    for keys, value in items:
        apply_override(config, keys.split(".") if isinstance(keys, str) else keys, value)
    config = validate(config)
    config["preset"] = preset
    return config
