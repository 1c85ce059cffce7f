"""Run directories and atomic, pickle-free checkpoints."""

import random

import numpy as np
import pytest
import torch

from ssinfnet.errors import InputError
from ssinfnet.training import runs


def test_checkpoint_roundtrip_keeps_types(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(3, 2)).sum().backward()
    opt.step()
    state = {"opt": opt.state_dict(), "rng": runs.rng_state(), "tuple": (1, (2.5, "x")), "none": None}
    runs.save_checkpoint(tmp_path / "c", state)
    back = runs.load_checkpoint(tmp_path / "c")
    assert set(back["opt"]["state"]) == {0, 1}  # integer keys survive JSON
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["tuple"] == (1, (2.5, "x")) and back["none"] is None
    opt2 = torch.optim.Adam(torch.nn.Linear(2, 1).parameters())
    opt2.load_state_dict(back["opt"])


def test_rng_state_restores_every_generator(tmp_path):
    runs.seed_everything(3)
    runs.save_checkpoint(tmp_path / "c", {"rng": runs.rng_state()})
    first = (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random())
    runs.set_rng_state(runs.load_checkpoint(tmp_path / "c")["rng"])
    assert (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random()) == first


def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    runs.save_checkpoint(tmp_path / "c", {"epoch": 1, "w": torch.ones(2)})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs, "save_file", broken)
    with pytest.raises(OSError):
        runs.save_checkpoint(tmp_path / "c", {"epoch": 2, "w": torch.zeros(2)})
    assert runs.load_checkpoint(tmp_path / "c")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no temporary left behind


def test_run_dir_refuses_to_overwrite_a_run(tmp_path):
    run = runs.RunDir(tmp_path / "run")
    run.start("single", {"seed": 0}, {"data_fingerprint": {}})
    assert run.config() == {"seed": 0}
    assert run.info()["kind"] == "single" and "git_commit" in run.info()
    with pytest.raises(InputError, match="--resume"):
        runs.RunDir(tmp_path / "run").start("single", {"seed": 0}, {})
    with pytest.raises(InputError, match="not a run"):
        runs.RunDir(tmp_path).config()


def test_a_new_run_refuses_a_folder_holding_other_files_or_a_file(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    with pytest.raises(InputError, match=r"holds no training run but 1 other entries \(e.g. 'notes.txt'\)"):
        runs.RunDir(mine).start("single", {"seed": 0}, {})
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file; expected a folder for the run"):
        runs.RunDir(tmp_path / "file").start("single", {"seed": 0}, {})
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_metrics_tables_are_rewritten_from_history(tmp_path):
    run = runs.RunDir(tmp_path)
    run.write_metrics([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    run.write_metrics([{"epoch": 1, "loss": 0.5}])
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,loss", "1,0.5"]


def test_corrupt_checkpoint_is_an_input_error(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / runs.CHECKPOINT_JSON).write_text("{}")
    (folder / runs.CHECKPOINT_TENSORS).write_bytes(b"not safetensors")
    with pytest.raises(InputError):
        runs.load_checkpoint(folder)


def test_abandon_removes_only_what_a_failed_new_run_wrote(tmp_path):
    fresh = runs.RunDir(tmp_path / "fresh")
    before = fresh.entries()
    assert before is None
    fresh.start("single", {"seed": 0}, {})
    fresh.abandon(before)
    assert not fresh.path.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    run = runs.RunDir(empty)
    before = run.entries()
    run.start("single", {"seed": 0}, {})
    (empty / "examples").mkdir()
    run.abandon(before)
    assert empty.is_dir() and list(empty.iterdir()) == []  # the folder the user made stays

    resumable = runs.RunDir(tmp_path / "resumable")
    before = resumable.entries()
    resumable.start("single", {"seed": 0}, {})
    resumable.save("last", {"epoch": 1})
    resumable.abandon(before)  # an epoch was checkpointed: --resume can continue it, keep it
    assert resumable.is_run() and resumable.load("last")["epoch"] == 1


def test_a_new_run_failing_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    from ssinfnet.cli import main
    from ssinfnet.data.demo_cohort import make_demo_cohort
    from ssinfnet.training import loop

    cohort = make_demo_cohort(tmp_path / "c", n_subjects=4, seed=0, size=32, slices_per_subject=3)

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory in the first step")

    monkeypatch.setattr(loop, "fit", crash)
    out = tmp_path / "run"
    argv = ["train", "single", "--data", str(cohort / "semiseg"), "--out", str(out), "--preset", "demo",
            "--set", "data.size=32", "--set", "model.width=8", "--set", "model.rfb_channels=8"]
    for _ in range(2):  # the retry fails the same way: no "already holds a run"
        with pytest.raises(RuntimeError, match="out of memory"):
            main(argv)
        assert not out.exists()


@pytest.mark.parametrize("verb", ["train", "pretrain"])
def test_training_into_a_folder_that_is_no_run_is_refused_before_any_work(tmp_path, capsys, monkeypatch, verb):
    """``--out`` an existing folder of other files: one line, exit 2, the folder untouched (it used to
    be trained into)."""
    from ssinfnet.cli import main
    from ssinfnet.data.demo_cohort import make_demo_cohort
    from ssinfnet.training import loop

    cohort = make_demo_cohort(tmp_path / "c", n_subjects=4, seed=0, size=32, slices_per_subject=3)
    monkeypatch.setattr(loop, "fit", lambda *a, **k: pytest.fail("trained into the folder"))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    argv = [verb, *(["single"] if verb == "train" else []), "--data", str(cohort / "semiseg"), "--out", str(out),
            "--preset", "demo", "--no-progress"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (f"ssinfnet: error: {out}: is a folder that holds no training run but 1 "
                                               "other entries (e.g. 'notes.txt'): choose a new or empty --out")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
