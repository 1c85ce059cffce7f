"""Every loss against values worked out by hand on tiny tensors."""

import math

import pytest
import torch

from ssinfnet.training import losses

LN2 = math.log(2.0)


def test_boundary_weight_flat_mask_is_one_and_isolated_pixel_is_heavy():
    assert torch.equal(losses.boundary_weight(torch.zeros(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    # One positive pixel: the 31x31 mean around it is 1/961 (zero padding counts).
    weight = losses.boundary_weight(torch.ones(1, 1, 1, 1))
    assert weight.item() == pytest.approx(1 + 5 * (1 - 1 / 961))


def test_boundary_weight_equals_direct_31x31_pool():
    mask = (torch.rand(2, 1, 40, 37, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    direct = 1 + 5 * (torch.nn.functional.avg_pool2d(mask, 31, stride=1, padding=15) - mask).abs()
    assert torch.allclose(losses.boundary_weight(mask), direct, atol=1e-6)


def test_structure_loss_empty_mask_hand_computed():
    # logits 0 -> p = 0.5 everywhere, weights 1: wBCE = ln 2; wIoU = 1 - (0 + 1) / (4.5 - 0 + 1).
    loss = losses.structure_loss(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3))
    assert loss.item() == pytest.approx(LN2 + 1 - 1 / 5.5)


def test_structure_loss_full_mask_uses_boundary_weight():
    # 2x2 mask of ones: every pixel's 31x31 mean is 4/961, w = 1 + 5 (1 - 4/961) everywhere.
    w = 1 + 5 * (1 - 4 / 961)
    inter, union = 0.5 * 4 * w, 1.5 * 4 * w
    expected = LN2 + 1 - (inter + 1) / (union - inter + 1)
    loss = losses.structure_loss(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_focal_terms_hand_computed():
    # p = 0.5, target 1: -alpha (1 - 0.5)^2 log 0.5 = 0.25 * 0.25 * ln 2; target 0 gets 1 - alpha = 0.75.
    terms = losses.focal_terms(torch.zeros(2), torch.tensor([1.0, 0.0]), alpha=0.25, gamma=2.0)
    assert terms.tolist() == pytest.approx([0.0625 * LN2, 0.75 * 0.25 * LN2])
    # gamma 0 and no alpha weighting is plain BCE.
    logits = torch.tensor([2.0, -1.0])
    plain = losses.focal_terms(logits, torch.tensor([1.0, 1.0]), alpha=-1, gamma=0.0)
    assert plain.tolist() == pytest.approx([math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(1.0))])


def test_structure_loss_with_focal_replaces_bce():
    focal = losses.pixel_terms({"focal": {"alpha": 0.25, "gamma": 2.0}})
    loss = losses.structure_loss(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), focal)
    # Negatives at p = 0.5: 0.75 * 0.25 * ln 2 each; IoU term unchanged.
    assert loss.item() == pytest.approx(0.75 * 0.25 * LN2 + 1 - 1 / 5.5)


def test_edge_target_is_morphological_gradient():
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 1:4, 1:4] = 1
    edge = losses.edge_target(mask)
    expected = torch.ones(1, 1, 5, 5)
    expected[..., 2, 2] = 0  # the only pixel whose 3x3 neighbourhood is all lesion
    assert torch.equal(edge, expected)


def test_infection_loss_sums_side_outputs_and_edge_bce():
    outputs = {"S_g": torch.zeros(1, 1, 3, 3), "S_2": torch.zeros(1, 1, 3, 3), "edge": torch.zeros(1, 1, 3, 3)}
    loss = losses.infection_loss(outputs, torch.zeros(1, 3, 3, dtype=torch.long))
    assert loss.item() == pytest.approx(2 * (LN2 + 1 - 1 / 5.5) + LN2)


def test_multiclass_loss_one_hot_bce_skips_edge():
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 2, 0, 1] = 3.0  # confident and right for the consolidation pixel
    labels = torch.tensor([[[0, 2]]])
    outputs = {"out": logits, "edge": torch.zeros(1, 1, 1, 2)}
    expected = (5 * LN2 + math.log(1 + math.exp(-3.0))) / 6
    assert losses.multiclass_loss(outputs, labels).item() == pytest.approx(expected)


def test_build_loss_picks_the_stage_loss_and_the_pixel_terms_from_the_config():
    outputs = {"S_g": torch.zeros(2, 1, 3, 3), "edge": torch.zeros(2, 1, 3, 3)}
    labels = torch.zeros(2, 3, 3, dtype=torch.long)
    labels[0, 1, 1] = 2  # consolidation is infection for the single stage
    focal = {"focal": {"alpha": 0.25, "gamma": 2.0}}
    single = losses.build_loss("single", {"focal": None})
    assert torch.equal(single(outputs, labels), losses.infection_loss(outputs, (labels > 0).long()))
    assert torch.equal(losses.build_loss("single", focal)(outputs, labels),
                       losses.infection_loss(outputs, labels, losses.pixel_terms(focal)))
    multi = {"out": torch.zeros(2, 3, 3, 3)}
    assert torch.equal(losses.build_loss("multi", focal)(multi, labels),
                       losses.multiclass_loss(multi, labels, losses.pixel_terms(focal)))
    assert not torch.equal(losses.build_loss("multi", focal)(multi, labels), losses.multiclass_loss(multi, labels))
    # Per-item weights: the first slice counts 1, the second (a negative, say) 0.5.
    weighted = single(outputs, labels, torch.tensor([1.0, 0.5]))
    rows = [losses.infection_loss({k: v[i:i + 1] for k, v in outputs.items()}, labels[i:i + 1]) for i in (0, 1)]
    assert float(weighted) == pytest.approx(float(rows[0] / 2 + rows[1] * 0.5 / 2))
    with pytest.raises(ValueError, match="no loss for stage"):
        losses.build_loss("coach", {})


def test_reconstruction_loss_erased_plus_small_kept_term():
    target = torch.ones(1, 1, 1, 4)
    rebuilt = torch.tensor([[[[0.0, 0.5, 1.0, 0.0]]]])
    keep = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    # erased pixels: errors 0 and 1 -> 0.5; kept: 1 and 0.25 -> 0.625.
    loss = losses.reconstruction_loss(rebuilt, target, keep, kept_weight=0.01)
    assert loss.item() == pytest.approx(0.5 + 0.01 * 0.625, rel=1e-5)
