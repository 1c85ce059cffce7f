"""ResNet-18/34/50 feature pyramids (f1..f4 at strides 4, 8, 16, 32), written here: no torchvision.

``width`` scales every stage (64 = the standard ResNet); 16 or 32 make tiny CPU/test networks.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def conv_bn(
    in_ch: int, out_ch: int, kernel_size: int | tuple[int, int] = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """Bias-free conv ("same" padding for odd kernels, also rectangular or dilated ones) + BN."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, (kh, kw), stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
    )


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel_size: int | tuple[int, int] = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    return nn.Sequential(*conv_bn(in_ch, out_ch, kernel_size, stride, dilation), nn.ReLU(inplace=True))


def projection_shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """1x1 conv + BN shortcut used when a block changes channels or resolution."""
    return conv_bn(in_ch, out_ch, kernel_size=1, stride=stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(in_ch, planes, 3, stride), conv_bn(planes, planes, 3))
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, as in ResNet v1.5) -> 1x1 expansion x4 (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_ch, planes, 1),
            conv_bn_relu(planes, planes, 3, stride),
            conv_bn(planes, planes * self.expansion, 1),
        )
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs, unit BN: the standard from-scratch ResNet initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FeaturePyramid(nn.Module):
    """Stem (stride 4) + four residual stages; ``forward`` returns (f1, f2, f3, f4).

    ``channels`` holds the channel count of each feature map, which the decoders read.
    """

    def __init__(
        self,
        stem: nn.Module,
        stem_channels: int,
        block: type[nn.Module],
        depths: tuple[int, int, int, int],
        width: int,
        shortcut: Callable[[int, int, int], nn.Module] = projection_shortcut,
    ):
        super().__init__()
        self.stem = stem
        in_ch = stem_channels
        stages = []
        for index, depth in enumerate(depths):
            planes = width * 2**index
            stride = 1 if index == 0 else 2
            out_ch = planes * block.expansion
            blocks = []
            for i in range(depth):
                needs_projection = i == 0 and (stride != 1 or in_ch != out_ch)
                blocks.append(
                    block(in_ch, planes, stride if i == 0 else 1,
                          shortcut(in_ch, out_ch, stride) if needs_projection else None)
                )
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = tuple(width * 2**i * block.expansion for i in range(4))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f1 = self.layer1(self.stem(x))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return f1, f2, f3, f4


def resnet_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """7x7 stride-2 conv + 3x3 stride-2 max-pool: stride 4 overall."""
    return nn.Sequential(
        conv_bn_relu(in_channels, out_channels, 7, stride=2),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


RESNET_LAYOUTS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def resnet(name: str, in_channels: int = 1, width: int = 64) -> FeaturePyramid:
    block, depths = RESNET_LAYOUTS[name]
    return FeaturePyramid(resnet_stem(in_channels, width), width, block, depths, width)
