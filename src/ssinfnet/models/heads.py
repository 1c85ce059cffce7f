"""Swappable output heads and what every segmentation network shares.

A network = body (backbone, decoder: transferable) + heads (the last conv of each side output). The
same body serves segmentation (``num_classes`` logits per side output) and self-supervised
inpainting (linear heads that rebuild the ``in_channels`` input at each side output), so inpainting
weights move into a segmentation network with :func:`transfer_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

HEAD_MODES = ("segmentation", "reconstruction")

#: Networks see (x - mean) / std of their [0, 1] input; recorded in every weights sidecar.
NORMALISATION = {"input_range": [0.0, 1.0], "mean": 0.5, "std": 0.25}


@dataclass(frozen=True)
class HeadSpec:
    """One side output: features it reads, conv kernel, and whether it exists in reconstruction mode."""

    in_features: int
    kernel_size: int = 1
    segmentation_channels: int | None = None  # None: num_classes
    reconstructs: bool = True


class SegmentationNetwork(nn.Module):
    """Base of every network: input standardisation, padding to any size, swappable heads.

    Subclasses set ``self.head_specs`` (ordered name -> :class:`HeadSpec`) then call ``_build_heads()``,
    and define ``main_output``, ``size_divisor`` and ``forward_padded(x) -> dict`` (logits at the padded
    input size, from a standardised input whose sides are multiples of ``size_divisor``).
    """

    size_divisor = 32
    main_output: str

    def __init__(self, in_channels: int, num_classes: int, config: dict):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.config = dict(config)
        self.normalisation = dict(NORMALISATION)
        self.head_mode = "segmentation"
        self.heads = nn.ModuleDict()

    def _build_heads(self) -> None:
        """Called by subclasses once ``head_specs`` is known, and by :meth:`use_heads`."""
        heads = {}
        for name, spec in self.head_specs.items():
            if self.head_mode == "reconstruction":
                if not spec.reconstructs:
                    continue
                out = self.in_channels
            else:
                out = spec.segmentation_channels or self.num_classes
            heads[name] = nn.Conv2d(spec.in_features, out, spec.kernel_size, padding=spec.kernel_size // 2)
        self.heads = nn.ModuleDict(heads)

    def use_heads(self, mode: str) -> "SegmentationNetwork":
        """Swap to fresh ``"segmentation"`` or ``"reconstruction"`` heads (body weights untouched).

        A no-op when the network already has heads of that mode. Returns the network for chaining.
        """
        if mode not in HEAD_MODES:
            raise ValueError(f"head mode must be one of {HEAD_MODES}, not {mode!r}")
        if mode != self.head_mode:
            device = next(self.parameters()).device
            self.head_mode = mode
            self._build_heads()
            self.heads.to(device)
        return self

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.heads.keys())

    def found_map(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) in [0, 1]: how much each pixel is already "found" by a coarse map.

        Reverse attention weights features by ``1 - found``. One class: sigmoid (Inf-Net). Several
        classes: 1 - P(background) (softmax). Reconstruction keeps Inf-Net's sigmoid form on the
        channel mean, as the paper keeps everything but the last layers unchanged.
        """
        if self.head_mode == "segmentation" and logits.shape[1] > 1:
            return 1.0 - torch.softmax(logits.float(), dim=1)[:, :1].to(logits.dtype)
        return torch.sigmoid(logits.mean(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        d = self.size_divisor
        pad_h, pad_w = -height % d, -width % d
        # Zero padding in [0, 1] space = air / no prior, the natural surround of a CT slice.
        x = F.pad(x, (0, pad_w, 0, pad_h))
        x = (x - self.normalisation["mean"]) / self.normalisation["std"]
        outputs = self.forward_padded(x)
        return {name: out[..., :height, :width] for name, out in outputs.items()}



def upsample_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@dataclass
class TransferReport:
    copied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def transfer_weights(src: nn.Module, dst: nn.Module) -> TransferReport:
    """Copy every body tensor (parameters and BN buffers) of ``src`` into ``dst``; never the heads.

    Every tensor not copied is listed in ``skipped`` with the reason (head, missing on one side, or a
    shape mismatch such as a 1-channel stem into a 2-channel network), so nothing is silently lost.
    """
    report = TransferReport()
    src_state = src.state_dict()
    dst_state = dst.state_dict()
    with torch.no_grad():
        for name, src_tensor in src_state.items():
            if name.startswith("heads."):
                report.skipped[name] = "head (heads are never transferred)"
            elif name not in dst_state:
                report.skipped[name] = "not in the destination network"
            elif dst_state[name].shape != src_tensor.shape:
                report.skipped[name] = (
                    f"shape mismatch: source {tuple(src_tensor.shape)} vs destination {tuple(dst_state[name].shape)}"
                )
            else:
                dst_state[name].copy_(src_tensor)
                report.copied.append(name)
        for name in dst_state:
            if name not in src_state and not name.startswith("heads."):
                report.skipped[name] = "not in the source network (left as initialised)"
    return report
