"""Every registered segmentation network: output names and shapes at odd sizes, gradients everywhere."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from ssinfnet.errors import InputError
from ssinfnet.models import BACKBONES, build_backbone, build_model

TINY = dict(width=8)
TINY_INFNET = dict(width=8, rfb_channels=4)

SEGMENTATION_MODELS = [
    ("infnet", {**TINY_INFNET, "backbone": b}) for b in BACKBONES
] + [
    ("multi_infnet", TINY_INFNET),
    ("unet", TINY),
    ("multi_unet", TINY),
    ("unet", {**TINY, "in_channels": 2, "num_classes": 3}),
]


@pytest.mark.parametrize("name,config", SEGMENTATION_MODELS, ids=lambda v: v if isinstance(v, str) else v.get("backbone", ""))
def test_outputs_are_logits_at_input_size(name, config):
    torch.manual_seed(0)
    model = build_model(name, **config).eval()
    for height, width in [(64, 64), (353, 290), (33, 47)]:
        x = torch.rand(1, model.in_channels, height, width)
        with torch.no_grad():
            out = model(x)
        assert tuple(out) == model.output_names
        assert model.main_output in out
        for key, logits in out.items():
            channels = 1 if key == "edge" else model.num_classes
            assert logits.shape == (1, channels, height, width), (key, height, width)
            assert torch.isfinite(logits).all()


def test_registry_defaults_match_the_stages():
    assert build_model("infnet", **TINY_INFNET).output_names == ("S_g", "S_4", "S_3", "S_2", "edge")
    multi = build_model("multi_infnet", **TINY_INFNET)
    assert (multi.in_channels, multi.num_classes, multi.main_output) == (2, 3, "S_2")
    unet = build_model("multi_unet", **TINY)
    assert (unet.in_channels, unet.num_classes, unet.output_names) == (2, 3, ("out",))


def test_config_rebuilds_the_same_architecture():
    model = build_model("multi_infnet", backbone="resnet34", **TINY_INFNET)
    clone = build_model(model.name, **model.config)
    assert [(k, v.shape) for k, v in clone.state_dict().items()] == [(k, v.shape) for k, v in model.state_dict().items()]


@pytest.mark.parametrize("name,config", [("infnet", {**TINY_INFNET, "backbone": "res2net50"}),
                                          ("multi_infnet", TINY_INFNET), ("unet", TINY)])
def test_gradients_reach_every_parameter(name, config):
    torch.manual_seed(0)
    model = build_model(name, **config).train()
    out = model(torch.rand(2, model.in_channels, 64, 64))
    sum(o.square().mean() for o in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_pyramid_strides(backbone):
    net = build_backbone(backbone, in_channels=3, width=8).eval()
    with torch.no_grad():
        features = net(torch.rand(1, 3, 64, 96))
    assert [f.shape[-2:] for f in features] == [(64 // s, 96 // s) for s in (4, 8, 16, 32)]
    assert tuple(f.shape[1] for f in features) == net.channels


def test_unknown_names_are_input_errors():
    with pytest.raises(InputError, match="unknown model"):
        build_model("vgg")
    with pytest.raises(InputError, match="unknown backbone"):
        build_model("infnet", backbone="vgg16")
    with pytest.raises(InputError, match="bad config"):
        build_model("unet", depth=3)


def test_wrong_channel_count_is_refused():
    model = build_model("multi_unet", **TINY)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        model(torch.rand(1, 1, 32, 32))


def test_models_command_lists_every_model_with_parameters_and_outputs(capsys):
    from ssinfnet.models import cli, list_models

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["models", "--width", "8", "--json"])
    assert args.func(args) == 0

    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["model"] for r in rows} == set(list_models())
    assert {r["backbone"] for r in rows if r["model"] == "infnet"} == set(BACKBONES)
    by_name = {(r["model"], r["backbone"]): r for r in rows}
    assert by_name[("infnet", "resnet18")]["outputs"] == ["S_g", "S_4", "S_3", "S_2", "edge"]
    assert by_name[("multi_unet", "-")]["in_channels"] == 2
    assert all(r["parameters"] > 1000 for r in rows)
