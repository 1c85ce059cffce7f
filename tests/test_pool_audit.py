"""The AUC ceiling arithmetic of benchmarks/pool_audit.py against hand-computed values and scikit-learn."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pool_audit import SOURCE, binary_auc, pooled_ceiling  # noqa: E402


@pytest.mark.parametrize(("p_covid", "p_noncovid", "expected"),
                         [(1.0, 0.0, 1.0), (0.5, 0.5, 0.5), (0.0, 1.0, 0.0), (0.5, 1 / 3, 7 / 12), (0.5, 0.0, 0.75)])
def test_binary_auc_by_hand(p_covid, p_noncovid, expected):
    assert binary_auc(p_covid, p_noncovid) == pytest.approx(expected)


def test_pooled_ceiling_matches_roc_auc_of_the_scores_it_assumes():
    # 2 + 2 audited-source slices at p_covid = p_noncovid = 0.5, 2 + 2 perfectly separable others:
    # COVID scores 1, 0 (audited), 1, 1; NonCOVID 1, 0 (audited), 0, 0.
    counts = Counter({(SOURCE, "COVID"): 2, (SOURCE, "NonCOVID"): 2, ("other", "COVID"): 2, ("other", "NonCOVID"): 2})
    expected = roc_auc_score([1, 1, 1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 1, 0, 0, 0])
    assert expected == pytest.approx(0.75)
    assert pooled_ceiling(0.5, 0.5, counts) == pytest.approx(expected)
