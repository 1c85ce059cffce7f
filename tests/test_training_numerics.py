"""Seeded training numbers are pinned: a tiny pretrain -> single -> pretrain multi -> multi chain (bf16,
channels_last, negatives, export augmentation, focal + Lookahead) and an fp32 single run with focal loss
and gradient clipping give bit-identical losses, validation numbers and weights to those recorded in
``tests/data/training_numerics.json``. A refactor of the loop, objectives or losses must not move them.

Float results depend on the CPU's kernels, so the numbers are compared only on the machine fingerprint
they were recorded on (elsewhere the test skips, saying why). Re-record, only for a deliberate change
of the numerics: ``OMP_NUM_THREADS=1 python tests/test_training_numerics.py --record``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import monai
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.training.config import load_config
from ssinfnet.training.pretrain import pretrain
from ssinfnet.training.supervised import train_multi, train_single

pytestmark = pytest.mark.slow

RECORD = Path(__file__).parent / "data" / "training_numerics.json"
TINY = {
    "data.size": 64, "model.width": 8, "model.rfb_channels": 8, "multi_model.width": 8,
    "multi_model.rfb_channels": 8, "coach.width": 8, "pretrain.epochs": 3, "pretrain.warmup_epochs": 1,
    "pretrain.coach_epochs": 1, "pretrain.inpaint_epochs": 1, "pretrain.batch_size": 4, "pretrain.val_images": 2,
    "pretrain.examples": 2, "pretrain.block": 16, "single.epochs": 2, "single.batch_size": 4, "multi.epochs": 2,
    "multi.batch_size": 4, "negatives.per_epoch": 3,
    # the demo preset's settings of the day the numbers were recorded, which it has changed since
    "data.augment": True, "single.stop_at": None,
}
FP32 = {**TINY, "bf16": False, "channels_last": False, "single.focal": {"alpha": 0.6, "gamma": 1.5},
        "single.grad_clip": 0.05, "single.optimizer": "sgd", "single.lr": 0.01, "single.momentum": 0.5}


def fingerprint() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    return {"torch": torch.__version__, "numpy": np.__version__, "monai": monai.__version__,
            "machine": platform.machine(), "cpu": cpu, "threads": torch.get_num_threads()}


def weights_digest(path: Path) -> str:
    tensors = load_file(str(path))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def run_numbers(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {"metrics": [{k: v for k, v in row.items() if k != "seconds"} for row in rows],
            "weights": weights_digest(run / "model.safetensors")}


def tiny_chain(tmp: Path) -> dict:
    """The numbers of every run of the tiny chain (metrics without times, a digest of the weights)."""
    cohort = make_demo_cohort(tmp / "cohort", n_subjects=5, seed=0, size=64, slices_per_subject=4)
    labeled, unlabeled = cohort / "semiseg", cohort / "unlabeled"
    config, fp32 = load_config("demo", TINY), load_config("demo", FP32)
    pretrain(tmp / "pre", [unlabeled, labeled], config, "single", progress=False)
    train_single(tmp / "single", [labeled], config, init=tmp / "pre", progress=False, negatives=[unlabeled])
    pretrain(tmp / "pre_multi", [unlabeled, labeled], config, "multi", prior_from=tmp / "single", progress=False)
    train_multi(tmp / "multi", [labeled], config, prior_from=tmp / "single", init=tmp / "pre_multi",
                progress=False, negatives=[unlabeled])
    train_single(tmp / "single_fp32", [labeled], fp32, progress=False)
    return {name: run_numbers(tmp / name) for name in ("pre", "single", "pre_multi", "multi", "single_fp32")}


def test_seeded_tiny_training_gives_the_recorded_numbers(tmp_path):
    recorded = json.loads(RECORD.read_text())
    if recorded["fingerprint"] != fingerprint():
        pytest.skip(f"numbers recorded on {recorded['fingerprint']}, this machine is {fingerprint()}")
    assert tiny_chain(tmp_path) == recorded["runs"]


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        runs = tiny_chain(Path(folder))
    RECORD.parent.mkdir(exist_ok=True)
    RECORD.write_text(json.dumps({"fingerprint": fingerprint(), "runs": runs}, indent=1) + "\n")
    print(f"recorded {RECORD}")
