"""Res2Net-50 v1b 26w x 4s (the Inf-Net paper's backbone) as a feature pyramid, written here.

Each bottleneck splits its 3x3 stage into ``scale`` channel groups that are convolved hierarchically
(group i sees group i-1's output), giving several receptive fields in one block. "v1b" = deep 3-conv
stem and average-pool downsampling in the shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from ssinfnet.models.backbones.resnet import FeaturePyramid, conv_bn, conv_bn_relu

BASE_WIDTH = 26
SCALE = 4


class Res2NetBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        group = max(1, planes * BASE_WIDTH // 64)
        # The first block of a stage (it has a shortcut projection) does not chain groups and
        # average-pools the last group, as in the reference design ("stage" blocks).
        self.first_in_stage = shortcut is not None
        self.group = group
        self.reduce = conv_bn_relu(in_ch, group * SCALE, 1)
        self.group_convs = nn.ModuleList(conv_bn_relu(group, group, 3, stride) for _ in range(SCALE - 1))
        self.pool = nn.AvgPool2d(3, stride, padding=1) if self.first_in_stage else nn.Identity()
        self.expand = conv_bn(group * SCALE, planes * self.expansion, 1)
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(self.reduce(x), self.group, dim=1)
        outs = []
        previous = None
        for conv, part in zip(self.group_convs, groups):
            previous = conv(part if previous is None or self.first_in_stage else previous + part)
            outs.append(previous)
        outs.append(self.pool(groups[-1]))
        return self.relu(self.expand(torch.cat(outs, dim=1)) + self.shortcut(x))


def avgpool_shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """v1b shortcut: average-pool then a stride-1 1x1 conv (keeps information a strided 1x1 drops)."""
    pool = nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
    return nn.Sequential(pool, conv_bn(in_ch, out_ch, 1))


def res2net50(in_channels: int = 1, width: int = 64) -> FeaturePyramid:
    half = max(1, width // 2)
    stem = nn.Sequential(
        conv_bn_relu(in_channels, half, 3, stride=2),
        conv_bn_relu(half, half, 3),
        conv_bn_relu(half, width, 3),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    return FeaturePyramid(stem, width, Res2NetBottleneck, (3, 4, 6, 3), width, shortcut=avgpool_shortcut)
