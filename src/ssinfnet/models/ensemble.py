"""Several trained networks (e.g. the models of a cross-validation's folds) used as one, with optional
left-right flip test-time augmentation.

The members' *probabilities* are averaged (sigmoid for one class, softmax for several), as nnU-Net
ensembles folds; ``forward`` returns that mean as logits (``logit(p)``, ``log(p)``) so that whatever
applies the sigmoid or softmax afterwards (the inference pipeline, validation) gets the mean back
unchanged. Training augments with left-right flips, so the mirrored image is a view the networks know.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ssinfnet.models.weights import input_contrast

_EPS = 1e-6  # keeps logit(p) and log(p) finite where the mean probability is 0 or 1


class Ensemble(nn.Module):
    """``members``: networks with the same ``in_channels`` / ``num_classes``; ``flip``: also predict the
    mirrored image and mirror the prediction back (doubles the cost)."""

    main_output = "out"
    output_names = ("out",)
    head_mode = "segmentation"

    def __init__(self, members: Sequence[nn.Module], flip: bool = False):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shapes = {(m.in_channels, m.num_classes) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members must take and give the same channels, got {sorted(shapes)}")
        contrasts = {input_contrast(m) for m in members}
        if len(contrasts) != 1:
            raise ValueError(f"ensemble members were trained on different input contrasts: {sorted(map(str, contrasts))}")
        if any(getattr(m, "head_mode", "segmentation") != "segmentation" for m in members):
            raise ValueError("ensemble members need segmentation heads")
        self.members = nn.ModuleList(members)
        self.flip = bool(flip)
        self.in_channels, self.num_classes = shapes.pop()
        self.input_contrast = contrasts.pop()

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        views = [(x, False), (torch.flip(x, dims=(-1,)), True)] if self.flip else [(x, False)]
        total = None
        for member in self.members:
            for view, mirrored in views:
                logits = member(view)[member.main_output].float()
                prob = torch.sigmoid(logits) if self.num_classes == 1 else torch.softmax(logits, dim=1)
                prob = torch.flip(prob, dims=(-1,)) if mirrored else prob
                total = prob if total is None else total + prob
        return total / (len(self.members) * len(views))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        prob = self.probabilities(x).clamp(_EPS, 1 - _EPS)
        logits = torch.logit(prob) if self.num_classes == 1 else torch.log(prob)
        return {"out": logits}


def members_of(model: nn.Module) -> list[nn.Module]:
    """The networks an (ensemble) model consists of: its members, or the model itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]
