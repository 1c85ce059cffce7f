"""Verb ``study``: choose a training recipe by a declared protocol (the anchor: nnU-Net's
``find_best_configuration``), then score the chosen one on the test slices once.

An experiment is data: a protocol file (``studies/*.yaml``) declares the candidate recipes (each a training
preset plus ``--set`` overrides, optionally fine-tuned from kept epochs of one pretraining run, optionally
with per-fold pseudo-labels), the folds and seeds, the primary endpoint, the decision rule and the
real-scan checks. ``--dry-run`` lists every run; without it every step is a ``ssinfnet`` verb run as a
subprocess (``workflows.reproduce.run_steps``: complete steps are skipped, interrupted trainings resume,
``--jobs N`` at once), so the study may be stopped and started again any number of times.

Order: (1) pretraining runs (one per recipe's pretraining settings and seed; the unlabeled pool's training
part only, so no fold's validation slice is ever seen) -> (2) the single-stage fold runs -> pseudo-labels
per fold from the labeller recipe's model *of that fold* (trained without the fold's validation slices;
checked in the runs' records before use) -> the pseudo-label recipes' fold runs -> (3) out-of-fold scores
per recipe and seed (``crossval``) and a pipeline per candidate (``export``: its folds of the first seed)
scored on the real-scan checks -> the rule picks the single stage -> (4) the multi-stage recipes likewise,
their prior made by the chosen single stage's run of the same fold and seed -> (5) the winner exported to
``WORK/winner`` and only then scored on the test slices, once (:func:`score_test_once`). Nothing is
written into ``src/``: the study prints how to install the winner as the bundled model.

Outputs: ``study.json`` and ``out-of-fold.csv`` (per candidate: the endpoint with its clustered 95% CI, the
difference to the stage's first candidate paired by seed and slice, the paper-protocol score, the checks,
the choice) and ``budget.png`` (the single stage's endpoint against pretraining epochs).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssinfnet.errors import InputError
from ssinfnet.workflows.protocol import (
    STAGES, ENDPOINTS, Recipe, Candidate, Check, Protocol, endpoint_scores, load_protocol, paired_difference,
    pretrain_overrides, run_overrides, slice_scores,
)


# --- the plan -----------------------------------------------------------------------------------

@dataclass
class Plan:
    """Every step of a study, in waves (the steps of a wave do not depend on one another)."""

    protocol: Protocol
    work: Path
    waves: list[tuple[str, list[Any]]] = field(default_factory=list)
    sources: dict[Path, tuple[Candidate, int, int]] = field(default_factory=dict)
    """Each fold run's (candidate, seed, fold)."""

    def ssinfnet(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "ssinfnet", *map(str, argv)]

    # folders
    def pretrain_dir(self, recipe: Recipe, seed: int) -> Path:
        return self.work / "pretrain" / f"{self.protocol.pretraining_recipe(recipe).name}-s{seed}"

    def run_dir(self, candidate: Candidate, seed: int, fold: int) -> Path:
        return self.work / "runs" / candidate.name / f"s{seed}-f{fold}"

    def runs(self, candidate: Candidate, seed: int) -> list[Path]:
        return [self.run_dir(candidate, seed, k) for k in range(self.protocol.folds)]

    def exported_runs(self, candidate: Candidate) -> list[Path]:
        """The runs a candidate's pipeline is made of: the protocol's export folds of the first seed."""
        folds = self.protocol.export_folds or range(self.protocol.folds)
        return [self.run_dir(candidate, self.protocol.seeds[0], k) for k in folds]

    def cv(self, candidate: Candidate, seed: int) -> Path:
        return self.work / "cv" / f"{candidate.name}-s{seed}.json"

    def pipeline(self, candidate: Candidate) -> Path:
        return self.work / "pipelines" / candidate.name

    def labeller(self, recipe: Recipe, seed: int, fold: int) -> Path:
        return self.work / "labellers" / recipe.pseudo.labeller / f"s{seed}-f{fold}"

    def pseudo(self, recipe: Recipe, seed: int, fold: int) -> Path:
        return self.work / "pseudo" / recipe.name / f"s{seed}-f{fold}"

    # steps
    def step(self, name: str, argv: list[str], done: Path, resumable: Path | None = None):
        from ssinfnet.workflows.reproduce import Step

        return Step(name, self.ssinfnet(*argv), done, resumable)

    def stage(self, stage: str, prior: Candidate | None) -> None:
        """Add the waves of one stage (``prior``: the chosen single stage, for the multi stage; None in a
        dry run, shown as ``<single winner>``)."""
        p = self.protocol
        candidates = p.candidates(stage)
        pretraining, seen = [], set()
        for c in candidates:
            run = p.pretraining_recipe(c.recipe) if c.recipe.pretrain else None  # its own, or its `from`'s
            if run is not None and run.name not in seen:
                seen.add(run.name)
                pretraining += [self.pretrain_step(run, seed) for seed in p.seeds]
        self.waves.append((f"{stage}: pretraining", pretraining))
        plain = [c for c in candidates if c.recipe.pseudo is None]
        self.waves.append((f"{stage}: fold runs", self.fold_steps(plain, prior)))
        labelled = [c for c in candidates if c.recipe.pseudo is not None]
        if labelled:
            labellers, pseudo = [], []
            for recipe in {c.recipe.name: c.recipe for c in labelled}.values():
                for seed in p.seeds:
                    for fold in range(p.folds):
                        labellers.append(self.labeller_step(recipe, seed, fold))
                        pseudo.append(self.pseudo_step(recipe, seed, fold))
            self.waves.append((f"{stage}: per-fold pseudo-labellers", _unique(labellers)))
            self.waves.append((f"{stage}: per-fold pseudo-labels", pseudo))
            self.waves.append((f"{stage}: fold runs with pseudo-labels", self.fold_steps(labelled, prior)))
        self.waves.append((f"{stage}: out-of-fold scores", [
            self.step(f"crossval {c.name} seed {seed}", ["crossval", *self.runs(c, seed), "--out", self.cv(c, seed),
                                                          "--overwrite"], self.cv(c, seed))
            for c in candidates for seed in p.seeds]))

    def candidate_pipelines(self, stage: str, prior: Candidate | None) -> None:
        """Add the waves that export each candidate and score it on the real-scan checks (after crossval:
        the export takes crossval's flip choice)."""
        candidates, checks = self.protocol.candidates(stage), self.protocol.checks
        self.waves.append((f"{stage}: candidate pipelines", [self.export_step(c, prior) for c in candidates]))
        self.waves.append((f"{stage}: real-scan checks", [
            self.check_step(c, check) for c in candidates for check in checks if check.measure == "slice_auc"]))

    def pretrain_step(self, recipe: Recipe, seed: int):
        out = self.pretrain_dir(recipe, seed)
        argv = ["pretrain", "--network", recipe.stage, "--data", self.protocol.data(self.protocol.pool), "--out", out,
                "--preset", recipe.preset, "--no-progress", *_sets(pretrain_overrides(recipe, seed))]
        return self.step(f"pretrain {recipe.name} seed {seed}", argv, out / "summary.json", out)

    def fold_steps(self, candidates: list[Candidate], prior: Candidate | None) -> list[Any]:
        from ssinfnet.core.runs import kept_epoch

        p, steps = self.protocol, []
        for c in candidates:
            for seed in p.seeds:
                for fold in range(p.folds):
                    out = self.run_dir(c, seed, fold)
                    argv = ["train", c.recipe.stage, "--data", p.data(p.labeled), "--out", out,
                            "--preset", c.recipe.preset, "--no-progress"]
                    if c.epochs is not None:
                        argv += ["--init", kept_epoch(self.pretrain_dir(c.recipe, seed), c.epochs)]
                    if c.recipe.stage == "multi":
                        argv += ["--prior-from", self.run_dir(prior, seed, fold) if prior else "<single winner>"]
                    if c.recipe.negatives:
                        argv += ["--negatives", p.data(p.pool)]
                    if c.recipe.pseudo is not None:
                        argv += ["--pseudo", self.pseudo(c.recipe, seed, fold)]
                    argv += _sets(run_overrides(p, c, fold, seed))
                    steps.append(self.step(f"train {c.name} seed {seed} fold {fold}", argv, out / "summary.json", out))
                    self.sources[out] = (c, seed, fold)
        return steps

    def labeller_step(self, recipe: Recipe, seed: int, fold: int):
        out = self.labeller(recipe, seed, fold)
        run = self.run_dir(self.protocol.candidate(recipe.pseudo.labeller), seed, fold)
        return self.step(f"labeller {recipe.pseudo.labeller} seed {seed} fold {fold}",
                         ["export", "--single", run, "--out", out, "--overwrite"], out / "MODEL_CARD.md")

    def pseudo_step(self, recipe: Recipe, seed: int, fold: int):
        p, out = self.protocol, self.pseudo(recipe, seed, fold)
        heldout = _config(recipe.preset, recipe.overrides)["data"]["heldout_fraction"]
        return self.step(f"pseudo-label {recipe.name} seed {seed} fold {fold}",
                         ["pseudolabel", p.data(p.pool), "--model", self.labeller(recipe, seed, fold), "--out", out,
                          "--count", recipe.pseudo.count, "--seed", seed, "--heldout-fraction", heldout,
                          "--overwrite", "--no-progress"], out / "pseudolabels.json")

    def check_labeller(self, candidate: Candidate, seed: int, fold: int) -> None:
        """Refuse to train fold ``fold`` on pseudo-labels from a model that saw its validation slices: the
        labeller must be the labeller recipe's run that validated on this very fold (same folds, seed and
        labeled data in its records), so it never trained on them, and the labels must be its own."""
        from ssinfnet.core.folders import read_json
        from ssinfnet.core.runs import RunFolder

        p, recipe = self.protocol, candidate.recipe
        labeller = RunFolder(self.run_dir(p.candidate(recipe.pseudo.labeller), seed, fold))
        config, info = labeller.config(), labeller.info()
        made_by = read_json(self.pseudo(recipe, seed, fold) / "pseudolabels.json").get("model")
        expected = (fold, p.folds, seed, [str(p.data(p.labeled))])
        if (config["data"]["fold"], config["data"]["folds"], config["seed"], info["inputs"]["data"]) != expected \
                or made_by != self.labeller(recipe, seed, fold).name:
            raise InputError(f"the pseudo-labels of {candidate.name} seed {seed} fold {fold} do not come from a "
                             "model that validated on that fold", labeller.path)

    def export_step(self, candidate: Candidate, prior: Candidate | None):
        """The candidate as a pipeline: the first seed's models of the export folds (all of them: an
        ensemble), threshold and flip TTA as crossval chose them on the single stage's out-of-fold
        predictions."""
        seed, out = self.protocol.seeds[0], self.pipeline(candidate)
        single = candidate if candidate.recipe.stage == "single" else prior
        singles = self.exported_runs(single) if single else ["<single winner runs>"]
        argv = ["export", "--single", *singles, "--out", out, "--overwrite", "--storage", "bf16",
                "--threshold-from", self.cv(single, seed) if single else "<single winner cv>"]
        if candidate.recipe.stage == "multi":
            argv += ["--multi", *self.exported_runs(candidate)]
        if single is not None and self.cv(single, seed).exists() and json.loads(self.cv(single, seed).read_text())["flip_tta"]:
            argv.append("--flip-tta")
        return self.step(f"export {candidate.name}", argv, out / "MODEL_CARD.md")

    def check_step(self, candidate: Candidate, check: Check):
        out = self.work / "checks" / candidate.name / check.name
        return self.step(f"check {check.name} {candidate.name}",
                         ["evaluate", "--data", self.protocol.data(check.data), "--pipeline", self.pipeline(candidate),
                          "--out", out, "--overwrite", "--no-progress"], out / "summary.json")

def _sets(overrides: list[str]) -> list[str]:
    return [a for item in overrides for a in ("--set", item)]


def _unique(steps: list[Any]) -> list[Any]:
    seen, kept = set(), []
    for step in steps:
        if step.done not in seen:
            seen.add(step.done)
            kept.append(step)
    return kept


def _config(preset: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    from ssinfnet.training.config import load_config

    return load_config(preset, list(overrides))


def test_argv(protocol: Protocol, pipeline: Path, out: Path) -> list[str]:
    return ["evaluate", "--data", protocol.data(protocol.test["data"]), "--split", protocol.test["split"],
            "--pipeline", pipeline, "--out", out, "--overwrite", "--no-progress", "--purpose", test_purpose(protocol)]


def test_purpose(protocol: Protocol) -> str:
    """The test ledger's purpose of the study's one scoring of the test slices."""
    return f"study {protocol.name}: winner, scored once"


# --- running ------------------------------------------------------------------------------------

class Study:
    def __init__(self, protocol: Protocol, work: Path, jobs: int = 1):
        self.protocol, self.work, self.jobs = protocol, work, max(1, jobs)
        self.commands: list[str] = []

    def run_waves(self, plan: Plan) -> None:
        from ssinfnet.workflows.reproduce import run_steps

        for title, steps in plan.waves:
            if title.endswith("fold runs with pseudo-labels"):
                for step in steps:  # every pseudo-label folder came from a model that never saw its fold
                    candidate, seed, fold = plan.sources[step.resumable]
                    plan.check_labeller(candidate, seed, fold)
            self.commands += [shlex.join(["ssinfnet", *map(str, s.argv[3:])]) for s in steps]
            run_steps(steps, self.jobs, lambda step, env: execute(step, env))
        plan.waves.clear()

    def run(self) -> dict[str, Any]:
        p = self.protocol
        result: dict[str, Any] = {"protocol": p.name, "question": p.question, "endpoint": ENDPOINTS[p.endpoint],
                                  "rule": vars(p.rule), "checks": [c.text() for c in p.checks], "stages": {}}
        from ssinfnet.core.folders import read_json

        earlier = read_json(self.work / "study.json") if (self.work / "study.json").exists() else {}
        prior = None
        for stage in STAGES:
            if not p.candidates(stage):
                continue
            plan = Plan(p, self.work)
            plan.stage(stage, prior)
            self.run_waves(plan)
            plan.candidate_pipelines(stage, prior)
            self.run_waves(plan)
            table = self.table(stage, prior)
            name, why = p.rule.choose(table)
            result["stages"][stage] = {"candidates": table, "chosen": name, "why": why,
                                       "prior": prior.name if prior else None}
            self.write_tables(result)
            if name is None:
                print(f"[study] {stage} stage: {why}; nothing exported, the test slices stay unscored")
                return result
            print(f"[study] {stage} stage: {name} ({why})")
            prior = p.candidate(name) if stage == "single" else prior
        stages = result["stages"]
        winner = p.candidate(stages.get("multi", stages["single"])["chosen"])
        install = self.export_winner(winner)
        result["winner"] = {"name": winner.name, "pipeline": "winner", "install": install}
        self.write_tables(result)
        # The test slices are scored only now, after the choice, and once: a later invocation that finds
        # this winner scored already does not score it again.
        scored = earlier.get("test") if earlier.get("winner", {}).get("name") == winner.name else None
        result["test"] = scored or score_test_once(p, self.work / "winner", self.work)
        self.write_tables(result)
        return result

    def table(self, stage: str, prior: Candidate | None) -> list[dict[str, Any]]:
        """One row per candidate: the endpoint (mean of the seeds' out-of-fold scores), its 95% CI over the
        pooled per-slice scores (clustered by source group across seeds), its difference to the stage's
        first candidate (the reference) paired by seed and slice with a clustered CI, each seed's score,
        the paper-protocol score beside it and the checks."""
        from ssinfnet.core.folders import read_json
        from ssinfnet.core.metrics import mean_ci

        plan, rows, reference = Plan(self.protocol, self.work), [], None
        for c in self.protocol.candidates(stage):
            cvs = [read_json(plan.cv(c, seed)) for seed in self.protocol.seeds]
            scores = [endpoint_scores(cv, self.protocol.endpoint) for cv in cvs]
            slices = slice_scores(dict(zip(self.protocol.seeds, cvs)), self.protocol.endpoint)
            ci = mean_ci([v for v, _ in slices.values()], [g for _, g in slices.values()])
            reference = reference or (c.name, slices)
            difference = paired_difference(slices, reference[1])
            checks = {check.name: measure(check, plan.pipeline(c), self.protocol, self.work / "checks" / c.name)
                      for check in self.protocol.checks}
            rows.append({"name": c.name, "recipe": c.recipe.name, "pretrain_epochs": c.epochs, "cost": c.cost,
                         "endpoint": sum(score for score, _ in scores) / len(scores),
                         "ci_low": ci.ci_low, "ci_high": ci.ci_high, "images": ci.n,
                         "reference": reference[0], "vs_reference": difference.mean,
                         "vs_reference_low": difference.ci_low, "vs_reference_high": difference.ci_high,
                         "oof_dice": sum(cv["score"] for cv in cvs) / len(cvs),
                         "seeds": {str(s): score for s, (score, _) in zip(self.protocol.seeds, scores)},
                         "flip_tta": [cv["flip_tta"] for cv in cvs], "checks": checks,
                         "passes": all(check.passes(checks[check.name]) for check in self.protocol.checks)})
        return rows

    def export_winner(self, winner: Candidate) -> str:
        """The winner's pipeline (already exported as a candidate) copied to ``WORK/winner`` atomically."""
        import shutil

        from ssinfnet.fileio import atomic_dir

        out = self.work / "winner"
        if not (out / "pipeline.json").exists():
            with atomic_dir(out, overwrite=True) as tmp:
                shutil.copytree(Plan(self.protocol, self.work).pipeline(winner), tmp, dirs_exist_ok=True)
        return f"cp {out}/* src/ssinfnet/weights/default/  # then commit; or: ssinfnet segment --model {out}"

    def write_tables(self, result: dict[str, Any]) -> None:
        from ssinfnet.fileio import write_json, write_text

        write_json(self.work / "study.json", result)
        buffer = io.StringIO()
        columns = ["stage", "name", "recipe", "pretrain_epochs", "cost", "endpoint", "ci_low", "ci_high", "images",
                   "reference", "vs_reference", "vs_reference_low", "vs_reference_high", "oof_dice", "passes",
                   *[c.name for c in self.protocol.checks], "chosen"]
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        for stage, entry in result["stages"].items():
            for row in entry["candidates"]:
                writer.writerow({**{k: row[k] for k in columns if k in row}, **row["checks"], "stage": stage,
                                 "chosen": row["name"] == entry["chosen"]})
        write_text(self.work / "out-of-fold.csv", buffer.getvalue())
        if "single" in result["stages"]:
            from ssinfnet.fileio import write_bytes
            from ssinfnet.report.figures import budget_figure

            write_bytes(self.work / "budget.png", budget_figure(
                result["stages"]["single"]["candidates"], self.protocol.endpoint,
                f"{self.protocol.name}: single stage, out of fold ({len(self.protocol.seeds)} seed(s))"))
        write_text(self.work / "commands.sh", "#!/usr/bin/env bash\nset -e\n" + "\n".join(self.commands) + "\n")


def execute(step: Any, env: dict[str, str] | None) -> None:
    from ssinfnet.workflows.reproduce import execute_step

    step.done.parent.mkdir(parents=True, exist_ok=True)
    execute_step(step, env, "study")


def measure(check: Check, pipeline: Path, protocol: Protocol, out: Path) -> float:
    """One real-scan check of a candidate pipeline (cached as ``out/CHECK.json``): lesion measures through
    segment's prediction path (``predict_scan``; a single-stage pipeline too), the slice AUC from the
    evaluation the plan ran."""
    from ssinfnet.core.folders import read_json
    from ssinfnet.fileio import write_json

    if check.measure == "slice_auc":
        return float((read_json(out / check.name / "summary.json").get("auc") or {}).get("detection", float("nan")))
    cached = out / f"{check.name}.json"
    if cached.exists():
        return float(read_json(cached)["value"])
    from ssinfnet.inference.predictor import load_pipeline
    from ssinfnet.inference.quantify import quantify
    from ssinfnet.inference.segment import predict_scan, read_scan, resolve_precision

    device, bf16 = resolve_precision()
    scan = read_scan(protocol.data(check.data))
    predicted = predict_scan(load_pipeline(pipeline, device=device, bf16=bf16), scan)
    whole = quantify(predicted.labels, predicted.lung, scan.element_size, scan.volumetric, sides=False)
    value = _lesion_value(whole, check)
    write_json(cached, {"check": check.text(), "data": check.data, "value": value})
    return value


def _lesion_value(row: dict[str, Any], check: Check) -> float:
    """The check's measure from segment's quantities; no lung found means no lesion (0)."""
    key = {"lesion_percent_of_lung": "lesion_percent_of_lung", "lesion_ml": "lesion_ml"}[check.measure]
    if key not in row:
        raise InputError(f"check {check.name}: {check.measure} needs a volume with known voxel sizes", check.data)
    return 0.0 if row[key] is None else float(row[key])


def score_test_once(protocol: Protocol, pipeline: Path, work: Path) -> dict[str, Any]:
    """The one scoring of the chosen pipeline on the test slices, after the choice: ``ssinfnet evaluate``
    once (a second study invocation finds its summary and does not score again), which appends it to the
    test ledger with :func:`test_purpose`."""
    from ssinfnet.core.folders import read_json

    out = work / "test"
    purpose = test_purpose(protocol)
    if not (out / "summary.json").exists():
        argv = [sys.executable, "-m", "ssinfnet", *map(str, test_argv(protocol, pipeline, out))]
        print(f"[study] {purpose}: {shlex.join(argv[3:])}", flush=True)
        subprocess.run(argv, check=True)
    return {"purpose": purpose, "summary": str(out / "summary.json"), "auc": read_json(out / "summary.json").get("auc")}


# --- the verb -----------------------------------------------------------------------------------

def dry_run(protocol: Protocol, work: Path) -> list[str]:
    """Every step the study would run, one line each (the multi stage's prior and the winner are chosen
    on the way, so they are shown as placeholders)."""
    plan = Plan(protocol, work)
    for stage in STAGES:
        if protocol.candidates(stage):
            plan.stage(stage, None)
            plan.candidate_pipelines(stage, None)
    lines = []
    for title, steps in plan.waves:
        for step in steps:
            lines.append(f"[{title}] {step.name}: {shlex.join(['ssinfnet', *map(str, step.argv[3:])])}")
    for stage in STAGES:
        for c in protocol.candidates(stage):
            for check in protocol.checks:
                if check.measure != "slice_auc":
                    lines.append(f"[{stage}: real-scan checks] check {check.name} {c.name}: segment's prediction of "
                                 f"{protocol.data(check.data)} by {work / 'pipelines' / c.name} ({check.text()})")
    lines.append(f"[winner] the rule's choice: {work / 'pipelines' / '<winner>'} copied to {work / 'winner'}")
    test = shlex.join(["ssinfnet", *map(str, test_argv(protocol, work / "winner", work / "test"))])
    lines.append(f"[test, scored once] evaluate the winner on the test slices: {test}")
    return lines


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "study", help="choose a training recipe by a declared protocol (folds x seeds, rule, real-scan checks)",
        description="PROTOCOL.yaml (recipes = preset + overrides, folds, seeds, endpoint, rule, checks) -> every "
                    "fold run (resumable), out-of-fold tables with CIs, the rule's choice, the winner exported "
                    "to WORK/winner and scored on the test slices once. --dry-run lists every step.",
    )
    parser.add_argument("protocol", metavar="PROTOCOL.yaml")
    parser.add_argument("--work", required=True, help="folder for every run, table and pipeline (not src/)")
    parser.add_argument("--data-root", help="folder holding the protocol's data (default: its data.root)")
    parser.add_argument("--jobs", type=int, default=1, help="steps run at once (they share the CPU threads)")
    parser.add_argument("--dry-run", action="store_true", help="list every step; run nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol, args.data_root)
    work = Path(args.work)
    if args.dry_run:
        lines = dry_run(protocol, work)
        print("\n".join(lines))
        trains = sum("] train " in line or "] pretrain " in line for line in lines)
        print(f"[study] {len(lines)} steps, {trains} training and pretraining runs (dry run: nothing was run)")
        return 0
    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    try:
        result = Study(protocol, work, args.jobs).run()
    except subprocess.CalledProcessError as err:
        print(f"ssinfnet: error: step failed (exit {err.returncode}): {shlex.join(map(str, err.cmd[3:]))}",
              file=sys.stderr)
        return err.returncode or 1
    if "winner" in result:
        print(f"[study] winner {result['winner']['name']}: {work / 'winner'}; to install it as the bundled model: "
              f"{result['winner']['install']}")
    return 0
