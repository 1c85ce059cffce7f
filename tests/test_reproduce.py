"""`ssinfnet reproduce` end to end on a tiny generated data root (the real layout's folder names)."""

import json
from pathlib import Path
import subprocess
import sys

import pytest

from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.inference.predictor import load_pipeline

TINY = [
    "data.size=32", "model.width=8", "model.rfb_channels=8", "multi_model.width=8", "multi_model.rfb_channels=8",
    "coach.width=8", "pretrain.epochs=3", "pretrain.warmup_epochs=1", "pretrain.coach_epochs=1",
    "pretrain.inpaint_epochs=1", "pretrain.val_images=2", "pretrain.examples=1", "single.epochs=1", "multi.epochs=1",
]


@pytest.mark.slow
def test_reproduce_runs_every_step_once_and_bundles_a_pipeline(tmp_path):
    cohort = make_demo_cohort(tmp_path / "cohort", n_subjects=5, size=48, slices_per_subject=3)
    data = tmp_path / "data"
    data.mkdir()
    (data / "covid-semiseg").symlink_to(cohort / "semiseg")
    (data / "unlabeled-ct").symlink_to(cohort / "unlabeled")
    out, work, bundle = tmp_path / "out", tmp_path / "work", tmp_path / "bundle"
    argv = [sys.executable, "-m", "ssinfnet", "reproduce", "--data", str(data), "--preset", "demo",
            "--work", str(work), "--out", str(out), "--bundle", str(bundle), "--jobs", "2"] + [a for s in TINY for a in ("--set", s)]
    subprocess.run(argv, check=True, capture_output=True, text=True)

    timings = json.loads((out / "timings.json").read_text())
    assert {"pretrain single", "pretrain multi", "train U-Net", "train SSInfNet+FL+LA", "train Multi U-Net",
            "evaluate bundled", "compare single", "compare multi", "report"} <= set(timings)
    commands = (out / "commands.sh").read_text()
    assert commands.count("ssinfnet train single") == 4 and commands.count("ssinfnet train multi") == 4
    assert "--split test" in commands and "--init" in commands
    # The single stage is scored and compared before the multi stage starts (its tables come hours earlier).
    assert commands.index("ssinfnet compare") < commands.index("ssinfnet pretrain --network multi")
    assert (out / "report.html").stat().st_size > 10_000
    comparison = json.loads((out / "compare-single-comparison.json").read_text())
    assert comparison  # paired tests were written
    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["prior_from"] in ("U-Net", "SInfNet", "SSInfNet", "SSInfNet+FL+LA")
    # --out keeps what the report's figures need: each evaluation's ROC points and gallery, each run's curves.
    evaluations = [path.stem for path in out.glob("eval-*.json") if not path.stem.endswith("-roc")]
    assert len(evaluations) == 9
    for stem in evaluations:
        assert json.loads((out / f"{stem}-roc.json").read_text())["pixel"]["fpr"]
        assert (out / f"{stem}-gallery" / "gallery.json").is_file()
    runs = {path.parent.name for path in out.glob("run-*/metrics.jsonl")}
    assert runs == {"run-pretrain-single", "run-pretrain-multi", "run-u-net", "run-sinfnet", "run-ssinfnet",
                    "run-ssinfnet-fl-la", "run-multi-u-net", "run-multi-sinfnet", "run-multi-ssinfnet",
                    "run-multi-ssinfnet-fl-la"}
    pipeline = load_pipeline(bundle)
    assert pipeline.multi is not None and pipeline.meta["storage"] == "bf16"
    assert "non-commercial" in (bundle / "MODEL_CARD.md").read_text().lower()

    # A second run finds every step complete and runs nothing again.
    again = subprocess.run(argv, check=True, capture_output=True, text=True)
    assert "[reproduce] train" not in again.stdout and json.loads((out / "timings.json").read_text()) == timings

    # A training stopped mid-way already holds a best model.safetensors; only its summary marks it
    # finished, so without one the run is continued with --resume, not taken as done.
    (work / "multi-u-net" / "summary.json").unlink()
    resumed = subprocess.run(argv, check=True, capture_output=True, text=True)
    assert "[reproduce] train Multi U-Net: train multi --out" in resumed.stdout and "--resume" in resumed.stdout
    assert (work / "multi-u-net" / "summary.json").exists()


def test_independent_steps_run_in_parallel_lanes_with_threads_split_and_a_failure_stops_the_rest(tmp_path, monkeypatch):
    from ssinfnet.workflows.reproduce import Experiment, Step

    for folder in ("covid-semiseg", "unlabeled-ct"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    experiment = Experiment(tmp_path / "data", "demo", tmp_path / "work", tmp_path, [], jobs=2)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")

    def writer(name: str, code: str = "") -> Step:
        # argv[3:] is what commands.sh records, as for a real "python -m ssinfnet VERB ..." step
        script = f"import os, pathlib; {code}pathlib.Path({str(tmp_path / name)!r}).write_text(os.environ['OMP_NUM_THREADS'])"
        return Step(name, [sys.executable, "-c", script, name], tmp_path / name)

    experiment.steps([writer("a"), writer("b"), writer("c")])
    assert [(tmp_path / n).read_text() for n in "abc"] == ["2", "2", "2"]  # 4 threads over 2 lanes
    assert experiment.commands == ["ssinfnet a", "ssinfnet b", "ssinfnet c"]
    assert set(json.loads((tmp_path / "timings.json").read_text())) == {"a", "b", "c"}

    experiment.steps([writer("a"), writer("b")])  # complete steps are skipped, not run again
    assert set(json.loads((tmp_path / "timings.json").read_text())) == {"a", "b", "c"}

    # One lane: the failing step stops the experiment before the step after it starts.
    experiment.jobs = 1
    with pytest.raises(subprocess.CalledProcessError):
        experiment.steps([writer("d", "raise SystemExit(3); "), writer("e")])
    assert not (tmp_path / "e").exists()
    assert "d" in json.loads((tmp_path / "timings.json").read_text())  # a failed attempt's time counts


def test_pretraining_sees_the_training_slices_but_not_the_validation_slices(tmp_path, monkeypatch):
    from ssinfnet.data.readers import read_dataset
    from ssinfnet.data.splits import train_val_split
    from ssinfnet.training.config import load_config
    from ssinfnet.workflows.reproduce import Experiment

    cohort = make_demo_cohort(tmp_path / "cohort", n_subjects=5, size=32, slices_per_subject=2)
    data = tmp_path / "data"
    data.mkdir()
    (data / "covid-semiseg").symlink_to(cohort / "semiseg")
    (data / "unlabeled-ct").symlink_to(cohort / "unlabeled")
    experiment = Experiment(data, "demo", tmp_path / "work", tmp_path / "out", ["data.val_fraction=0.4"])
    recorded = []
    monkeypatch.setattr(experiment, "step", lambda name, argv, done, resumable=None: recorded.append(argv))
    experiment.pretrain("single", prior=None)

    argv = recorded[0]
    pool = [Path(p) for p in argv[argv.index("--data") + 1:argv.index("--out")]]
    assert pool[0] == data / "unlabeled-ct"
    config = load_config("demo", ["data.val_fraction=0.4"])
    train, val = train_val_split(read_dataset(data / "covid-semiseg", split="train"), 0.4, config["seed"])
    seen = {s.meta.id for s in read_dataset(pool[1], split="train")}
    assert seen == {s.meta.id for s in train} and val and not seen & {s.meta.id for s in val}
