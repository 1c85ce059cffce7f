"""Inf-Net (Fan et al., IEEE TMI 2020): RFB + parallel partial decoder + edge attention + reverse attention.

Written from the paper and the method notes (the public code was read, not copied). Differences from
the public code, on purpose: convs are conv-BN-ReLU (the public BasicConv2d silently skips its ReLU),
any input size works (padding in :class:`SegmentationNetwork`), and the head count follows
``num_classes`` so the same body serves the 3-class "Multi InfNet" and inpainting.
"""

from __future__ import annotations

import torch
from torch import nn

from ssinfnet.models.backbones import build_backbone
from ssinfnet.models.backbones.resnet import conv_bn, conv_bn_relu
from ssinfnet.models.heads import HeadSpec, SegmentationNetwork, upsample_to


class ReceptiveFieldBlock(nn.Module):
    """RFB: four branches of growing receptive field (dilations 1, 3, 5, 7) fused, plus a residual."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()

        def branch(k: int) -> nn.Sequential:
            return nn.Sequential(
                conv_bn_relu(in_ch, out_ch, 1),
                conv_bn_relu(out_ch, out_ch, (1, k)),
                conv_bn_relu(out_ch, out_ch, (k, 1)),
                conv_bn_relu(out_ch, out_ch, 3, dilation=k),
            )

        self.branches = nn.ModuleList([conv_bn_relu(in_ch, out_ch, 1)] + [branch(k) for k in (3, 5, 7)])
        self.fuse = conv_bn(4 * out_ch, out_ch, 3)
        self.residual = conv_bn(in_ch, out_ch, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        return self.relu(fused + self.residual(x))


class PartialDecoder(nn.Module):
    """Parallel partial decoder: fuses RFB(f4, f3, f2) by upsample-multiply-concat into stride-8 features.

    The last 1x1 conv (to the global map S_g) is a head, so it lives in the network's ``heads``.
    """

    def __init__(self, ch: int):
        super().__init__()
        self.up4_to3 = conv_bn_relu(ch, ch)
        self.up4_to2 = conv_bn_relu(ch, ch)
        self.up3_to2 = conv_bn_relu(ch, ch)
        self.up4_cat3 = conv_bn_relu(ch, ch)
        self.up43_cat2 = conv_bn_relu(2 * ch, 2 * ch)
        self.fuse3 = conv_bn_relu(2 * ch, 2 * ch)
        self.fuse2 = conv_bn_relu(3 * ch, 3 * ch)
        self.out = conv_bn_relu(3 * ch, 3 * ch)
        self.out_channels = 3 * ch

    def forward(self, r4: torch.Tensor, r3: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
        s3, s2 = r3.shape[-2:], r2.shape[-2:]
        r4_at3 = upsample_to(r4, s3)
        # Multiplication keeps only what the deeper (semantic) and shallower (detailed) levels agree on.
        m3 = self.up4_to3(r4_at3) * r3
        m2 = self.up4_to2(upsample_to(r4, s2)) * self.up3_to2(upsample_to(r3, s2)) * r2
        c3 = self.fuse3(torch.cat([m3, self.up4_cat3(r4_at3)], dim=1))
        c2 = self.fuse2(torch.cat([m2, self.up43_cat2(upsample_to(c3, s2))], dim=1))
        return self.out(c2)


class ReverseAttention(nn.Module):
    """Features weighted by (1 - found(coarse map)), reduced, concatenated with edge features, convs.

    Returns features; the head turns them into a residual that is ADDED to the coarse map.
    """

    def __init__(self, in_ch: int, edge_ch: int, mid_ch: int, kernel_size: int, depth: int):
        super().__init__()
        self.reduce = conv_bn_relu(in_ch, mid_ch, 1)
        layers = [conv_bn_relu(mid_ch + edge_ch, mid_ch, kernel_size)]
        layers += [conv_bn_relu(mid_ch, mid_ch, kernel_size) for _ in range(depth - 1)]
        self.convs = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, reverse: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        x = self.reduce(features * reverse)
        return self.convs(torch.cat([x, upsample_to(edge, x.shape[-2:])], dim=1))


class InfNet(SegmentationNetwork):
    """Outputs (logits at input size): S_g (partial decoder), S_4, S_3, S_2 (reverse attention cascade,
    S_2 = the prediction) and ``edge`` (segmentation mode only)."""

    main_output = "S_2"
    size_divisor = 32

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 1,
        backbone: str = "resnet18",
        width: int = 64,
        rfb_channels: int = 32,
    ):
        super().__init__(in_channels, num_classes, dict(
            in_channels=in_channels, num_classes=num_classes, backbone=backbone, width=width, rfb_channels=rfb_channels,
        ))
        self.backbone = build_backbone(backbone, in_channels, width)
        c1, c2, c3, c4 = self.backbone.channels
        ch = rfb_channels
        # Decoder widths relative to the 32-channel RFB of the original: RA-4 256, RA-3/RA-2 and edge 64.
        edge_ch, deep_ch = 2 * ch, 8 * ch
        self.rfb2, self.rfb3, self.rfb4 = ReceptiveFieldBlock(c2, ch), ReceptiveFieldBlock(c3, ch), ReceptiveFieldBlock(c4, ch)
        self.decoder = PartialDecoder(ch)
        self.edge_branch = nn.Sequential(conv_bn_relu(c1, edge_ch, 1), conv_bn_relu(edge_ch, edge_ch), conv_bn_relu(edge_ch, edge_ch))
        self.ra4 = ReverseAttention(c4, edge_ch, deep_ch, kernel_size=5, depth=3)
        self.ra3 = ReverseAttention(c3, edge_ch, edge_ch, kernel_size=3, depth=2)
        self.ra2 = ReverseAttention(c2, edge_ch, edge_ch, kernel_size=3, depth=2)
        self.head_specs = {
            "S_g": HeadSpec(self.decoder.out_channels, 1),
            "S_4": HeadSpec(deep_ch, 1),
            "S_3": HeadSpec(edge_ch, 3),
            "S_2": HeadSpec(edge_ch, 3),
            "edge": HeadSpec(edge_ch, 3, segmentation_channels=1, reconstructs=False),
        }
        self._build_heads()

    def forward_padded(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        f1, f2, f3, f4 = self.backbone(x)
        edge_features = self.edge_branch(f1)
        coarse = self.heads["S_g"](self.decoder(self.rfb4(f4), self.rfb3(f3), self.rfb2(f2)))
        outputs = {"S_g": upsample_to(coarse, size)}
        for name, block, features in (("S_4", self.ra4, f4), ("S_3", self.ra3, f3), ("S_2", self.ra2, f2)):
            coarse = upsample_to(coarse, features.shape[-2:])
            refined = self.heads[name](block(features, 1.0 - self.found_map(coarse), edge_features))
            coarse = coarse + refined
            outputs[name] = upsample_to(coarse, size)
        if "edge" in self.heads:
            outputs["edge"] = upsample_to(self.heads["edge"](edge_features), size)
        return outputs
