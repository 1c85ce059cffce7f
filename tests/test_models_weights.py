"""Safetensors weights: identical outputs after a round trip; pickles are refused unread."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from ssinfnet.errors import InputError
from ssinfnet.models import build_model, load_model, load_state_dict, save_model, save_state_dict


@pytest.mark.parametrize("name,config,heads", [
    ("infnet", dict(width=8, rfb_channels=4, backbone="res2net50"), "segmentation"),
    ("multi_infnet", dict(width=8, rfb_channels=4), "reconstruction"),
    ("multi_unet", dict(width=8), "segmentation"),
])
def test_round_trip_gives_identical_outputs(tmp_path, name, config, heads):
    torch.manual_seed(0)
    model = build_model(name, **config).use_heads(heads)
    model.train()
    model(torch.rand(2, model.in_channels, 64, 64))  # move BN running stats away from their init
    model.eval()
    path = tmp_path / "m.safetensors"
    save_model(model, path, extra={"epoch": 3})
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["model"] == name and sidecar["heads"] == heads and sidecar["extra"] == {"epoch": 3}
    assert sidecar["normalisation"] == {"input_range": [0.0, 1.0], "mean": 0.5, "std": 0.25}

    loaded = load_model(path)
    x = torch.rand(1, model.in_channels, 70, 45)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pickle_checkpoint_is_refused_without_unpickling(tmp_path):
    class Bomb:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    model = build_model("unet", width=8)
    good = tmp_path / "m.safetensors"
    save_model(model, good)
    for payload in (pickle.dumps(Bomb()), None):
        if payload is None:
            torch.save({"x": torch.zeros(1)}, good)  # torch zip/pickle written under the right name
        else:
            good.write_bytes(payload)
        with pytest.raises(InputError, match="not a safetensors file.*never unpickles"):
            load_model(good)
        with pytest.raises(InputError, match="not a safetensors file"):
            load_state_dict(good)


def test_wrong_suffix_and_missing_sidecar_are_input_errors(tmp_path):
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"whatever")
    with pytest.raises(InputError, match="must be a .safetensors"):
        load_model(pt)
    bare = tmp_path / "bare.safetensors"
    save_state_dict({"w": torch.ones(2)}, bare)
    with pytest.raises(InputError, match="missing sidecar"):
        load_model(bare)
    assert torch.equal(load_state_dict(bare)["w"], torch.ones(2))


def test_weights_that_do_not_fit_the_config_are_input_errors(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(build_model("unet", width=8), path)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["config"]["width"] = 16
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match="do not match"):
        load_model(path)


def test_input_contrast_round_trips_and_an_unknown_one_is_an_input_error(tmp_path):
    path = tmp_path / "m.safetensors"
    model = build_model("unet", width=8)
    model.input_contrast = "equalized"
    save_model(model, path)
    assert load_model(path).input_contrast == "equalized"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["input_contrast"] = "sharpened"
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(InputError, match="unknown input_contrast 'sharpened'") as err:
        load_model(path)
    assert "m.json" in str(err.value)
