"""Losses of the three training objectives (method notes sections 1-3).

All functions take logits (never probabilities) so that BCE runs through the numerically stable
``binary_cross_entropy_with_logits``. A supervised stage's loss is built from its config section by
:func:`build_loss`: the stage's loss (:data:`STAGE_LOSSES`: structure loss + edge BCE for the single
stage, one-hot pixel loss for the multi stage) with per-pixel terms from :data:`PIXEL_TERMS` (BCE, or
focal loss when ``focal`` is set), as a per-item weighted mean (:func:`weighted_loss`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

#: ``(logits, target) -> per-pixel loss`` of the same shape.
PixelTerms = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Inf-Net's boundary weighting: pixels whose 31x31 neighbourhood disagrees with them count up to 6x.
BOUNDARY_KERNEL = 31
BOUNDARY_GAIN = 5.0


def boundary_weight(mask: torch.Tensor) -> torch.Tensor:
    """``1 + 5 * |avg_pool31(mask) - mask|`` for a float (B, C, H, W) mask.

    Zero padding counts in the average (``count_include_pad``), as in Inf-Net's released code, so
    lesions touching the image border are weighted as boundaries there too. The 31x31 box is applied
    as a 31x1 then a 1x31 pass (the same sums, 15x fewer operations: the direct pool dominated a
    CPU training step).
    """
    half = BOUNDARY_KERNEL // 2
    pooled = F.avg_pool2d(mask, (BOUNDARY_KERNEL, 1), stride=1, padding=(half, 0))
    pooled = F.avg_pool2d(pooled, (1, BOUNDARY_KERNEL), stride=1, padding=(0, half))
    return 1.0 + BOUNDARY_GAIN * (pooled - mask).abs()


def focal_terms(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Per-pixel sigmoid focal loss (Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``alpha`` weighs positives, ``1 - alpha`` negatives; a negative ``alpha`` switches weighting off.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss


def bce_terms(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def structure_loss(
    logits: torch.Tensor, mask: torch.Tensor, pixel: PixelTerms = bce_terms, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted IoU + weighted per-pixel terms (``pixel``: BCE or focal) of one side output; mean over
    the batch.

    ``logits`` and ``mask`` are (B, 1, H, W); the ``+1`` smoothing of the IoU is Inf-Net's and keeps
    empty masks finite. ``weight``: :func:`boundary_weight` of ``mask`` when already computed.
    """
    weight = boundary_weight(mask) if weight is None else weight
    weighted_pixel = (weight * pixel(logits, mask)).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weight).sum(dim=(2, 3))
    union = ((prob + mask) * weight).sum(dim=(2, 3))
    weighted_iou = 1 - (inter + 1) / (union - inter + 1)
    return (weighted_pixel + weighted_iou).mean()


def edge_target(mask: torch.Tensor) -> torch.Tensor:
    """Boundary of a binary (B, 1, H, W) mask: morphological gradient (3x3 dilation - erosion)."""
    dilated = F.max_pool2d(mask, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-mask, 3, stride=1, padding=1)
    return dilated - eroded


def infection_loss(
    outputs: dict[str, torch.Tensor], labels: torch.Tensor, pixel: PixelTerms = bce_terms
) -> torch.Tensor:
    """Single-stage loss: structure loss summed over every side output + BCE on the edge output.

    ``labels`` is (B, H, W) int64; every class above 0 (GGO, consolidation) is infection. Works for
    Inf-Net (S_g, S_4, S_3, S_2, edge) and for one-output networks (U-Net's ``out``).
    """
    mask = (labels > 0).unsqueeze(1).float()
    weight = boundary_weight(mask)  # the same for every side output: compute once
    total = labels.new_zeros((), dtype=torch.float32)
    for name, logits in outputs.items():
        if name == "edge":
            total = total + F.binary_cross_entropy_with_logits(logits.float(), edge_target(mask))
        else:
            total = total + structure_loss(logits.float(), mask, pixel, weight)
    return total


def multiclass_loss(
    outputs: dict[str, torch.Tensor], labels: torch.Tensor, pixel: PixelTerms = bce_terms
) -> torch.Tensor:
    """Multi-stage loss: per-pixel terms (BCE or focal) on one-hot targets, summed over side outputs
    (edge skipped).

    ``labels`` is (B, H, W) int64 with values ``0 .. C-1``; logits are (B, C, H, W).
    """
    total = labels.new_zeros((), dtype=torch.float32)
    for name, logits in outputs.items():
        if name == "edge":
            continue
        one_hot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).float()
        total = total + pixel(logits.float(), one_hot).mean()
    return total


def weighted_loss(outputs: dict[str, torch.Tensor], mask: torch.Tensor, weight: torch.Tensor | None,
                  loss_fn) -> torch.Tensor:
    """``loss_fn`` (a batch mean) as a per-item weighted mean: items of equal weight (labeled slices,
    negatives) are scored together and each group counts ``weight x items / batch``."""
    if weight is None:
        return loss_fn(outputs, mask)
    weight = weight.to(torch.float32)
    total = mask.new_zeros((), dtype=torch.float32)
    for value in torch.unique(weight):
        rows = (weight == value).nonzero(as_tuple=True)[0].to(mask.device)
        part = loss_fn({name: out[rows] for name, out in outputs.items()}, mask[rows])
        total = total + part * float(value) * len(rows) / len(weight)
    return total


#: A supervised stage's loss of (outputs, labels, pixel terms), by stage.
STAGE_LOSSES = {"single": infection_loss, "multi": multiclass_loss}
#: Per-pixel terms by name; a stage section picks ``focal`` when its ``focal`` setting is a mapping.
PIXEL_TERMS = {"bce": bce_terms, "focal": focal_terms}


def pixel_terms(section: Mapping[str, Any]) -> PixelTerms:
    """The per-pixel terms a stage section asks for: focal loss with its ``alpha``/``gamma``, else BCE."""
    focal = section.get("focal")
    if focal is None:
        return PIXEL_TERMS["bce"]
    return functools.partial(PIXEL_TERMS["focal"], alpha=float(focal["alpha"]), gamma=float(focal["gamma"]))


def build_loss(stage: str, section: Mapping[str, Any]) -> Callable[..., torch.Tensor]:
    """The loss of ``stage`` (a key of :data:`STAGE_LOSSES`) configured by its section, as
    ``loss(outputs, labels, weight=None)``: the per-item ``weight`` mean of :func:`weighted_loss`."""
    if stage not in STAGE_LOSSES:
        raise ValueError(f"no loss for stage {stage!r} (known: {', '.join(STAGE_LOSSES)})")
    stage_loss = functools.partial(STAGE_LOSSES[stage], pixel=pixel_terms(section))

    def loss(outputs: dict[str, torch.Tensor], labels: torch.Tensor, weight: torch.Tensor | None = None):
        return weighted_loss(outputs, labels, weight, stage_loss)

    return loss


def reconstruction_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, kept_weight: float
) -> torch.Tensor:
    """Squared error on erased pixels + ``kept_weight`` x squared error on kept pixels.

    ``keep`` is (B, 1, H, W) in [0, 1] (1 = kept), soft for the coach; each term is a mean over the
    pixels it covers, so the erased fraction does not scale the loss. Squared error of [0, 1] images
    stays in [0, 1], which the coach's ``1 - L_rec`` assumes.
    """
    error = (reconstruction.float() - target.float()) ** 2
    erased = (1 - keep).expand_as(error)
    kept = keep.expand_as(error)
    eps = 1e-6
    erased_term = (error * erased).sum() / (erased.sum() + eps)
    kept_term = (error * kept).sum() / (kept.sum() + eps)
    return erased_term + kept_weight * kept_term
