"""Training runs through the CLI on a tiny generated cohort: pretrain -> fine-tune (single, multi),
SIGKILL + resume, Ctrl-C + resume, a bad setting then a corrected retry, and 2-process torchrun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ssinfnet.cli import main
from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.errors import InputError
from ssinfnet.training import distributed, loop

pytestmark = pytest.mark.slow

TINY = [
    "data.size=64", "model.width=8", "model.rfb_channels=8", "multi_model.width=8", "multi_model.rfb_channels=8",
    "coach.width=8", "pretrain.epochs=3", "pretrain.warmup_epochs=1", "pretrain.coach_epochs=1",
    "pretrain.inpaint_epochs=1", "pretrain.batch_size=4", "pretrain.val_images=2", "pretrain.examples=2",
    "single.epochs=2", "single.batch_size=4", "multi.epochs=2", "multi.batch_size=4",
]


def tiny_args(extra=()):
    return ["--preset", "demo", "--no-progress"] + [a for s in [*TINY, *extra] for a in ("--set", s)]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_demo_cohort(tmp_path_factory.mktemp("cohort") / "c", n_subjects=5, seed=0, size=64, slices_per_subject=4)


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_pretrain_then_fine_tune_single_and_multi(cohort, tmp_path):
    labeled, unlabeled = cohort / "semiseg", cohort / "unlabeled"
    assert main(["pretrain", "--data", str(unlabeled), str(labeled), "--out", str(tmp_path / "pre"), *tiny_args()]) == 0
    pre = tmp_path / "pre"
    assert (pre / "model.safetensors").is_file() and (pre / "coach.safetensors").is_file()
    assert any((pre / "examples").glob("*.png"))
    assert json.loads((pre / "run.json").read_text())["data"]["unlabeled_files"] == len(list(unlabeled.glob("*.png")))

    assert main(["train", "single", "--data", str(labeled), "--out", str(tmp_path / "single"),
                 "--init", str(pre), *tiny_args()]) == 0
    transfer = json.loads((tmp_path / "single" / "init_transfer.json").read_text())
    assert transfer["copied"] and all(name.startswith("heads.") for name in transfer["skipped"])
    summary = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert 0.05 <= summary["validation"]["threshold"] <= 0.95 and summary["init"] == str(pre)
    model_info = json.loads((tmp_path / "single" / "model.json").read_text())
    assert model_info["extra"]["stage"] == "single"

    # Multi stage from the single network's pretraining: the 2-channel stem cannot take 1-channel weights.
    assert main(["train", "multi", "--data", str(labeled), "--out", str(tmp_path / "multi"), "--init", str(pre),
                 "--prior-from", str(tmp_path / "single"), *tiny_args(["multi.focal=null", "multi.lookahead=null"])]) == 0
    transfer = json.loads((tmp_path / "multi" / "init_transfer.json").read_text())
    assert any("shape mismatch" in reason for reason in transfer["skipped"].values())
    summary = json.loads((tmp_path / "multi" / "summary.json").read_text())
    assert summary["prior_from"] == str(tmp_path / "single")
    assert {"val_dice_GGO", "val_dice_consolidation"} <= set(summary["validation"])


def test_cli_refuses_bad_runs(cohort, tmp_path, capsys):
    labeled = cohort / "semiseg"
    assert main(["train", "multi", "--data", str(labeled), "--out", str(tmp_path / "m"), *tiny_args()]) == 2
    assert "--prior-from" in capsys.readouterr().err
    assert main(["train", "single", "--data", str(cohort / "unlabeled"), "--out", str(tmp_path / "u"), *tiny_args()]) == 2
    assert "no masks" in capsys.readouterr().err
    assert main(["train", "single", "--out", str(tmp_path / "x"), "--resume"]) == 2  # nothing to resume
    with pytest.raises(InputError):
        main(["--debug", "train", "single", "--data", str(labeled), "--out", str(tmp_path / "y"),
              "--set", "single.nope=1"])


def run_cli(args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ssinfnet", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


def test_sigkill_then_resume_gives_identical_metrics(cohort, tmp_path):
    args = ["train", "single", "--data", str(cohort / "semiseg"), *tiny_args(["single.epochs=5", "single.batch_size=2"])]
    straight = run_cli([*args, "--out", str(tmp_path / "a")])
    assert straight.wait(timeout=600) == 0, straight.stderr.read().decode()

    killed = run_cli([*args, "--out", str(tmp_path / "b")])
    log = tmp_path / "b" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and killed.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 2:
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert killed.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    assert len(metrics(tmp_path / "b")) < 5
    resumed = run_cli(["train", "single", "--out", str(tmp_path / "b"), "--resume", "--no-progress"])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()
    assert metrics(tmp_path / "b") == metrics(tmp_path / "a")
    assert load_file(str(tmp_path / "b" / "model.safetensors")).keys() == load_file(str(tmp_path / "a" / "model.safetensors")).keys()


# Runs the CLI with Adam's step slowed down at its N-th call, after writing a file that says so: the
# test's SIGINT then lands inside optimizer.step, the worst place for a Ctrl-C.
SLOW_STEP = """
import pathlib, sys, time
import torch
from ssinfnet.cli import main

ready, at = pathlib.Path(sys.argv[1]), int(sys.argv[2])
step, calls = torch.optim.Adam.step, [0]

def slow_step(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == at:
        ready.write_text("inside optimizer.step")
        time.sleep(3)
    return step(self, *args, **kwargs)

torch.optim.Adam.step = slow_step
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("mining", [False, True], ids=["plain", "hard-negative-mining"])
def test_ctrl_c_then_resume_gives_bit_identical_weights(cohort, tmp_path, mining):
    # With mining, the cut epoch resumes on the negatives mined before the cut (weights have moved since).
    negatives = ["--negatives", str(cohort / "unlabeled")] if mining else []
    extra = ["negatives.per_epoch=3", "negatives.mined_from=6"] if mining else []
    args = ["train", "single", "--data", str(cohort / "semiseg"), *negatives,
            *tiny_args(["single.epochs=2", "single.batch_size=2", *extra])]
    straight = run_cli([*args, "--out", str(tmp_path / "a")])
    assert straight.wait(timeout=600) == 0, straight.stderr.read().decode()
    slices = json.loads((tmp_path / "a" / "run.json").read_text())["data"]["train"]["samples"] + (3 if mining else 0)
    steps = len(loop.epoch_batches(slices, 2, seed=0, epoch=1, ctx=distributed.Context(0, 1, torch.device("cpu"))))
    assert steps >= 2  # so that the first step of epoch 2 is mid-epoch

    script, ready = tmp_path / "slow_step.py", tmp_path / "ready"
    script.write_text(SLOW_STEP)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    at = str(steps + 1)  # Adam's step call that is epoch 2's first step
    cut = subprocess.Popen([sys.executable, str(script), str(ready), at, *args, "--out", str(tmp_path / "b")],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while not ready.exists() and cut.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    cut.send_signal(signal.SIGINT)
    assert cut.wait(timeout=120) == 130
    err = cut.stderr.read().decode()
    assert "interrupted at epoch 2, step 1; checkpoint saved" in err and "Traceback" not in err, err
    state = json.loads((tmp_path / "b" / "checkpoints" / "last" / "state.json").read_text())
    assert (state["epoch"], state["step"]) == (1, 1)  # the step it landed in was finished, then it stopped
    assert not (tmp_path / "b" / "summary.json").exists()

    resumed = run_cli(["train", "single", "--out", str(tmp_path / "b"), "--resume", "--no-progress"])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()
    assert metrics(tmp_path / "b") == metrics(tmp_path / "a")
    assert mining == ("mined_lesion_probability" in metrics(tmp_path / "a")[0])
    a, b = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_setting_writes_nothing_and_a_corrected_retry_runs(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "single", "--data", str(cohort / "semiseg"), "--out", str(out)]
    assert main([*args, *tiny_args(["single.epochs=-3"])]) == 2
    assert "config single.epochs=-3" in capsys.readouterr().err and not out.exists()
    assert main([*args, *tiny_args(["single.epochs=1"])]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


RANK_DUMP = """
import sys, torch
import torch.distributed as dist
from safetensors.torch import save_file
import ssinfnet.training.loop as loop
from ssinfnet.cli import main

torch.set_num_threads(1)
fit = loop.fit

def fit_and_dump(objective, *args, **kwargs):
    history = fit(objective, *args, **kwargs)
    state = {k: v.contiguous() for k, v in objective.modules["model"].state_dict().items()}
    save_file(state, f"{sys.argv[1]}/rank{dist.get_rank()}.safetensors")
    return history

loop.fit = fit_and_dump
sys.exit(main(sys.argv[2:]))
"""


def test_torchrun_two_processes_end_with_identical_weights(cohort, tmp_path):
    script = tmp_path / "dump.py"
    script.write_text(RANK_DUMP)
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path), "train", "single", "--data", str(cohort / "semiseg"), "--out", str(out),
               *tiny_args(["single.epochs=2", "device=cpu"])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all((rank0[k] == rank1[k]).all() for k in rank0)
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert len(metrics(out)) == 2  # rank 0 alone writes the log
