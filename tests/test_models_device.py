"""The one device helper: what training's config check, the process group setup and the predictor use."""

import pytest
import torch

from ssinfnet.inference.predictor import Pipeline
from ssinfnet.models import build_model
from ssinfnet.models.speed import resolve_device
from ssinfnet.training import distributed


def test_names_resolve_to_devices():
    best = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device(None) == resolve_device("auto") == best
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")  # a torch.device is taken as it is


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CPU", "", 3])
def test_other_names_are_refused(name):
    with pytest.raises(ValueError, match="must be auto, cpu, mps, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ValueError, match="no CUDA device on this machine"):
        resolve_device("cuda:0")


def test_training_and_inference_resolve_devices_alike():
    assert distributed.setup("auto").device == resolve_device("auto")
    single = build_model("unet", width=4)
    assert Pipeline(single, size=32, device=None).device == resolve_device("auto")
    assert Pipeline(single, size=32, device="cpu").device == torch.device("cpu")
