"""A run is used as a model only once it is finished (summary.json): evaluate, export, train --init and
--prior-from refuse an unfinished one with one line, before writing anything. Resume warns when the
torch thread count differs from the one recorded in run.json."""

import json

import pytest
import torch

from ssinfnet.cli import main
from ssinfnet.core.runs import finished_model
from ssinfnet.errors import InputError
from ssinfnet.models import build_model, save_model
from ssinfnet.training import runs
from ssinfnet.training.session import open_session


def make_run(folder, finished: bool, model_name: str = "unet"):
    """What a training run holds after a kill at epoch 3 (``finished=False``) or at its end."""
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    save_model(build_model(model_name, width=4), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"seed": 0, "device": "cpu", "data": {"size": 32}}))
    (folder / "run.json").write_text(json.dumps({"kind": "single", "inputs": {}, "torch_threads": 1}))
    if finished:
        (folder / "summary.json").write_text(json.dumps({"stage": "single", "validation": {"threshold": 0.4}}))
    return folder


def test_finished_model_requires_the_completion_marker(tmp_path):
    done = make_run(tmp_path / "done", finished=True)
    assert finished_model(done) == done / "model.safetensors"
    with pytest.raises(InputError, match=r"unfinished training run \(no summary.json\).*--resume"):
        finished_model(make_run(tmp_path / "killed", finished=False))
    with pytest.raises(InputError, match="no model.safetensors"):
        finished_model(tmp_path)
    with pytest.raises(InputError, match="no such directory"):
        finished_model(tmp_path / "missing")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("verb", [
    ["evaluate", "--data", "{data}", "--single", "{run}"],
    ["evaluate", "--data", "{data}", "--single", "{done}", "--multi", "{run}"],
    ["export", "--single", "{run}"],
    ["train", "single", "--data", "{data}", "--init", "{run}"],
    ["train", "multi", "--data", "{data}", "--prior-from", "{run}"],
    ["pretrain", "--network", "multi", "--data", "{data}", "--prior-from", "{run}"],
])
def test_consumers_refuse_an_unfinished_run_before_writing(tmp_path, capsys, verb):
    places = {"run": make_run(tmp_path / "killed", finished=False), "done": make_run(tmp_path / "done", True),
              "data": tmp_path}
    out = tmp_path / "out"
    assert main([part.format(**places) for part in verb] + ["--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert str(places["run"]) in line and "unfinished training run (no summary.json)" in line
    assert not out.exists()


def test_resume_warns_when_the_thread_count_differs(tmp_path, capsys):
    run = make_run(tmp_path / "run", finished=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        open_session("single", run, None, None)
        assert capsys.readouterr().err == ""
        torch.set_num_threads(2)
        open_session("single", run, None, None)
    finally:
        torch.set_num_threads(before)
    warning = capsys.readouterr().err
    assert "trained with 1 torch threads, resumed with 2" in warning and "OMP_NUM_THREADS=1" in warning


def test_run_json_records_the_thread_count(tmp_path):
    runs.RunDir(tmp_path / "r").start("single", {"seed": 0}, {})
    assert runs.RunDir(tmp_path / "r").info()["torch_threads"] == torch.get_num_threads()
