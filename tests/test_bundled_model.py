"""The bundled default model loads offline and reproduces the test metrics in its model card."""

import json
from pathlib import Path

import pandas as pd
import pytest

from ssinfnet.cli import main
from ssinfnet.inference.predictor import DEFAULT_WEIGHTS, default_pipeline

TOLERANCE = 0.005
COMMITTED_LEDGER = Path(__file__).resolve().parents[1] / "results" / "test-ledger.csv"


@pytest.fixture(scope="module")
def card_metrics() -> dict:
    if not (DEFAULT_WEIGHTS / "metrics.json").is_file():
        pytest.skip(f"no bundled model with metrics.json in {DEFAULT_WEIGHTS}")
    return json.loads((DEFAULT_WEIGHTS / "metrics.json").read_text())


def test_bundled_model_loads_offline(card_metrics):
    pipeline = default_pipeline()
    assert pipeline.multi is not None and pipeline.size == card_metrics["model"]["size"]


def test_bundled_model_reproduces_its_model_card(card_metrics, shared_data, tmp_path, _test_ledger):
    out = tmp_path / "eval"
    committed = COMMITTED_LEDGER.read_bytes()
    recorded = _test_ledger.read_text().count("\n") if _test_ledger.exists() else 1  # a new ledger gets a header
    # the card's numbers are the networks' own (Inf-Net benchmark protocol, fp32), as evaluate gave them then
    assert main(["evaluate", "--data", str(shared_data / "covid-semiseg"), "--split", "test", "--raw",
                 "--precision", "fp32", "--pipeline", str(DEFAULT_WEIGHTS), "--out", str(out),
                 "--purpose", "test suite: the bundled model reproduces its card"]) == 0
    # a scoring of the test split: one row in this session's ledger, none in the committed one
    assert _test_ledger.read_text().count("\n") == recorded + 1
    assert COMMITTED_LEDGER.read_bytes() == committed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prediction"] == "raw"
    metrics = summary["metrics"]
    if card_metrics["scoring_rule"] != summary["scoring_rule"]:
        assert card_metrics["scoring_rule"] == "present-only/1", card_metrics["scoring_rule"]
        metrics = present_only(pd.read_csv(out / "per_image.csv"), metrics)
    for group, metric in (("infection", "f1"), ("GGO", "f1"), ("consolidation", "f1"), ("Overall", "f1"),
                          ("infnet", "dice")):
        assert metrics[group][metric]["mean"] == pytest.approx(card_metrics["metrics"][group][metric]["mean"],
                                                               abs=TOLERANCE), (group, metric)


def present_only(per_image, metrics: dict) -> dict:
    """The F1 means of the present-only/1 rule that the card was scored under, from a paper/2 evaluation: a
    class's F1 over the images whose truth holds it, i.e. where its fp_area is empty; Overall from those."""
    out = {**metrics}
    for group in ("infection", "background", "GGO", "consolidation"):
        out[group] = {"f1": {"mean": per_image.loc[per_image[f"{group}.fp_area"].isna(), f"{group}.f1"].mean()}}
    out["Overall"] = {"f1": {"mean": sum(out[c]["f1"]["mean"] for c in ("background", "GGO", "consolidation")) / 3}}
    return out


def test_bundled_card_is_rendered_from_its_facts_and_ships_no_machine_paths(card_metrics):
    import re

    from ssinfnet.workflows.model_card import render_card

    facts = json.loads((DEFAULT_WEIGHTS / "card_facts.json").read_text())
    card = (DEFAULT_WEIGHTS / "MODEL_CARD.md").read_text()
    assert card == render_card(facts)  # no hand-written statement in the card
    assert facts["metrics"] == card_metrics
    stages = facts["stages"].values()  # the card says what the pretraining facts say, nothing more
    assert ("Initialisation: random (not pre-trained)" in card) == any(s["pretraining"] is None for s in stages)
    assert ("pretraining on" in card) == any(s["pretraining"] is not None for s in stages)
    for name in ("pipeline.json", "metrics.json", "card_facts.json", "MODEL_CARD.md"):
        text = (DEFAULT_WEIGHTS / name).read_text()
        assert not re.search(r'"/(root|home|work|tmp|Users)/', text) and "ssinfnet-work/" not in text, name
