"""The coach of coach-guided inpainting (Singh et al., BMVC 2018) and the warm-up block masks.

Masks are (B, 1, H, W) with **1 = kept, 0 = erased**; the inpainter sees ``image * mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssinfnet.models.backbones import build_backbone
from ssinfnet.models.heads import NORMALISATION

CELL = 16  # the coach scores one cell per stride-16 feature


class Coach(nn.Module):
    """Stride-16 encoder -> one score per 16x16 cell -> erase the top ``erase_fraction`` of cells per image.

    ``keep = 1 - sigmoid(alpha * (z - t))`` where ``z`` are the image's cell scores standardised per
    image and ``t`` sits between the k-th and (k+1)-th largest, k = round(erase_fraction * cells).
    Standardising makes ``alpha`` mean the same for every image (raw scores can drift to any scale, and
    alpha = 1 on a tiny spread would erase nothing). ``hard=True`` gives the exact binary mask for the
    inpainter (erasing exactly k cells); soft masks (alpha = 1 by default) are differentiable for coach
    training.
    """

    def __init__(self, in_channels: int = 1, width: int = 16, erase_fraction: float = 0.25, alpha: float = 1.0):
        super().__init__()
        if not 0.0 <= erase_fraction <= 1.0:
            raise ValueError(f"erase_fraction must be in [0, 1], got {erase_fraction}")
        self.in_channels = in_channels
        self.erase_fraction = erase_fraction
        self.alpha = alpha
        self.config = dict(in_channels=in_channels, width=width, erase_fraction=erase_fraction, alpha=alpha)
        self.normalisation = dict(NORMALISATION)
        resnet = build_backbone("resnet18", in_channels, width)
        # Stride 16 = the first three stages of a ResNet-18; stage 4 would only add unused weights.
        self.encoder = nn.Sequential(resnet.stem, resnet.layer1, resnet.layer2, resnet.layer3)
        self.score = nn.Conv2d(resnet.channels[2], 1, 1)
        self.output_names = ("keep_mask",)
        self.main_output = "keep_mask"

    def cell_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, ceil(H/16), ceil(W/16)) raw scores; the image is zero-padded to whole cells."""
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % CELL, 0, -height % CELL))
        return self.score(self.encoder((x - self.normalisation["mean"]) / self.normalisation["std"]))

    def forward(self, x: torch.Tensor, hard: bool = False) -> torch.Tensor:
        height, width = x.shape[-2:]
        scores = self.cell_scores(x).float()
        flat = scores.flatten(1)
        z = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)
        k = round(self.erase_fraction * flat.shape[1])
        if k == 0:
            erase = torch.zeros_like(z)
        elif k == flat.shape[1]:
            erase = torch.ones_like(z)
        else:
            top = torch.topk(z, k + 1, dim=1).values
            threshold = (top[:, k - 1 : k] + top[:, k : k + 1]) / 2
            erase = (z > threshold).float() if hard else torch.sigmoid(self.alpha * (z - threshold))
        keep = (1.0 - erase).view_as(scores)
        keep = F.interpolate(keep, scale_factor=CELL, mode="nearest")
        return keep[..., :height, :width]


def random_block_mask(
    shape: tuple[int, ...] | torch.Size,
    block: int = 16,
    fraction: float = 0.25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Warm-up mask (B, 1, H, W) for an image batch of ``shape`` (B, [C,] H, W): 1 kept, 0 erased.

    Erases ``round(fraction * cells)`` distinct cells of a ``block`` grid per image (e.g. 16 blocks of
    16x16 at 128 px = 25%), so the erased fraction is exact rather than reduced by overlapping blocks.
    """
    batch, height, width = shape[0], shape[-2], shape[-1]
    rows, cols = -(-height // block), -(-width // block)
    cells = rows * cols
    n_erase = round(fraction * cells)
    order = torch.rand(batch, cells, generator=generator).argsort(dim=1)
    keep = torch.ones(batch, cells)
    keep.scatter_(1, order[:, :n_erase], 0.0)
    keep = keep.view(batch, 1, rows, cols)
    keep = keep.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)
    return keep[..., :height, :width]
