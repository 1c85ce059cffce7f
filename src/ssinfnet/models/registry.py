"""Every network by name: ``build_model(name, **config)``, ``list_models()``.

Defaults are the CPU-friendly choices (ResNet-18 Inf-Net); the paper's setting is
``build_model("infnet", backbone="res2net50")``. ``model.name`` + ``model.config`` rebuild a model.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ssinfnet.errors import InputError
from ssinfnet.models.coach import Coach
from ssinfnet.models.infnet import InfNet
from ssinfnet.models.unet import UNet

# name -> (constructor, defaults, one-line description)
MODELS: dict[str, tuple[Callable[..., nn.Module], dict[str, Any], str]] = {
    "infnet": (InfNet, dict(in_channels=1, num_classes=1), "Inf-Net, single stage: CT -> infection"),
    "multi_infnet": (InfNet, dict(in_channels=2, num_classes=3), "Multi InfNet: CT + prior -> bg/GGO/consolidation"),
    "unet": (UNet, dict(in_channels=1, num_classes=1), "U-Net baseline (num_classes/in_channels set the stage)"),
    "multi_unet": (UNet, dict(in_channels=2, num_classes=3), "U-Net multi-class stage (paper): CT + prior -> 3 classes"),
    "coach": (Coach, dict(in_channels=1), "coach: stride-16 encoder -> keep mask erasing the hardest cells"),
}


def list_models() -> list[str]:
    return list(MODELS)


def build_model(name: str, **config: Any) -> nn.Module:
    """Build a network from its registry name; unknown names or config keys raise InputError."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    constructor, defaults, _ = MODELS[name]
    try:
        model = constructor(**{**defaults, **config})
    except TypeError as err:
        raise InputError(f"bad config for model {name!r}: {err}") from err
    model.name = name
    return model


def describe(name: str) -> str:
    return MODELS[name][2]
