"""Networks: Inf-Net family, U-Net, coach; swappable heads; safetensors weights."""

from ssinfnet.models.backbones import BACKBONES, build_backbone
from ssinfnet.models.coach import Coach, random_block_mask
from ssinfnet.models.heads import HEAD_MODES, TransferReport, transfer_weights
from ssinfnet.models.infnet import InfNet
from ssinfnet.models.registry import build_model, list_models
from ssinfnet.models.unet import UNet
from ssinfnet.models.weights import load_model, load_state_dict, save_model, save_state_dict

__all__ = [
    "BACKBONES", "HEAD_MODES", "Coach", "InfNet", "TransferReport", "UNet", "build_backbone", "build_model",
    "list_models", "load_model", "load_state_dict", "random_block_mask", "save_model", "save_state_dict",
    "transfer_weights",
]
