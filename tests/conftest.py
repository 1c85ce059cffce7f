"""Shared fixtures. Tests are small: tiny images, a few steps, one torch thread (2-core CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SSINFNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _test_ledger(tmp_path_factory):
    """Scorings of the real test split (tests/test_bundled_model.py) go to a ledger of this session, never
    the committed results/test-ledger.csv; subprocesses inherit it."""
    from ssinfnet.evaluation.ledger import LEDGER_ENV

    ledger = tmp_path_factory.mktemp("ledger") / "test-ledger.csv"
    previous = os.environ.get(LEDGER_ENV)
    os.environ[LEDGER_ENV] = str(ledger)
    yield ledger
    if previous is None:
        os.environ.pop(LEDGER_ENV, None)
    else:
        os.environ[LEDGER_ENV] = previous


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
    """Every test on the real data (the ``shared_data`` fixture) is marked ``realdata`` (so `make check`,
    ``-m "not slow and not realdata"``, leaves it out). The full demo first, the other slow tests last:
    `make test`'s two workers (`--dist worksteal`) start on the two halves of this order. The one running
    the demo keeps only the two tests queued after it; the other runs its half, slow tests included, and
    takes the rest of the first half from the tail of the demo worker's queue. So the demo runs beside
    everything else."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)

    def rank(item):
        if "test_full_demo" in item.name:
            return 0
        return 2 if item.get_closest_marker("slow") else 1

    items.sort(key=rank)
