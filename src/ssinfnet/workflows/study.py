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
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssinfnet.errors import InputError

STAGES = ("single", "multi")
ENDPOINTS = {"oof_dice": "out-of-fold Dice of crossval (paper protocol, core.metrics.class_scores: per-image mean "
                         "infection Dice at the pooled out-of-fold threshold (single stage), mean of GGO and "
                         "consolidation Dice (multi stage), with or without flip TTA as crossval chose)"}
MEASURES = {
    "lesion_percent_of_lung": "segment's lesion % of the lung region of a scan (core.burden)",
    "lesion_ml": "segment's lesion volume of a scan in mL",
    "slice_auc": "evaluate's slice-level detection AUC (layout dicom-slice-labels)",
}
TIE_BREAKS = ("cost",)


# --- the protocol -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pretraining:
    epochs_checkpoints: tuple[int, ...]
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class PseudoLabels:
    labeller: str
    """A single-stage candidate; fold k's pseudo-labels come from its run of fold k (same seed)."""
    count: int = 500


@dataclass(frozen=True)
class Recipe:
    name: str
    stage: str
    preset: str
    overrides: tuple[str, ...] = ()
    cost: float = 0.0
    negatives: bool = True
    pretrain: Pretraining | None = None
    pseudo: PseudoLabels | None = None
    why: str = ""


@dataclass(frozen=True)
class Candidate:
    """A recipe at one pretraining budget (``epochs`` None: no pretraining)."""

    recipe: Recipe
    epochs: int | None = None

    @property
    def name(self) -> str:
        return self.recipe.name if self.epochs is None else f"{self.recipe.name}-pre{self.epochs}"

    @property
    def cost(self) -> float:
        return self.recipe.cost + (self.epochs or 0)


@dataclass(frozen=True)
class Check:
    name: str
    data: str
    measure: str
    max: float | None = None
    min: float | None = None

    def passes(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return (self.max is None or value <= self.max) and (self.min is None or value >= self.min)

    def text(self) -> str:
        bound = f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"
        return f"{self.name}: {self.measure} {bound}"


@dataclass(frozen=True)
class Rule:
    """Best endpoint among the candidates that pass every check; candidates within ``tie_margin`` of the
    best are tied and the tie goes to the lowest ``tie_break`` (cost: the recipe's declared cost + its
    pretraining epochs), then to the better endpoint."""

    tie_margin: float = 0.0
    tie_break: str = "cost"

    def choose(self, rows: list[dict[str, Any]]) -> tuple[str | None, str]:
        """(the chosen candidate's name or None, why) from rows with name, endpoint, cost, passes."""
        eligible = [row for row in rows if row["passes"] and not math.isnan(row["endpoint"])]
        if not eligible:
            return None, "no candidate passes every check"
        best = max(eligible, key=lambda row: row["endpoint"])
        tied = [row for row in eligible if row["endpoint"] >= best["endpoint"] - self.tie_margin]
        winner = min(tied, key=lambda row: (row[self.tie_break], -row["endpoint"]))
        why = f"best endpoint {best['name']} ({best['endpoint']:.4f})"
        if winner is not best:
            why += (f"; {winner['name']} ({winner['endpoint']:.4f}) is within {self.tie_margin:g} and cheaper "
                    f"({self.tie_break} {winner[self.tie_break]:g} vs {best[self.tie_break]:g})")
        return winner["name"], why


@dataclass(frozen=True)
class Protocol:
    name: str
    path: Path
    root: Path
    labeled: str
    pool: str
    test: dict[str, str]
    folds: int
    seeds: tuple[int, ...]
    endpoint: str
    rule: Rule
    recipes: tuple[Recipe, ...]
    checks: tuple[Check, ...] = ()
    question: str = ""

    def candidates(self, stage: str) -> list[Candidate]:
        found = []
        for recipe in self.recipes:
            if recipe.stage == stage:
                budgets = recipe.pretrain.epochs_checkpoints if recipe.pretrain else (None,)
                found += [Candidate(recipe, epochs) for epochs in budgets]
        return found

    def candidate(self, name: str) -> Candidate:
        return next(c for stage in STAGES for c in self.candidates(stage) if c.name == name)

    def data(self, relative: str) -> Path:
        return self.root / relative


def _fail(path: Path, key: str, problem: str) -> InputError:
    return InputError(f"protocol {key}: {problem}", path)


def _take(node: Any, key: str, path: Path, kind: type | tuple, required: bool = True, default: Any = None) -> Any:
    name = key.rsplit(".", 1)[-1]
    if not isinstance(node, dict):
        raise _fail(path, key.rsplit(".", 1)[0], "must be a mapping")
    if name not in node:
        if required:
            raise _fail(path, key, "missing")
        return default
    value = node[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join({str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a mapping",
                             bool: "true/false"}[k] for k in kinds)
        raise _fail(path, key, f"must be {names}, not {value!r}")
    return value


def _known(node: dict, allowed: tuple[str, ...], key: str, path: Path) -> None:
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        prefix = f"{key}." if key else ""
        raise _fail(path, f"{prefix}{unknown[0]}", f"unknown key (known here: {', '.join(allowed)})")


def load_protocol(path: str | Path, data_root: str | Path | None = None) -> Protocol:
    """Read and check a protocol file: a bad one is one line naming the key and the file, before any run.
    Every recipe's training config is resolved (``load_config``) so that a bad preset or override fails here."""
    import yaml

    from ssinfnet.core.folders import read_text
    from ssinfnet.training.config import load_config

    path = Path(path)
    try:
        raw = yaml.safe_load(read_text(path))
    except yaml.YAMLError as err:
        raise InputError(f"protocol is not valid YAML ({getattr(err, 'problem', err)})", path) from None
    if not isinstance(raw, dict):
        raise InputError("a protocol must be a YAML mapping", path)
    _known(raw, ("name", "question", "data", "folds", "seeds", "endpoint", "rule", "recipes", "checks"), "", path)
    data = _take(raw, "data", path, dict)
    _known(data, ("root", "labeled", "pool", "test"), "data", path)
    test = _take(data, "data.test", path, dict)
    _known(test, ("data", "split"), "data.test", path)
    seeds = _take(raw, "seeds", path, list)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise _fail(path, "seeds", "must be a non-empty list of integers >= 0")
    folds = _take(raw, "folds", path, int)
    if folds < 2:
        raise _fail(path, "folds", f"must be at least 2, not {folds}")
    endpoint = _take(raw, "endpoint", path, dict)
    _known(endpoint, ("metric", "why"), "endpoint", path)
    metric = _take(endpoint, "endpoint.metric", path, str)
    if metric not in ENDPOINTS:
        raise _fail(path, "endpoint.metric", f"{metric!r} is not one of {', '.join(ENDPOINTS)}")
    rule = _take(raw, "rule", path, dict)
    _known(rule, ("maximise", "tie_margin", "tie_break", "why"), "rule", path)
    if _take(rule, "rule.maximise", path, str) != "endpoint":
        raise _fail(path, "rule.maximise", "must be 'endpoint' (the primary endpoint)")
    margin = float(_take(rule, "rule.tie_margin", path, (int, float), False, 0.0))
    if margin < 0:
        raise _fail(path, "rule.tie_margin", f"must be >= 0, not {margin}")
    tie_break = _take(rule, "rule.tie_break", path, str, False, "cost")
    if tie_break not in TIE_BREAKS:
        raise _fail(path, "rule.tie_break", f"{tie_break!r} is not one of {', '.join(TIE_BREAKS)}")

    recipes = [_recipe(item, f"recipes[{i}]", path) for i, item in enumerate(_take(raw, "recipes", path, list))]
    names = [r.name for r in recipes]
    if not recipes or len(set(names)) != len(names):
        raise _fail(path, "recipes", "must be a non-empty list of recipes with distinct names")
    protocol = Protocol(
        name=_take(raw, "name", path, str), path=path,
        root=Path(data_root if data_root is not None else _take(data, "data.root", path, str)),
        labeled=_take(data, "data.labeled", path, str), pool=_take(data, "data.pool", path, str),
        test={"data": _take(test, "data.test.data", path, str), "split": _take(test, "data.test.split", path, str)},
        folds=folds, seeds=tuple(seeds), endpoint=metric, rule=Rule(margin, tie_break), recipes=tuple(recipes),
        checks=tuple(_check(item, f"checks[{i}]", path) for i, item in enumerate(_take(raw, "checks", path, list, False, []))),
        question=_take(raw, "question", path, str, False, ""),
    )
    if not protocol.candidates("single"):
        raise _fail(path, "recipes", "needs at least one single-stage recipe")
    singles = {c.name for c in protocol.candidates("single")}
    for i, recipe in enumerate(recipes):
        key = f"recipes[{i}]"
        if recipe.pseudo is not None:
            labeller = next((c for c in protocol.candidates("single") if c.name == recipe.pseudo.labeller), None)
            if recipe.stage != "single":
                raise _fail(path, f"{key}.pseudo", "pseudo-labels are for single-stage recipes (a fold's single "
                                                     "model labels infection only)")
            if labeller is None or labeller.recipe.pseudo is not None:
                raise _fail(path, f"{key}.pseudo.labeller", f"{recipe.pseudo.labeller!r} is not a single-stage "
                                                              f"candidate without pseudo-labels (candidates: {', '.join(sorted(singles))})")
        try:
            for candidate in protocol.candidates(recipe.stage):
                if candidate.recipe is recipe:
                    load_config(recipe.preset, run_overrides(protocol, candidate, 0, 0))
            if recipe.pretrain is not None:
                load_config(recipe.preset, pretrain_overrides(recipe, 0))
        except InputError as err:
            raise _fail(path, key, f"{recipe.name}: {err.problem}") from None
    return protocol


def _recipe(item: Any, key: str, path: Path) -> Recipe:
    if not isinstance(item, dict):
        raise _fail(path, key, "must be a mapping")
    _known(item, ("name", "stage", "preset", "set", "cost", "negatives", "pretrain", "pseudo", "why"), key, path)
    name = _take(item, f"{key}.name", path, str)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise _fail(path, f"{key}.name", f"{name!r} must be letters, digits, '-' or '_' (it names folders)")
    stage = _take(item, f"{key}.stage", path, str)
    if stage not in STAGES:
        raise _fail(path, f"{key}.stage", f"{stage!r} is not one of {', '.join(STAGES)}")
    overrides = _strings(item, f"{key}.set", path)
    pretrain = pseudo = None
    if "pretrain" in item:
        node = _take(item, f"{key}.pretrain", path, dict)
        _known(node, ("epochs_checkpoints", "set"), f"{key}.pretrain", path)
        epochs = _take(node, f"{key}.pretrain.epochs_checkpoints", path, list)
        if not epochs or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs) \
                or len(set(epochs)) != len(epochs):
            raise _fail(path, f"{key}.pretrain.epochs_checkpoints", "must be distinct integers >= 0")
        pretrain = Pretraining(tuple(sorted(epochs)), _strings(node, f"{key}.pretrain.set", path))
    if "pseudo" in item:
        node = _take(item, f"{key}.pseudo", path, dict)
        _known(node, ("labeller", "count"), f"{key}.pseudo", path)
        count = _take(node, f"{key}.pseudo.count", path, int, False, 500)
        if count < 1:
            raise _fail(path, f"{key}.pseudo.count", f"must be at least 1, not {count}")
        pseudo = PseudoLabels(_take(node, f"{key}.pseudo.labeller", path, str), count)
    return Recipe(name, stage, _take(item, f"{key}.preset", path, str), overrides,
                  float(_take(item, f"{key}.cost", path, (int, float), False, 0.0)),
                  _take(item, f"{key}.negatives", path, bool, False, True), pretrain, pseudo,
                  _take(item, f"{key}.why", path, str, False, ""))


def _strings(node: dict, key: str, path: Path) -> tuple[str, ...]:
    values = _take(node, key, path, list, False, [])
    if not all(isinstance(v, str) and "=" in v for v in values):
        raise _fail(path, key, "must be a list of KEY=VALUE overrides")
    return tuple(values)


def _check(item: Any, key: str, path: Path) -> Check:
    if not isinstance(item, dict):
        raise _fail(path, key, "must be a mapping")
    _known(item, ("name", "data", "measure", "max", "min", "why"), key, path)
    measure = _take(item, f"{key}.measure", path, str)
    if measure not in MEASURES:
        raise _fail(path, f"{key}.measure", f"{measure!r} is not one of {', '.join(MEASURES)}")
    bounds = {b: _take(item, f"{key}.{b}", path, (int, float), False) for b in ("max", "min")}
    if (bounds["max"] is None) == (bounds["min"] is None):
        raise _fail(path, key, "give exactly one of max or min")
    return Check(_take(item, f"{key}.name", path, str), _take(item, f"{key}.data", path, str), measure,
                 None if bounds["max"] is None else float(bounds["max"]),
                 None if bounds["min"] is None else float(bounds["min"]))


def pretrain_overrides(recipe: Recipe, seed: int) -> list[str]:
    """The ``--set`` overrides of a recipe's pretraining run: as long as its largest budget, keeping the
    inpainter at every budget (``pretrain.keep_epochs``). The multi network pretrains without a prior
    (zeros: its prior is known only once the single stage is chosen)."""
    budgets = recipe.pretrain.epochs_checkpoints
    return [*recipe.overrides, *recipe.pretrain.overrides, f"pretrain.epochs={max(max(budgets), 1)}",
            f"pretrain.keep_epochs=[{', '.join(map(str, budgets))}]", f"seed={seed}"]


def run_overrides(protocol: Protocol, candidate: Candidate, fold: int, seed: int) -> list[str]:
    """The ``--set`` overrides of one fold run: the recipe's, then the study's fold and seed."""
    return [*candidate.recipe.overrides, f"data.folds={protocol.folds}", f"data.fold={fold}", f"seed={seed}"]


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
        return self.work / "pretrain" / f"{recipe.name}-s{seed}"

    def run_dir(self, candidate: Candidate, seed: int, fold: int) -> Path:
        return self.work / "runs" / candidate.name / f"s{seed}-f{fold}"

    def runs(self, candidate: Candidate, seed: int) -> list[Path]:
        return [self.run_dir(candidate, seed, k) for k in range(self.protocol.folds)]

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
            if c.recipe.pretrain and c.recipe.name not in seen:
                seen.add(c.recipe.name)
                pretraining += [self.pretrain_step(c.recipe, seed) for seed in p.seeds]
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
        """The candidate as a pipeline: the first seed's fold models (an ensemble), threshold and flip TTA
        as crossval chose them on the single stage's out-of-fold predictions."""
        seed, out = self.protocol.seeds[0], self.pipeline(candidate)
        single = candidate if candidate.recipe.stage == "single" else prior
        singles = self.runs(single, seed) if single else ["<single winner runs>"]
        argv = ["export", "--single", *singles, "--out", out, "--overwrite", "--storage", "bf16",
                "--threshold-from", self.cv(single, seed) if single else "<single winner cv>"]
        if candidate.recipe.stage == "multi":
            argv += ["--multi", *self.runs(candidate, seed)]
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
        pooled per-image scores (clustered by image across seeds), each seed's score and the checks."""
        from ssinfnet.core.folders import read_json
        from ssinfnet.core.metrics import mean_ci

        plan, rows = Plan(self.protocol, self.work), []
        for c in self.protocol.candidates(stage):
            cvs = [read_json(plan.cv(c, seed)) for seed in self.protocol.seeds]
            values, groups = [], []
            for cv in cvs:
                chosen = cv["flip" if cv["flip_tta"] else "plain"]
                values += chosen["per_image"]
                groups += [str(image["group"]) for image in cv["images"]]  # one slice over seeds: one cluster
            ci = mean_ci(values, groups)
            endpoint = sum(cv["score"] for cv in cvs) / len(cvs)
            checks = {check.name: measure(check, plan.pipeline(c), self.protocol, self.work / "checks" / c.name)
                      for check in self.protocol.checks}
            rows.append({"name": c.name, "recipe": c.recipe.name, "pretrain_epochs": c.epochs, "cost": c.cost,
                         "endpoint": endpoint, "ci_low": ci.ci_low, "ci_high": ci.ci_high, "images": ci.n,
                         "seeds": {str(s): cv["score"] for s, cv in zip(self.protocol.seeds, cvs)},
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
                   "passes", *[c.name for c in self.protocol.checks], "chosen"]
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        for stage, entry in result["stages"].items():
            for row in entry["candidates"]:
                writer.writerow({**{k: row[k] for k in columns if k in row}, **row["checks"], "stage": stage,
                                 "chosen": row["name"] == entry["chosen"]})
        write_text(self.work / "out-of-fold.csv", buffer.getvalue())
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
