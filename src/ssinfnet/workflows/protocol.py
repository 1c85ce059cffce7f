"""A study's protocol file (``studies/*.yaml``, see :mod:`ssinfnet.workflows.study`): the candidate recipes,
folds, seeds, primary endpoint, decision rule and real-scan checks, read and checked in full (every recipe's
config resolved) before any run, so that a bad protocol is one line naming the key and the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssinfnet.errors import InputError

STAGES = ("single", "multi")
ENDPOINTS = {
    "oof_dice": "out-of-fold Dice of crossval (paper protocol, core.metrics.class_scores: per-image mean "
                "infection Dice at the pooled out-of-fold threshold (single stage), mean of GGO and "
                "consolidation Dice (multi stage), with or without flip TTA as crossval chose)",
    "oof_infnet_dice": "out-of-fold infection Dice by the Inf-Net protocol (evaluation.infnet_metrics: each "
                       "slice's Dice averaged over the 256 thresholds of its min-max normalised map, so no "
                       "threshold is chosen, then over the slices), with or without flip TTA as crossval "
                       "chose; the multi stage, which has no infection map of its own, by oof_dice",
}
MEASURES = {
    "lesion_percent_of_lung": "segment's lesion % of the lung region of a scan (core.burden)",
    "lesion_ml": "segment's lesion volume of a scan in mL",
    "slice_auc": "evaluate's slice-level detection AUC (layout dicom-slice-labels)",
}
TIE_BREAKS = ("cost",)


def endpoint_scores(cv: dict[str, Any], metric: str) -> tuple[float, list[float]]:
    """(score, per-slice values) of one crossval JSON by an endpoint of :data:`ENDPOINTS`, in the view
    (plain or flip TTA) crossval chose."""
    view = cv["flip" if cv["flip_tta"] else "plain"]
    if metric == "oof_infnet_dice" and cv["stage"] == "single":
        return view["infnet_dice"], view["infnet_per_image"]
    return cv["score"], view["per_image"]


SliceScores = dict[tuple[int, str], tuple[float, str]]
"""Each (seed, slice id)'s endpoint value and source group."""


def slice_scores(cvs: dict[int, dict[str, Any]], metric: str) -> SliceScores:
    """The per-slice endpoint values of one candidate's crossval JSONs, one per seed."""
    return {(seed, image["id"]): (value, str(image["group"]))
            for seed, cv in cvs.items() for image, value in zip(cv["images"], endpoint_scores(cv, metric)[1])}


def paired_difference(a: SliceScores, b: SliceScores):
    """``a`` minus ``b`` on the (seed, slice) pairs both hold: the mean and its 95% CI clustered by source
    group (:func:`ssinfnet.core.metrics.mean_ci`)."""
    from ssinfnet.core.metrics import mean_ci

    paired = [(value - b[key][0], group) for key, (value, group) in a.items() if key in b]
    return mean_ci([d for d, _ in paired], [g for _, g in paired])


# --- the protocol -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pretraining:
    epochs_checkpoints: tuple[int, ...]
    overrides: tuple[str, ...] = ()
    source: str | None = None
    """Another recipe whose pretraining run this one fine-tunes from (``from``), so that recipes differing
    only in fine-tuning (focal loss, Lookahead) share one pretraining run; None: its own run."""


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
    export_folds: tuple[int, ...] | None = None
    """The folds whose models (first seed) make each candidate's pipeline, the one checked and shipped;
    None: every fold (an ensemble)."""

    def candidates(self, stage: str) -> list[Candidate]:
        found = []
        for recipe in self.recipes:
            if recipe.stage == stage:
                budgets = recipe.pretrain.epochs_checkpoints if recipe.pretrain else (None,)
                found += [Candidate(recipe, epochs) for epochs in budgets]
        return found

    def candidate(self, name: str) -> Candidate:
        return next(c for stage in STAGES for c in self.candidates(stage) if c.name == name)

    def recipe(self, name: str) -> Recipe | None:
        return next((r for r in self.recipes if r.name == name), None)

    def pretraining_recipe(self, recipe: Recipe) -> Recipe:
        """The recipe whose pretraining run ``recipe`` fine-tunes from: itself, or its ``from``."""
        source = recipe.pretrain.source
        return recipe if source is None else self.recipe(source)

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
    _known(raw, ("name", "question", "data", "folds", "seeds", "endpoint", "rule", "recipes", "checks", "export"),
           "", path)
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

    export = _take(raw, "export", path, dict, False, {})
    _known(export, ("folds", "why"), "export", path)
    export_folds = _take(export, "export.folds", path, list, False, None)
    if export_folds is not None and (not export_folds or len(set(export_folds)) != len(export_folds) or not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < folds for k in export_folds)):
        raise _fail(path, "export.folds", f"must be distinct folds among 0..{folds - 1}")

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
        export_folds=None if export_folds is None else tuple(export_folds),
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
        if recipe.pretrain is not None and recipe.pretrain.source is not None:
            _check_source(protocol, recipe, f"{key}.pretrain.from", path)
        try:
            for candidate in protocol.candidates(recipe.stage):
                if candidate.recipe is recipe:
                    load_config(recipe.preset, run_overrides(protocol, candidate, 0, 0))
            if recipe.pretrain is not None and recipe.pretrain.source is None:
                load_config(recipe.preset, pretrain_overrides(recipe, 0))
        except InputError as err:
            raise _fail(path, key, f"{recipe.name}: {err.problem}") from None
    return protocol


def _check_source(protocol: Protocol, recipe: Recipe, key: str, path: Path) -> None:
    """A ``from`` names a recipe of the same stage with a pretraining run of its own that keeps every
    budget asked for."""
    source = protocol.recipe(recipe.pretrain.source)
    if source is None or source.stage != recipe.stage or source.pretrain is None or source.pretrain.source:
        raise _fail(path, key, f"{recipe.pretrain.source!r} is not a {recipe.stage}-stage recipe with a "
                               "pretraining run of its own")
    missing = sorted(set(recipe.pretrain.epochs_checkpoints) - set(source.pretrain.epochs_checkpoints))
    if missing:
        raise _fail(path, key, f"{source.name!r} keeps epochs {list(source.pretrain.epochs_checkpoints)}, "
                               f"not {missing}")


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
        _known(node, ("epochs_checkpoints", "set", "from"), f"{key}.pretrain", path)
        epochs = _take(node, f"{key}.pretrain.epochs_checkpoints", path, list)
        if not epochs or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in epochs) \
                or len(set(epochs)) != len(epochs):
            raise _fail(path, f"{key}.pretrain.epochs_checkpoints", "must be distinct integers >= 0")
        source = _take(node, f"{key}.pretrain.from", path, str, False)
        if source is not None and "set" in node:
            raise _fail(path, f"{key}.pretrain.set", f"not with 'from': the pretraining run is {source!r}'s")
        pretrain = Pretraining(tuple(sorted(epochs)), _strings(node, f"{key}.pretrain.set", path), source)
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
