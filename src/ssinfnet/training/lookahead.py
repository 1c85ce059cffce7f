"""Lookahead (Zhang et al. 2019): k fast steps of any optimiser, then one slow step.

Every ``k`` inner steps the slow weights move ``alpha`` of the way to the fast weights and the fast
weights are reset onto them. The slow weights and the step counter are in ``state_dict()`` so a
resumed run continues the same trajectory.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


class Lookahead:
    """Wraps ``inner``; exposes ``param_groups`` so learning-rate schedules reach the inner optimiser."""

    def __init__(self, inner: torch.optim.Optimizer, k: int = 5, alpha: float = 0.5):
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError(f"Lookahead needs k >= 1 and 0 < alpha <= 1, got k={k}, alpha={alpha}")
        self.inner = inner
        self.k = int(k)
        self.alpha = float(alpha)
        self.steps = 0
        self.slow = [[p.detach().clone() for p in group["params"]] for group in inner.param_groups]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = self.inner.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            for group, slow_params in zip(self.inner.param_groups, self.slow):
                for fast, slow in zip(group["params"], slow_params):
                    slow.add_(fast.detach() - slow, alpha=self.alpha)
                    fast.copy_(slow)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "inner": self.inner.state_dict(),
            "slow": [[t.clone() for t in group] for group in self.slow],
            "steps": self.steps,
            "k": self.k,
            "alpha": self.alpha,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        for group, saved in zip(self.slow, state["slow"]):
            for slow, value in zip(group, saved):
                slow.copy_(value)
        self.steps = int(state["steps"])
        self.k = int(state["k"])
        self.alpha = float(state["alpha"])
