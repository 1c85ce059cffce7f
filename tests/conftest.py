"""Shared fixtures. Tests are small: tiny images, a few steps, one torch thread (2-core CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSINFNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the checkout; tests that need it skip when it is absent."""
    if not (SHARED_DATA / "covid-semiseg").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set SSINFNET_SHARED_DATA)")
    return SHARED_DATA


def pytest_collection_modifyitems(items):
    """The longest tests first, the full demo (about 10 min on one core) before all: `make test`'s
    two workers (`--dist worksteal`) start on the two halves of this order, and a worker that runs out
    takes pending tests from the other, so the demo runs beside everything else instead of after it."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "test_full_demo" not in item.name))
