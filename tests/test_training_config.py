"""Presets load over the defaults, overrides apply, typos and bad settings are refused by key."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssinfnet.cli import main
from ssinfnet.errors import InputError
from ssinfnet.training.config import PRESETS, defaults, load_config


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_with_all_sections(name):
    config = load_config(name)
    for section in ("model", "multi_model", "data", "pretrain", "single", "multi"):
        assert isinstance(config[section], dict)
    assert config["preset"] == name


def with_later_keys(recorded: dict, default: dict) -> dict:
    """``recorded`` plus every key the schema gained since, at its default."""
    merged = dict(recorded)
    for key, value in default.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = with_later_keys(merged[key], value)
    return merged


@pytest.mark.parametrize("name", PRESETS)
def test_presets_resolve_to_the_recorded_configs(name):
    # Recorded before the presets became deltas over the schema's defaults: every key and value of the
    # resolved config (what config.json of a run holds) stays as it was; keys added to the schema later
    # resolve to their defaults.
    recorded = json.loads((Path(__file__).parent / "data" / "presets" / f"{name}.json").read_text())
    assert load_config(name) == with_later_keys(recorded, {**defaults(), "preset": name})


def test_paper_preset_has_the_paper_budgets():
    config = load_config("paper")
    assert config["pretrain"]["epochs"] == 2000 and config["single"]["epochs"] == 500
    assert config["data"]["size"] == 352 and config["model"]["backbone"] == "res2net50"
    assert (config["single"]["optimizer"], config["single"]["lr"]) == ("adam", 1e-4)
    assert (config["multi"]["optimizer"], config["multi"]["lr"], config["multi"]["momentum"]) == ("sgd", 0.01, 0.7)


def test_overrides_are_parsed_as_yaml():
    config = load_config("demo", ["single.lr=1e-3", "single.focal={alpha: 0.5, gamma: 1}", "data.augment=false",
                                  "model.width=8"])
    assert config["single"]["lr"] == 1e-3
    assert config["single"]["focal"] == {"alpha": 0.5, "gamma": 1}
    assert config["data"]["augment"] is False
    assert config["model"]["width"] == 8  # model keys pass through to build_model


def test_mapping_overrides():
    assert load_config("demo", {"single.epochs": 3})["single"]["epochs"] == 3


@pytest.mark.parametrize("override", ["single.lrr=1", "singel.lr=1", "single.lr.x=1", "novalue", "=3"])
def test_bad_overrides_raise_input_error(override):
    with pytest.raises(InputError):
        load_config("demo", [override])


def test_preset_from_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 7\nsingle: {epochs: 2}\n")
    assert load_config(str(path), ["single.epochs=3"])["single"]["epochs"] == 3
    with pytest.raises(InputError, match="unknown preset"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(InputError, match="mapping"):
        load_config(str(tmp_path / "list.yaml"))


@pytest.mark.parametrize("name", ["cpu", "demo"])
def test_cpu_presets_clip_pretraining_gradients(name):
    # SGD at lr 0.1 on reconstruction diverged to NaN within one epoch on the real data without it.
    assert load_config(name)["pretrain"]["grad_clip"] == 1.0


# --- validation: a bad setting is one line naming the key, before anything is written ------------

BAD_SETTINGS = [
    ("single.epochs=-3", "single.epochs"), ("single.batch_size=0", "single.batch_size"),
    ("single.lr=-1", "single.lr"), ("data.size=-8", "data.size"), ("single.optimizer=adamw2", "single.optimizer"),
    ("seed=abc", "seed"), ("data.val_fraction=1.5", "data.val_fraction"),
    ("pretrain.warmup_epochs=6", "pretrain.warmup_epochs"),  # the demo preset pretrains for 6 epochs
    ("pretrain.erase_fraction=1.5", "pretrain.erase_fraction"), ("multi.epochs=2.5", "multi.epochs"),
    ("single.epochs=true", "single.epochs"), ("single.lr=.nan", "single.lr"), ("multi.momentum=1", "multi.momentum"),
    ("single.stop_at=1.5", "single.stop_at"), ("data.augment=maybe", "data.augment"),
    ("data.unlabeled_limit=0", "data.unlabeled_limit"), ("num_workers=-1", "num_workers"),
    ("single.focal={alpha: 2}", "single.focal.alpha"), ("single.focal={alpha: 0.5, gama: 1}", "single.focal.gama"),
    ("multi.lookahead={k: 0, alpha: 0.5}", "multi.lookahead.k"), ("pretrain.block=300", "pretrain.block"),
    ("device=gpu", "device"), ("model.backbone=resnet19", "model"), ("coach.width=0", "coach"),
    ("model.name=multi_unet", "model"), ("multi_model.name=infnet", "multi_model.name"),
]


@pytest.mark.parametrize("override, key", BAD_SETTINGS)
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(InputError) as err:
        load_config("demo", [override])
    message = str(err.value)
    assert f"config {key}" in message and "\n" not in message


@pytest.mark.parametrize("verb", [["train", "single"], ["pretrain"]])
@pytest.mark.parametrize("override, key", BAD_SETTINGS[:9])
def test_training_verbs_refuse_bad_settings_before_writing(tmp_path, capsys, verb, override, key):
    out = tmp_path / "run"
    argv = [*verb, "--data", str(tmp_path), "--out", str(out), "--preset", "demo", "--set", override]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"config {key}" in err[0]
    assert not out.exists()


def test_settings_are_converted_to_their_types():
    config = load_config("demo", ["single.epochs=1e2", "single.lr=1", "multi.focal={alpha: 0.5}"])
    assert config["single"]["epochs"] == 100 and isinstance(config["single"]["epochs"], int)
    assert config["single"]["lr"] == 1.0 and isinstance(config["single"]["lr"], float)
    assert config["multi"]["focal"] == {"alpha": 0.5, "gamma": 2.0}  # the rest of a nested mapping: defaults


def test_a_partial_preset_gets_every_default(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("seed: 7\nsingle: {epochs: 2}\nmodel: {name: unet, width: 4}\n")
    config = load_config(str(path))
    assert config["single"]["epochs"] == 2 and config["single"]["optimizer"] == "adam"
    assert set(config["pretrain"]) == set(defaults()["pretrain"])
    assert config["model"] == {"name": "unet", "width": 4}
    assert config["multi"]["optimizer"] == "sgd" and config["multi"]["focal"] == {"alpha": 0.25, "gamma": 2.0}


@pytest.mark.parametrize("text, key", [
    ("data: {size: 64, new_option: 3}\n", "data.new_option"),
    ("single: {epochs: 2, epoch: 3}\n", "single.epoch"),
    ("new_section: {weight: 0.5}\n", "new_section"),
    ("seeds: 3\n", "seeds"),
])
def test_a_preset_key_the_schema_does_not_know_is_refused_like_set(tmp_path, capsys, text, key):
    """A typo in a preset file is one line naming the key and the file, as ``--set`` refuses it."""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=f"unknown config key '{key}'") as err:
        load_config(str(path))
    assert err.value.path == str(path)
    with pytest.raises(InputError) as by_set:
        load_config("cpu", [f"{key}=3"])
    assert by_set.value.problem.split(" (")[0] == err.value.problem.split(" (")[0]
    assert main(["config", "--preset", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"ssinfnet: error: {path}: unknown config key '{key}' (known here: ")


@pytest.mark.parametrize("verb", [["config"], ["train", "single", "--data", "d", "--out", "run"],
                                  ["pretrain", "--data", "d", "--out", "run"]])
def test_a_preset_that_is_not_utf8_text_is_one_line(tmp_path, capsys, monkeypatch, verb):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "binary.yaml").write_bytes(bytes(range(128, 256)) * 8)
    assert main([*verb, "--preset", "binary.yaml"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ssinfnet: error: binary.yaml: not a UTF-8 text file: byte 0x80 at offset 0 "
                   "(binary data, or text in another encoding)"]
    assert not (tmp_path / "run").exists()


def test_config_verb_prints_the_resolved_config(capsys):
    assert main(["config", "--preset", "demo", "--set", "single.epochs=3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == load_config("demo", ["single.epochs=3"]) and printed["single"]["epochs"] == 3
    assert main(["config", "--preset", "paper", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["backbone"] == "res2net50"
    assert main(["config", "--set", "single.epochs=-3"]) == 2
    assert capsys.readouterr().err.strip() == "ssinfnet: error: config single.epochs=-3: must be >= 1"


@pytest.mark.parametrize("override, key", [
    ("data.heldout_fraction=1", "data.heldout_fraction"), ("data.canonical=3", "data.canonical"),
    ("negatives.per_epoch=-1", "negatives.per_epoch"), ("negatives.weight=-0.5", "negatives.weight"),
    ("negatives.mined_from=-1", "negatives.mined_from"),
])
def test_negative_and_contrast_settings_are_checked(override, key):
    with pytest.raises(InputError, match=f"config {key}="):
        load_config("cpu", [override])


def test_hard_negative_mining_draws_at_least_the_negatives_it_keeps():
    assert load_config("cpu", ["negatives.per_epoch=40", "negatives.mined_from=160"])["negatives"]["mined_from"] == 160
    assert load_config("cpu", ["negatives.per_epoch=40", "negatives.mined_from=0"])["negatives"]["mined_from"] == 0
    with pytest.raises(InputError, match="negatives.mined_from=20: must be 0 .no mining. or at least negatives.per_epoch=40"):
        load_config("cpu", ["negatives.per_epoch=40", "negatives.mined_from=20"])


def test_equalize_needs_the_canonical_contrast():
    assert load_config("cpu", ["data.equalize=true"])["data"]["equalize"] is True
    with pytest.raises(InputError, match="data.equalize=True: needs data.canonical=true"):
        load_config("cpu", ["data.canonical=false", "data.equalize=true"])


def test_runs_configured_before_a_key_existed_keep_the_codes_fallbacks(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("data: {size: 64}\n")
    config = load_config(str(path))
    assert (config["data"]["canonical"], config["data"]["equalize"], config["data"]["export_augment"],
            config["data"]["heldout_fraction"]) == (False, False, False, 0.0)
    assert config["negatives"] == {"weight": 1.0, "per_epoch": 0, "mined_from": 0}


# --- augmentation: on/off, or a mapping of the transform's settings ------------------------------

def test_augmentation_settings_are_the_transforms_defaults():
    import inspect

    from ssinfnet.data.augment import Augmentation, ExportAugmentation
    from ssinfnet.training.config import AugmentSettings, ExportAugmentSettings

    for schema, transform in ((AugmentSettings, Augmentation), (ExportAugmentSettings, ExportAugmentation)):
        signature = {name: p.default for name, p in inspect.signature(transform).parameters.items() if name != "seed"}
        assert dataclasses.asdict(schema()) == signature  # true means exactly these


def test_augmentation_is_configurable_and_checked():
    config = load_config("demo", ["data.augment={rotate_degrees: 5, gamma: [0.9, 1.1]}",
                                  "data.export_augment={probability: 0.3}"])
    assert config["data"]["augment"] == {"flip": True, "rotate_degrees": 5.0, "scale": 0.1, "gamma": [0.9, 1.1],
                                         "contrast": 0.1, "noise_std": 0.02, "probability": 0.5}
    assert config["data"]["export_augment"] == {"probability": 0.3, "clahe_probability": 0.0}
    for override, key in [("data.augment={probability: 1.5}", "data.augment.probability"),
                          ("data.augment={gamma: [1]}", "data.augment.gamma"),
                          ("data.augment={rotat: 1}", "data.augment.rotat"),
                          ("data.export_augment={probability: -1}", "data.export_augment.probability")]:
        with pytest.raises(InputError, match=f"config {key}"):
            load_config("demo", [override])


def test_augmentation_settings_reach_the_transforms():
    from ssinfnet.training.inputs import input_transforms

    image = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    mask = (image > 0.5).astype(np.int64)
    default, export, _ = input_transforms(load_config("demo", ["data.augment=true"]), seed=3)
    spelled_out, _, _ = input_transforms(load_config("demo", [
        "data.augment={flip: true, rotate_degrees: 10, scale: 0.1, gamma: [0.8, 1.25], contrast: 0.1, "
        "noise_std: 0.02, probability: 0.5}"]), seed=3)
    for _ in range(3):  # the defaults written out are the same stream as `augment: true`
        assert all(np.array_equal(a, b) for a, b in zip(default(image, mask), spelled_out(image, mask)))
    assert export.probability == 0.7
    never, export, _ = input_transforms(load_config("demo", ["data.augment={probability: 0}",
                                                            "data.export_augment={probability: 0.25}"]), seed=3)
    assert np.array_equal(never(image, mask)[0], image) and export.probability == 0.25
    off = input_transforms(load_config("demo", ["data.augment=false"]), seed=3)
    assert off[:2] == (None, None)  # no export differences without augmentation


def test_product_preset_is_what_the_bundled_model_was_trained_with():
    """The product preset resolves to the training settings the bundled pipeline's records hold
    (weights/default/card_facts.json), stage by stage."""
    from importlib import resources

    facts = json.loads((resources.files("ssinfnet") / "weights" / "default" / "card_facts.json").read_text())
    config = load_config("product")
    for stage, section in (("single", "model"), ("multi", "multi_model")):
        recorded = facts["stages"][stage]
        assert {k: config[stage][k] for k in recorded["training"]} == recorded["training"]
        assert config[section] == {"name": recorded["model"], **recorded["model_config"]}
        assert config["data"]["size"] == recorded["size"] and config["data"]["val_fraction"] == recorded["val_fraction"]
        assert config["data"]["canonical"] == (recorded["input_contrast"] == "canonical")
        assert bool(config["data"]["export_augment"]) == recorded["export_augment"]
        assert config["data"]["folds"] == recorded["fold"]["folds"]
        assert config["data"]["heldout_fraction"] == recorded["negatives"]["heldout_fraction"]
        for key in ("weight", "per_epoch"):
            assert config["negatives"][key] == recorded["negatives"][key]
            assert config["pseudo"][key] == recorded["pseudo"][key]
    assert main(["config", "--preset", "product"]) == 0
