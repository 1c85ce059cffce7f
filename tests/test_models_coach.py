"""Coach masks and warm-up block masks: 1 = kept, 0 = erased, with the configured erased fraction."""

from __future__ import annotations

import pytest
import torch

from ssinfnet.models import build_model, random_block_mask


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_hard_coach_mask_erases_the_configured_fraction(fraction):
    torch.manual_seed(0)
    coach = build_model("coach", width=8, erase_fraction=fraction).eval()
    with torch.no_grad():
        keep = coach(torch.rand(3, 1, 128, 96), hard=True)
    assert keep.shape == (3, 1, 128, 96)
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    erased = 1 - keep.mean(dim=(1, 2, 3))
    cells = (128 // 16) * (96 // 16)
    assert torch.allclose(erased, torch.full((3,), round(fraction * cells) / cells))
    assert abs(erased.mean().item() - fraction) < 0.5 / cells + 1e-6


def test_soft_mask_is_differentiable_and_agrees_with_the_hard_mask():
    torch.manual_seed(0)
    coach = build_model("coach", width=8, erase_fraction=0.25)
    x = torch.rand(2, 1, 64, 80)
    soft = coach(x)
    assert ((soft > 0) & (soft < 1)).all()
    soft.mean().backward()
    assert all(p.grad is not None for p in coach.parameters())
    with torch.no_grad():
        hard = coach(x, hard=True)
    assert torch.equal(hard, (soft.detach() > 0.5).float())


def test_coach_handles_sizes_that_are_not_whole_cells():
    coach = build_model("coach", width=8, erase_fraction=0.5).eval()
    with torch.no_grad():
        keep = coach(torch.rand(1, 1, 50, 70), hard=True)
    assert keep.shape == (1, 1, 50, 70)


def test_random_block_mask_erases_whole_blocks_at_the_fraction():
    g = torch.Generator().manual_seed(0)
    keep = random_block_mask((4, 2, 128, 128), block=16, fraction=0.25, generator=g)
    assert keep.shape == (4, 1, 128, 128)
    assert torch.allclose(1 - keep.mean(dim=(1, 2, 3)), torch.full((4,), 0.25))
    cells = keep.view(4, 8, 16, 8, 16)
    assert torch.equal(cells.amin(dim=(2, 4)), cells.amax(dim=(2, 4)))  # constant within every block
    again = random_block_mask((4, 2, 128, 128), block=16, fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(keep, again)
    assert not torch.equal(keep[0], keep[1])
