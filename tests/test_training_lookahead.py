"""Lookahead follows its definition on a quadratic, and its state survives a checkpoint."""

import pytest
import torch

from ssinfnet.training.lookahead import Lookahead
from ssinfnet.training.runs import load_checkpoint, save_checkpoint


def quadratic_step(optimizer, w):
    optimizer.zero_grad()
    (0.5 * (w**2).sum()).backward()  # gradient = w, so SGD(lr) multiplies w by (1 - lr)
    optimizer.step()


def test_lookahead_matches_definition_on_quadratic():
    w0 = torch.tensor([1.0, -2.0])
    w = torch.nn.Parameter(w0.clone())
    opt = Lookahead(torch.optim.SGD([w], lr=0.1), k=5, alpha=0.5)
    for _ in range(3):
        quadratic_step(opt, w)
    assert torch.allclose(w.detach(), 0.9**3 * w0)  # fast weights move freely between syncs
    assert torch.allclose(opt.slow[0][0], w0)
    for _ in range(2):
        quadratic_step(opt, w)
    slow = w0 + 0.5 * (0.9**5 * w0 - w0)  # slow moves half way, fast is reset onto it
    assert torch.allclose(w.detach(), slow) and torch.allclose(opt.slow[0][0], slow)
    for _ in range(5):
        quadratic_step(opt, w)
    slow = slow + 0.5 * (0.9**5 * slow - slow)
    assert torch.allclose(w.detach(), slow)


def test_lookahead_state_roundtrip_continues_identically(tmp_path):
    def make():
        w = torch.nn.Parameter(torch.tensor([1.0, 3.0]))
        return w, Lookahead(torch.optim.SGD([w], lr=0.1, momentum=0.9), k=5, alpha=0.5)

    w, opt = make()
    for _ in range(7):
        quadratic_step(opt, w)
    save_checkpoint(tmp_path / "ckpt", {"w": w.detach(), "opt": opt.state_dict()})
    for _ in range(6):
        quadratic_step(opt, w)

    restored = load_checkpoint(tmp_path / "ckpt")
    w2, opt2 = make()
    with torch.no_grad():
        w2.copy_(restored["w"])
    opt2.load_state_dict(restored["opt"])
    assert opt2.steps == 7
    for _ in range(6):
        quadratic_step(opt2, w2)
    assert torch.equal(w.detach(), w2.detach())


def test_lookahead_rejects_bad_arguments():
    with pytest.raises(ValueError):
        Lookahead(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), k=0)
