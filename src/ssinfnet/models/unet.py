"""U-Net baseline (Ronneberger et al. 2015) for the single stage and the paper's multi-class stage.

The body is MONAI's BasicUNet (two conv-BN-ReLU per level, max-pool down, transposed-conv up,
64..1024 channels at ``width=64``); its final 1x1 conv is replaced by our swappable head.
"""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet
from torch import nn

from ssinfnet.models.heads import HeadSpec, SegmentationNetwork


class UNet(SegmentationNetwork):
    main_output = "out"
    size_divisor = 16  # four 2x poolings

    def __init__(self, in_channels: int = 1, num_classes: int = 1, width: int = 64):
        super().__init__(in_channels, num_classes, dict(in_channels=in_channels, num_classes=num_classes, width=width))
        features = tuple(width * 2**i for i in range(5)) + (width,)
        self.body = BasicUNet(
            spatial_dims=2, in_channels=in_channels, out_channels=num_classes, features=features,
            act=("relu", {"inplace": True}), norm="batch", upsample="deconv",
        )
        self.body.final_conv = nn.Identity()
        self.head_specs = {"out": HeadSpec(width, 1)}
        self._build_heads()

    def forward_padded(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.heads["out"](self.body(x))}
