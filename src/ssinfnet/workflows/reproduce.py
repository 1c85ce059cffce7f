"""Verb ``reproduce``: the paper's experiment on the real benchmark, one resumable command.

Every step is an ``ssinfnet`` verb run as a subprocess, so the experiment is exactly the commands a user
could type (they are written to ``commands.sh``). A step whose output is complete is skipped; a training
step whose run folder exists but is unfinished is continued with ``--resume``. So the command may be
stopped (Ctrl-C, SIGKILL, end of a session) and started again any number of times.

Design (issue "Reproduce the paper on real data"):
- self-supervised pretraining on the unlabeled slices + the training images that the supervised stage
  trains on (never its validation slices, never test images);
- single stage: U-Net, SInfNet (random init), SSInfNet (self-supervised init), SSInfNet + focal +
  Lookahead, with the same fine-tuning budget; the prior for the multi stage comes from the single
  model with the best *validation* Dice (carved from the training slices);
- multi stage likewise (multi U-Net, multi SInfNet, multi SSInfNet, + focal + Lookahead);
- each final model is scored once on the 48 test slices with both protocols, then compared with
  paired tests (planned: SSInfNet vs SInfNet; the rest exploratory, Holm-adjusted per family), and one
  HTML report gathers everything, with every run's training curves;
- the bundled pipeline's MODEL_CARD.md is generated from the runs' records (``workflows.model_card``).
Heavy files (checkpoints, run folders) live in ``--work``; ``--out`` receives only small results.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ssinfnet.core.runs import METRICS, SUMMARY
from ssinfnet.errors import InputError
from ssinfnet.evaluation.results import keep
from ssinfnet.fileio import write_bytes, write_json, write_text
from ssinfnet.training.config import load_config
from ssinfnet.workflows.export import card_from_runs

FOCAL_LOOKAHEAD = ("focal={alpha: 0.25, gamma: 2.0}", "lookahead={k: 5, alpha: 0.5}")
PLAIN = ("focal=null", "lookahead=null")


@dataclass(frozen=True)
class Variant:
    name: str
    """Name in tables (as in the paper)."""
    model: str | None
    """Model registry name overriding the preset's (None keeps the preset's Inf-Net)."""
    pretrained: bool
    loss: tuple[str, ...]


SINGLE_VARIANTS = (
    Variant("U-Net", "unet", False, PLAIN),
    Variant("SInfNet", None, False, PLAIN),
    Variant("SSInfNet", None, True, PLAIN),
    Variant("SSInfNet+FL+LA", None, True, FOCAL_LOOKAHEAD),
)
MULTI_VARIANTS = (
    Variant("Multi U-Net", "multi_unet", False, PLAIN),
    Variant("Multi SInfNet", None, False, PLAIN),
    Variant("Multi SSInfNet", None, True, PLAIN),
    Variant("Multi SSInfNet+FL+LA", None, True, FOCAL_LOOKAHEAD),
)


def variant_sets(stage: str, variant: Variant, config: dict, overrides: list[str], unet_width: int | None) -> list[str]:
    """The ``--set`` overrides that train ``variant`` in ``stage`` (``config``: the experiment's own)."""
    section = "model" if stage == "single" else "multi_model"
    sets = [f"{stage}.{item}" for item in variant.loss] + list(overrides)
    if variant.model:
        # The baseline replaces the whole model section (it has no backbone); same width as Inf-Net's
        # unless --unet-width says otherwise (a U-Net costs several times an Inf-Net step per width).
        width = unet_width or config[section].get("width")
        sets.append(f"{section}={{name: {variant.model}" + (f", width: {width}}}" if width else "}"))
    return sets


def variant_config(stage: str, variant: Variant, preset: str, overrides: list[str], unet_width: int | None) -> dict:
    """The configuration a variant's training ran with (what its run's config.json holds)."""
    return load_config(preset, variant_sets(stage, variant, load_config(preset, overrides), overrides, unet_width))


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    done: Path
    """The step's last output: when it exists the step is complete and skipped."""
    resumable: Path | None = None
    """A training run folder: when it holds a config the step continues with --resume."""


def slug(name: str) -> str:
    return name.lower().replace("+", "-").replace(" ", "-")


class Experiment:
    def __init__(self, data: Path, preset: str, work: Path, out: Path, overrides: list[str],
                 bundle_to: Path | None = None, unet_width: int | None = None, jobs: int = 1):
        self.semiseg = data / "covid-semiseg"
        self.unlabeled = data / "unlabeled-ct"
        for folder in (self.semiseg, self.unlabeled):
            if not folder.is_dir():
                raise InputError("expected the shared data layout (covid-semiseg/ and unlabeled-ct/)", folder)
        self.preset, self.work, self.out, self.overrides = preset, work, out, overrides
        self.config = load_config(preset, overrides)
        self.bundle_to = bundle_to
        self.unet_width = unet_width
        self.jobs = max(1, jobs)
        self.lock = threading.Lock()
        self.commands: list[str] = []
        self.evals: dict[str, Path] = {}
        """Evaluation folder of every model scored so far, by name."""
        self.runs: dict[str, Path] = {}
        """Every pretraining and training run started so far, by its folder's name."""
        self.timings: dict[str, float] = self._read_json(self.out / "timings.json") or {}

    # -- running steps -------------------------------------------------------------------------
    def ssinfnet(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "ssinfnet", *argv]

    def step(self, name: str, argv: list[str], done: Path, resumable: Path | None = None) -> None:
        """Run one verb unless ``done`` exists; continue an unfinished training run with --resume."""
        self.steps([Step(name, argv, done, resumable)])

    def steps(self, steps: list[Step]) -> None:
        """Run steps that do not depend on one another, up to ``jobs`` at once (:func:`run_steps`)."""
        self.commands += [shlex.join(["ssinfnet", *step.argv[3:]]) for step in steps]
        run_steps(steps, self.jobs, self.execute)

    def execute(self, step: Step, env: dict[str, str] | None = None) -> None:
        start = time.monotonic()
        try:
            execute_step(step, env, "reproduce")
        finally:  # an interrupted or failed attempt counts too: timings add up over resumptions
            with self.lock:
                self.timings[step.name] = self.timings.get(step.name, 0.0) + time.monotonic() - start
                write_json(self.out / "timings.json", self.timings)

    def train_args(self, stage: str, run: Path, variant: Variant, init: Path | None, prior: Path | None) -> list[str]:
        sets = variant_sets(stage, variant, self.config, self.overrides, self.unet_width)
        argv = ["train", stage, "--data", str(self.semiseg), "--out", str(run), "--preset", self.preset,
                "--no-progress"]
        if init is not None:
            argv += ["--init", str(init)]
        if prior is not None:
            argv += ["--prior-from", str(prior)]
        if (self.config.get("negatives") or {}).get("per_epoch"):  # lesion-free slices of the pool's training part
            argv += ["--negatives", str(self.unlabeled)]
        for item in sets:
            argv += ["--set", item]
        return self.ssinfnet(*argv)

    # -- the experiment ------------------------------------------------------------------------
    def run(self) -> None:
        w = self.work
        pre_single = self.pretrain("single", prior=None)
        singles = self.train_stage("single", SINGLE_VARIANTS, pre_single, prior=None)
        single_evals = self.score_stage("single", {n: ["--single", str(r)] for n, r in singles.items()},
                                        "SSInfNet", "SInfNet")
        prior_name = max(singles, key=lambda n: self._val_dice(singles[n]))
        prior = singles[prior_name]
        # The single stage's tables land in --out now: on a CPU the multi stage takes hours more.
        self.collect(prior_name)
        multis = self.train_stage("multi", MULTI_VARIANTS, self.pretrain("multi", prior), prior)
        multi_evals = self.score_stage(
            "multi", {n: ["--single", str(prior), "--multi", str(r)] for n, r in multis.items()},
            "Multi SSInfNet", "Multi SInfNet")

        report = self.out / "report.html"
        runs = [pre_single, *singles.values(), w / "pretrain-multi", *multis.values()]  # training curves of each
        self.step("report", self.ssinfnet(
            "report", *map(str, single_evals + multi_evals), str(w / "compare-single"), str(w / "compare-multi"),
            *map(str, runs), "--out", str(report), "--title", f"ssinfnet reproduction ({self.preset} preset)"),
            report)
        best_multi = max(multis, key=lambda n: self._val_dice(multis[n]))
        bundle = w / "bundle"
        self.step("export bundle", self.ssinfnet(
            "export", "--single", str(prior), "--multi", str(multis[best_multi]), "--out", str(bundle),
            "--storage", "bf16", "--overwrite"), bundle / "pipeline.json")
        bundled = self.evaluate("bundled", ["--pipeline", str(bundle)])
        self.collect(prior_name)
        # The test metrics travel with the weights: the model card quotes them, a test re-checks them.
        shutil.copy2(bundled / "summary.json", bundle / "metrics.json")
        card_from_runs(bundle, prior, multis[best_multi], self._read_json(bundled / "summary.json"),
                       chosen_by=f"best validation Dice among the single-stage models ({prior_name}) and among the "
                                 f"multi-stage models ({best_multi}); the test slices were used once, for the metrics",
                       preset=self.preset, overrides=self.overrides,
                       regenerate=[f"`ssinfnet reproduce` (every step: `{_shown(self.out)}/commands.sh`)"])
        if self.bundle_to is not None:
            shutil.copytree(bundle, self.bundle_to, dirs_exist_ok=True)

    def score_stage(self, label: str, models: dict[str, list[str]], reference: str, planned: str) -> list[Path]:
        """Evaluate a stage's models once on the test slices and compare them with paired tests; the
        paper's model (``reference``) comes first, so every other model is tested against it, and its
        comparison with ``planned`` is the planned one (the others are exploratory)."""
        evals = [self.evaluate(name, args) for name, args in sorted(models.items(), key=lambda m: m[0] != reference)]
        dest = self.work / f"compare-{label}"
        self.step(f"compare {label}", self.ssinfnet(
            "compare", *map(str, evals), "--planned", slug(planned), "--out", str(dest), "--overwrite"),
            dest / "comparison.json")
        return evals

    def pretrain(self, network: str, prior: Path | None) -> Path:
        run = self.work / f"pretrain-{network}"
        labeled = pretraining_view(self.semiseg, self.work / "pretrain-labeled", self.config)
        argv = ["pretrain", "--network", network, "--data", str(self.unlabeled), str(labeled),
                "--out", str(run), "--preset", self.preset, "--no-progress"]
        if prior is not None:
            argv += ["--prior-from", str(prior)]
        argv += [a for item in self.overrides for a in ("--set", item)]
        self.step(f"pretrain {network}", self.ssinfnet(*argv), run / "summary.json", run)
        self.runs[run.name] = run
        return run

    def train_stage(self, stage: str, variants: tuple[Variant, ...], pretrained: Path,
                    prior: Path | None) -> dict[str, Path]:
        runs, steps = {}, []
        for variant in variants:
            run = runs[variant.name] = self.work / slug(variant.name)
            steps.append(Step(f"train {variant.name}", self.train_args(
                stage, run, variant, pretrained if variant.pretrained else None, prior), run / "summary.json", run))
        self.steps(steps)
        self.runs.update({run.name: run for run in runs.values()})
        return runs

    def evaluate(self, name: str, model_args: list[str]) -> Path:
        dest = self.evals[name] = self.work / "eval" / slug(name)
        self.step(f"evaluate {name}", self.ssinfnet(
            "evaluate", "--data", str(self.semiseg), "--split", "test", *model_args, "--out", str(dest),
            "--overwrite", "--purpose", f"reproduce: report {name}"), dest / "summary.json")
        return dest

    def collect(self, prior_name: str) -> None:
        """Copy the small, readable results made so far into --out: tables, each evaluation's summary, ROC
        points and gallery (``evaluation.results.keep``) and each run's metrics.jsonl and summary.json
        (``run-<name>/``), so that ``scripts/regenerate_results.py`` redraws the report with its figures."""
        for label in ("single", "multi"):
            src = self.work / f"compare-{label}"
            for path in src.glob("*"):
                if path.suffix in (".md", ".csv", ".json"):
                    shutil.copy2(path, self.out / f"compare-{label}-{path.name}")
        for name, folder in self.evals.items():
            keep(folder, self.out, f"eval-{slug(name)}")
        for name, run in self.runs.items():
            for record in (METRICS, SUMMARY):
                if (run / record).is_file():
                    write_bytes(self.out / f"run-{name}" / record, (run / record).read_bytes())
        write_json(self.out / "experiment.json", {
            "preset": self.preset, "overrides": self.overrides, "prior_from": prior_name,
            "prior_chosen_by": "best validation Dice among the single-stage models",
            "unet_width": self.unet_width,
            "validation_dice": {v.name: self._val_dice(self.work / slug(v.name)) for v in SINGLE_VARIANTS},
        })
        write_text(self.out / "commands.sh", "#!/usr/bin/env bash\nset -e\n" + "\n".join(self.commands) + "\n")

    # -- helpers -------------------------------------------------------------------------------
    def _val_dice(self, run: Path) -> float:
        """Validation Dice of a run: infection Dice (single), mean of GGO and consolidation (multi)."""
        validation = (self._read_json(run / "summary.json") or {}).get("validation", {})
        if "val_dice" in validation:
            return float(validation["val_dice"])
        lesions = [validation[k] for k in ("val_dice_GGO", "val_dice_consolidation") if k in validation]
        return sum(lesions) / len(lesions) if lesions else float("-inf")

    @staticmethod
    def _read_json(path: Path):
        return json.loads(path.read_text()) if path.exists() else None


def run_steps(steps: list[Step], jobs: int, execute=None) -> None:
    """Run the steps not complete yet (``step.done`` missing), up to ``jobs`` at once; ``execute(step, env)``
    runs one (default :func:`execute_step`). Parallel steps share the CPU threads (OMP_NUM_THREADS, else
    every core) evenly: on a small machine two one-thread trainings finish sooner together than one after
    the other with two threads each (measured on 2 cores: an Inf-Net epoch takes 2.35 s on one thread,
    1.5 s on two). The first failure cancels the steps not started yet."""
    execute = execute or execute_step
    todo = [step for step in steps if not step.done.exists()]
    lanes = min(max(1, jobs), len(todo))
    if lanes <= 1:
        for step in todo:
            execute(step, None)
        return
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // lanes))}
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        futures = [pool.submit(execute, step, env) for step in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def execute_step(step: Step, env: dict[str, str] | None = None, tag: str = "reproduce") -> None:
    """Run one step's verb as a subprocess; a training run folder that holds a config continues with --resume."""
    argv = step.argv
    if step.resumable is not None and (step.resumable / "config.json").exists():
        argv = argv[:3] + _resume_argv(argv[3:])
    print(f"[{tag}] {step.name}: {shlex.join(map(str, argv[3:]))}", flush=True)
    run_verb(argv, env)


def run_verb(argv: list[str], env: dict[str, str] | None = None) -> None:
    """One ``ssinfnet`` verb as a subprocess (``CalledProcessError`` when it fails)."""
    subprocess.run(argv, check=True, env=env)


def pretraining_view(semiseg: Path, dest: Path, config: dict) -> Path:
    """A COVID-SemiSeg-layout folder of links to the training slices that the supervised stages train
    on, without their validation slices (the same seeded split ``train`` makes: ``data.val_fraction``,
    ``seed``), so that pretraining never sees a slice that later selects a model or a threshold.
    The split is by slice: the data set gives no patient ids (each slice is its own group)."""
    from ssinfnet.data.readers import read_dataset
    from ssinfnet.data.splits import train_val_split

    samples = read_dataset(semiseg, split="train")
    train, _ = train_val_split(samples, config["data"]["val_fraction"], int(config["seed"]))
    keep = {Path(s.meta.source).stem for s in train}
    if dest.exists():
        shutil.rmtree(dest)
    for file in sorted((semiseg / "TrainingSet").rglob("*")):
        if file.is_file() and file.stem in keep:
            link = dest / file.relative_to(semiseg)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(file.resolve())
    seen = sorted(s.meta.id for s in read_dataset(dest, split="train"))
    if seen != sorted(s.meta.id for s in train):
        raise InputError("could not make the pretraining view of the training slices (file names and ids differ)",
                         semiseg)
    return dest


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else its name (no machine paths)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path.name


def _resume_argv(argv: list[str]) -> list[str]:
    """The same verb with --resume: config and data come from the run folder."""
    keep, skip = [], False
    for arg in argv:
        if skip:
            if arg.startswith("--"):
                skip = False
            else:
                continue
        if arg in ("--data", "--set", "--preset", "--init", "--prior-from", "--negatives"):
            skip = True
            continue
        keep.append(arg)
    return keep + ["--resume"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="the paper's experiment on the real benchmark (resumable, one command)",
        description="Pretrain, train U-Net / SInfNet / SSInfNet (+ focal + Lookahead) for both stages, "
                    "evaluate on the test slices once, compare with paired tests, write tables and a report. "
                    "Run it again to continue after an interruption.",
    )
    parser.add_argument("--data", required=True, help="folder holding covid-semiseg/ and unlabeled-ct/")
    parser.add_argument("--preset", default="cpu", help="training preset (cpu, paper, demo or a YAML file)")
    parser.add_argument("--work", required=True, help="folder for run folders and checkpoints (not committed)")
    parser.add_argument("--out", required=True, help="folder for the small results (tables, report, commands)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every training step")
    parser.add_argument("--bundle", help="also copy the chosen pipeline (+ MODEL_CARD.md) here, e.g. "
                                         "src/ssinfnet/weights/default")
    parser.add_argument("--jobs", type=int, default=1,
                        help="trainings of one stage run at once (they share the CPU threads; default 1)")
    parser.add_argument("--unet-width", type=int, help="base width of the U-Net baselines (default: Inf-Net's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        Experiment(Path(args.data), args.preset, Path(args.work), out, args.overrides,
                   Path(args.bundle) if args.bundle else None, args.unet_width, args.jobs).run()
    except subprocess.CalledProcessError as err:
        print(f"ssinfnet: error: step failed (exit {err.returncode}): {shlex.join(err.cmd[3:])}", file=sys.stderr)
        return err.returncode or 1
    print(f"[reproduce] done: results in {out}")
    return 0
