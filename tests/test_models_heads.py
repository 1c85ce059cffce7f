"""Head swap (segmentation <-> reconstruction) and body transfer between networks."""

from __future__ import annotations

import pytest
import torch

from ssinfnet.models import build_model, transfer_weights

TINY_INFNET = dict(width=8, rfb_channels=4)


@pytest.mark.parametrize("name,config", [("infnet", TINY_INFNET), ("multi_infnet", TINY_INFNET), ("multi_unet", dict(width=8))])
def test_reconstruction_heads_rebuild_the_input_channels(name, config):
    model = build_model(name, **config).use_heads("reconstruction").eval()
    with torch.no_grad():
        out = model(torch.rand(2, model.in_channels, 40, 72))
    assert "edge" not in out and model.main_output in out
    assert all(o.shape == (2, model.in_channels, 40, 72) for o in out.values())
    assert model.use_heads("segmentation").output_names[-1] in ("edge", "out")


def body_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("heads.")}


@pytest.mark.parametrize("src_name,dst_name,config", [
    ("infnet", "infnet", TINY_INFNET),
    ("multi_infnet", "multi_infnet", TINY_INFNET),
    ("multi_unet", "multi_unet", dict(width=8)),
])
def test_inpainter_body_moves_bit_identically_into_the_segmenter(src_name, dst_name, config):
    torch.manual_seed(0)
    inpainter = build_model(src_name, **config).use_heads("reconstruction")
    torch.manual_seed(1)
    segmenter = build_model(dst_name, **config)
    before_heads = {k: v.clone() for k, v in segmenter.heads.state_dict().items()}

    report = transfer_weights(inpainter, segmenter)

    src_body, dst_body = body_state(inpainter), body_state(segmenter)
    assert src_body.keys() == dst_body.keys()
    assert all(torch.equal(src_body[k], dst_body[k]) for k in src_body)
    assert sorted(report.copied) == sorted(src_body)
    assert all(k.startswith("heads.") for k in report.skipped)
    assert all(torch.equal(before_heads[k], v) for k, v in segmenter.heads.state_dict().items())


def test_shape_mismatches_are_reported_not_ignored():
    single = build_model("infnet", **TINY_INFNET)
    multi = build_model("multi_infnet", **TINY_INFNET)
    stem = "backbone.stem.0.0.weight"
    before = multi.state_dict()[stem].clone()
    report = transfer_weights(single, multi)
    assert "shape mismatch" in report.skipped[stem]
    assert torch.equal(multi.state_dict()[stem], before)
    assert len(report.copied) > 100


def test_missing_tensors_are_reported_on_both_sides():
    r18 = build_model("infnet", backbone="resnet18", **TINY_INFNET)
    r34 = build_model("infnet", backbone="resnet34", **TINY_INFNET)
    report = transfer_weights(r18, r34)
    extra_block = "backbone.layer3.5.body.0.0.weight"  # resnet34 has six blocks in stage 3, resnet18 two
    assert report.skipped[extra_block].startswith("not in the source")


def test_unknown_head_mode_is_refused():
    with pytest.raises(ValueError):
        build_model("unet", width=8).use_heads("classification")


def test_reverse_attention_looks_away_from_what_is_found():
    single = build_model("infnet", **TINY_INFNET)
    multi = build_model("multi_infnet", **TINY_INFNET)
    assert torch.allclose(single.found_map(torch.tensor([[[[-20.0, 20.0]]]])), torch.tensor([[[[0.0, 1.0]]]]), atol=1e-6)
    # Several classes: "found" = 1 - P(background); a confident GGO or consolidation pixel is found.
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]]).T.reshape(1, 3, 1, 3)
    assert torch.allclose(multi.found_map(logits), torch.tensor([[[[0.0, 1.0, 1.0]]]]), atol=1e-3)
