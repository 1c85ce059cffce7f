"""Backbones by name; each returns a :class:`FeaturePyramid` with f1..f4 at strides 4, 8, 16, 32."""

from __future__ import annotations

from ssinfnet.errors import InputError
from ssinfnet.models.backbones.res2net import res2net50
from ssinfnet.models.backbones.resnet import RESNET_LAYOUTS, FeaturePyramid, resnet

BACKBONES = ("res2net50", "resnet50", "resnet34", "resnet18")


def build_backbone(name: str, in_channels: int = 1, width: int = 64) -> FeaturePyramid:
    if name == "res2net50":
        return res2net50(in_channels, width)
    if name in RESNET_LAYOUTS:
        return resnet(name, in_channels, width)
    raise InputError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "FeaturePyramid", "build_backbone"]
