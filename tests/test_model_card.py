"""Model cards are generated from the runs' records: every statement follows the facts."""

import json

import pytest
import torch

from ssinfnet.cli import main
from ssinfnet.models.registry import build_model
from ssinfnet.models.weights import save_model
from ssinfnet.workflows.model_card import card_facts, json_section, render_card, stage_facts_from_run

TRAINING = {"epochs": 60, "batch_size": 8, "optimizer": "adam", "lr": 0.001, "momentum": 0.0, "weight_decay": 0.0,
            "focal": None, "lookahead": None, "stop_at": None}
PRETRAIN = {"epochs": 12, "warmup_epochs": 4, "coach_epochs": 2, "inpaint_epochs": 2, "batch_size": 8, "lr": 0.1}


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def make_runs(root, unlabeled=1000, model=None):
    """A pretraining run and single/multi runs shaped like `ssinfnet pretrain/train` write them (absolute
    paths in run.json, as on the training machine); with ``model`` the runs also hold weights."""
    config = {"seed": 0, "data": {"size": 32, "val_fraction": 0.2, "unlabeled_limit": unlabeled},
              "model": {"name": "unet", "width": 4}, "multi_model": {"name": "multi_unet", "width": 4},
              "pretrain": PRETRAIN, "single": TRAINING, "multi": {**TRAINING, "focal": {"alpha": 0.25, "gamma": 2.0}}}
    pre, single, multi = root / "pretrain-single", root / "ssinfnet", root / "multi-u-net"
    write_json(pre / "config.json", config)
    write_json(pre / "run.json", {"kind": "pretrain", "inputs": {"data": ["/machine/unlabeled-ct", "/machine/covid-semiseg"]},
                                  "data": {"unlabeled_files": unlabeled, "labeled_images": {"samples": 40}}})
    for run, kind, init in ((single, "single", str(pre.resolve())), (multi, "multi", None)):
        write_json(run / "config.json", config)
        write_json(run / "run.json", {"kind": kind, "inputs": {"data": ["/machine/data/covid-semiseg"], "init": init},
                                      "data": {"train": {"samples": 40}, "val": {"samples": 10}}})
        write_json(run / "summary.json", {"stage": kind, "validation": {"val_dice": 0.5, "threshold": 0.4}})
        if model:
            torch.manual_seed(0)
            name = "unet" if kind == "single" else "multi_unet"
            save_model(build_model(name, width=4), run / "model.safetensors", extra={"size": 32})
    return single, multi


def card(root, unlabeled):
    single, multi = make_runs(root, unlabeled)
    stages = {"single": stage_facts_from_run(single), "multi": stage_facts_from_run(multi)}
    return render_card(card_facts(stages, {"threshold_source": "validation", "storage": "bf16"}, 0.4))


@pytest.mark.parametrize("unlabeled", [1000, 250])
def test_card_says_how_many_unlabeled_slices_the_pretraining_read(tmp_path, unlabeled):
    text = card(tmp_path, unlabeled)
    assert f"pretraining on {unlabeled} unlabeled CT slices + 40 labeled training slices" in text
    assert "4597" not in text
    assert "trained on 40 labeled slices, 10 more held out for validation" in text
    assert "/machine" not in text and str(tmp_path) not in text


def test_card_says_a_randomly_initialised_network_was_not_pre_trained(tmp_path):
    text = card(tmp_path, 1000)
    single, multi = (line for line in text.splitlines() if line.startswith(("- Single stage", "- Multi stage")))
    assert "self-supervised" in single and "Initialisation: random (not pre-trained)" in multi
    assert "focal loss on" in multi and "focal loss off" in single
    assert "Non-commercial use only" in text  # the labeled data set's terms, by its name


@pytest.mark.parametrize("epoch, said", [(8, "8 epochs, kept from a 12-epoch run."),
                                          (0, "0 epochs, kept from a 12-epoch run (its initial weights")])
def test_card_states_the_kept_epoch_a_run_was_fine_tuned_from(tmp_path, epoch, said):
    """train --init RUN/epochs/epoch-NNNN (a study's pretraining budgets): the facts are the run's, at that epoch."""
    single, _ = make_runs(tmp_path, 1000)
    kept = tmp_path / "pretrain-single" / "epochs" / f"epoch-{epoch:04d}"
    write_json(kept / "summary.json", {"stage": "pretrain", "run": "pretrain-single", "epoch": epoch})
    record = json.loads((single / "run.json").read_text())
    record["inputs"]["init"] = str(kept.resolve())
    write_json(single / "run.json", record)
    facts = stage_facts_from_run(single)["pretraining"]
    assert (facts["epochs"], facts["run_epochs"], facts["unlabeled_slices"]) == (epoch, 12, 1000)
    text = render_card(card_facts({"single": stage_facts_from_run(single)}, {"storage": "bf16"}, 0.4))
    assert said in text


@pytest.mark.parametrize("mined_from", [0, 160])
def test_card_states_the_drawn_negatives_and_pseudo_labels_as_configured(tmp_path, mined_from):
    single, _ = make_runs(tmp_path, 1000)
    config = json.loads((single / "config.json").read_text())
    config["data"]["heldout_fraction"] = 0.2
    config["negatives"] = {"weight": 0.5, "per_epoch": 40, "mined_from": mined_from}
    config["pseudo"] = {"weight": 0.5, "per_epoch": 40}
    write_json(single / "config.json", config)
    info = json.loads((single / "run.json").read_text())
    info["inputs"].update(negatives=["/machine/unlabeled-ct"], pseudo=["/machine/pseudo"])
    info["data"].update(negative_files=1746, pseudo={"samples": 500})
    write_json(single / "run.json", info)
    text = render_card(card_facts({"single": stage_facts_from_run(single)}, {"threshold_source": "validation"}, 0.4))
    mining = "the highest-scoring of 160 random ones under the current weights: hard-negative mining"
    assert "40 lesion-free slices per epoch" in text and "1746 NonCOVID slices" in text
    assert (mining in text) == bool(mined_from)
    assert "40 per epoch drawn from 500 pseudo-labelled unlabeled slices of `pseudo`" in text


@pytest.mark.parametrize("data, said", [
    ({}, None), ({"canonical": True}, "inputs mapped to the canonical contrast (ssinfnet"),
    ({"canonical": True, "equalize": True},
     "inputs mapped to the canonical contrast, then locally equalised (CLAHE, clip limit 8) (ssinfnet"),
])
def test_card_states_the_input_contrast_of_the_run(tmp_path, data, said):
    single, _ = make_runs(tmp_path, 1000)
    config = json.loads((single / "config.json").read_text())
    config["data"].update(data)
    write_json(single / "config.json", config)
    text = render_card(card_facts({"single": stage_facts_from_run(single)}, {"threshold_source": "validation"}, 0.4))
    assert ("canonical contrast" in text) == (said is not None)
    assert said is None or said.lower() in text.lower()


def test_json_sections_render_rows_as_a_table():
    section = json_section("Specificity", {"rows": [{"scan": "chest", "lesion_ml": 0.0}], "note": "negative controls"})
    text = render_card({**card_facts({}, {}, 0.5), "sections": [section]})
    assert "## Specificity" in text and "| scan | lesion_ml |" in text and "| chest | 0 |" in text
    assert "negative controls" in text


def test_export_writes_a_generated_card_and_no_machine_paths(tmp_path):
    single, multi = make_runs(tmp_path / "runs", 1000, model=True)
    section = tmp_path / "robustness.json"
    section.write_text(json.dumps({"title": "Robustness", "rows": [{"noise": 0.1, "dice": 0.5}]}))
    out = tmp_path / "pipeline"
    assert main(["export", "--single", str(single), "--multi", str(multi), "--out", str(out),
                 "--card-section", str(section)]) == 0
    text = (out / "MODEL_CARD.md").read_text()
    assert "pretraining on 1000 unlabeled CT slices" in text and "## Robustness" in text
    pipeline = (out / "pipeline.json").read_text()
    assert str(tmp_path) not in pipeline and '"path": "ssinfnet"' in pipeline
    assert json.loads((out / "card_facts.json").read_text())["stages"]["single"]["pretraining"]["unlabeled_slices"] == 1000


def test_export_refuses_a_bad_card_section_in_one_line(tmp_path, capsys):
    single, _ = make_runs(tmp_path / "runs", 1000, model=True)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    assert main(["export", "--single", str(single), "--out", str(tmp_path / "p"), "--card-section", str(bad)]) == 2
    assert "cannot read a card section" in capsys.readouterr().err and not (tmp_path / "p").exists()
