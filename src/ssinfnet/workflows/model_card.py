"""Model cards generated from facts: ``card_facts`` gathers them, ``render_card`` (facts -> markdown)
writes every statement from them, so a card cannot claim more than the runs did.

Facts come from a pipeline's training runs when they are at hand (``stage_facts_from_run``: each run's
``config.json``, ``run.json`` with its data fingerprints and ``--init``, and the init run's own
record: how many unlabeled files the pretraining actually read), or, for a pipeline whose runs are
gone, from the experiment that made it (``stage_facts_from_config``: the preset and overrides that
every step ran with and whether the variant was pre-trained). ``ssinfnet export`` and ``ssinfnet
reproduce`` both call :func:`write_card`.

Extra sections: ``facts["sections"]`` is a list of ``{"title", "markdown"}``; :func:`json_section`
turns a results JSON (e.g. ``results/benchmarks/*.json``: a list of row objects under "rows", or flat
scalars) into one, and ``ssinfnet export --card-section FILE.json`` appends such sections.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from ssinfnet import fileio
from ssinfnet.core.runs import KEPT_EPOCHS
from ssinfnet.data.intensity import CANONICAL_CONTRAST, EQUALIZE_CLIP, EQUALIZED_CONTRAST
from ssinfnet.errors import InputError
from ssinfnet.training.inputs import input_contrast

#: Terms of the labeled data sets the card may name, by folder name (from ../shared/data/README.md).
DATA_TERMS = {
    "covid-semiseg": ("COVID-SemiSeg (Inf-Net authors), from the MedSeg COVID-19 CT segmentation data set "
                      "(about 40 patients; images from the Italian Society of Medical and Interventional "
                      "Radiology). **Non-commercial use only.**"),
}
CLASS_ROWS = ("infection", "background", "GGO", "consolidation", "Overall", "image_mean")
PAPER_METRICS = ("f1", "iou", "recall", "precision")
INFNET_METRICS = ("dice", "sensitivity", "specificity", "s_alpha", "e_phi", "mae")
TRAINING_KEYS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "focal", "lookahead",
                 "stop_at")
PRETRAINING_KEYS = ("epochs", "warmup_epochs", "coach_epochs", "inpaint_epochs", "batch_size", "lr")


# --- facts ----------------------------------------------------------------------------------------

def stage_facts_from_run(run: str | Path) -> dict[str, Any]:
    """What one supervised run did, read from its folder (and from its --init run's folder)."""
    run = Path(run)
    config = _read(run / "config.json")
    info = _read(run / "run.json")
    stage = info.get("kind", "single")
    facts = _stage_from_config(run.name, stage, config)
    data = info.get("data", {})
    facts["train_slices"] = data.get("train", {}).get("samples")
    facts["val_slices"] = data.get("val", {}).get("samples")
    facts["labeled_data"] = [Path(p).name for p in info.get("inputs", {}).get("data", [])]
    negatives = info.get("inputs", {}).get("negatives") or []
    facts["negatives"] = None if not negatives else {
        "folders": [Path(p).name for p in negatives], "files": data.get("negative_files"),
        **{k: config.get("negatives", {}).get(k) for k in ("weight", "per_epoch", "mined_from")},
        "heldout_fraction": config["data"].get("heldout_fraction")}
    pseudo = info.get("inputs", {}).get("pseudo") or []
    facts["pseudo"] = None if not pseudo else {
        "folders": [Path(p).name for p in pseudo], "slices": data.get("pseudo", {}).get("samples"),
        **{k: config.get("pseudo", {}).get(k) for k in ("weight", "per_epoch")}}
    facts["fold"] = {"fold": config["data"].get("fold"), "folds": config["data"].get("folds")} \
        if config["data"].get("fold") is not None else None
    init = info.get("inputs", {}).get("init")
    facts["pretraining"] = None if not init else pretraining_facts_from_run(_resolve(init, run))
    return facts


def ensemble_facts_from_runs(runs: list[Path]) -> dict[str, Any]:
    """One stage's facts from its run, or from an ensemble's runs (the first run's facts, plus the
    members' names and folds: members share their config but for the fold)."""
    members = [stage_facts_from_run(run) for run in runs]
    facts = members[0]
    if len(members) > 1:
        facts["members"] = [{"run": m["name"], "fold": (m.get("fold") or {}).get("fold")} for m in members]
    return facts


def pretraining_facts_from_run(run: Path) -> dict[str, Any]:
    """A pretraining run's facts; for one of its kept epochs (``RUN/epochs/epoch-NNNN``, see
    ``core.runs.kept_epoch``) the run's, with ``epochs`` the kept epoch and ``run_epochs`` the run's length."""
    kept = None
    if run.parent.name == KEPT_EPOCHS:
        kept, run = int(_read(run / "summary.json")["epoch"]), run.parent.parent
    config = _read(run / "config.json")
    data = _read(run / "run.json").get("data", {})
    facts = {
        "run": run.name, **{k: config["pretrain"].get(k) for k in PRETRAINING_KEYS},
        "unlabeled_slices": data.get("unlabeled_files"),
        "labeled_slices": data.get("labeled_images", {}).get("samples"),
        "unlabeled_limit": config["data"].get("unlabeled_limit"),
    }
    if kept is not None:
        facts.update(epochs=kept, run_epochs=facts["epochs"])
    return facts


def stage_facts_from_config(name: str, stage: str, config: dict[str, Any], pretrained: bool,
                            train_slices: int | None = None, val_slices: int | None = None,
                            labeled_data: Iterable[str] = ()) -> dict[str, Any]:
    """What a variant of an experiment did, from the configuration every step ran with."""
    facts = _stage_from_config(name, stage, config)
    facts.update(train_slices=train_slices, val_slices=val_slices, labeled_data=list(labeled_data))
    facts["pretraining"] = None if not pretrained else {
        **{k: config["pretrain"].get(k) for k in PRETRAINING_KEYS},
        # The unlabeled files read: a seeded random ``unlabeled_limit`` of them (all when null).
        "unlabeled_slices": config["data"].get("unlabeled_limit"), "unlabeled_limit": config["data"].get("unlabeled_limit"),
        "labeled_slices": train_slices,
    }
    return facts


def _stage_from_config(name: str, stage: str, config: dict[str, Any]) -> dict[str, Any]:
    model = dict(config["model" if stage == "single" else "multi_model"])
    return {"name": name, "stage": stage, "model": model.pop("name"), "model_config": model,
            "size": config["data"]["size"], "val_fraction": config["data"].get("val_fraction"),
            "input_contrast": input_contrast(config["data"]),
            "export_augment": bool(config["data"].get("augment") and config["data"].get("export_augment")),
            "training": {k: config[stage].get(k) for k in TRAINING_KEYS}}


def card_facts(stages: dict[str, dict[str, Any]], pipeline_meta: dict[str, Any], threshold: float,
               metrics: dict[str, Any] | None = None, chosen_by: str | None = None,
               preset: str | None = None, overrides: Iterable[str] = (), regenerate: Iterable[str] = (),
               sections: Iterable[dict[str, str]] = ()) -> dict[str, Any]:
    """One facts dict for :func:`render_card` (JSON-serialisable; no machine paths). ``regenerate``:
    markdown lines (commands in backticks)."""
    return {
        "stages": stages, "threshold": threshold, "threshold_source": pipeline_meta.get("threshold_source"),
        "storage": pipeline_meta.get("storage", "fp32"), "flip_tta": bool(pipeline_meta.get("flip_tta")),
        "chosen_by": chosen_by, "preset": preset,
        "overrides": list(overrides), "metrics": metrics, "regenerate": list(regenerate),
        "sections": list(sections),
    }


def json_section(title: str, data: dict[str, Any]) -> dict[str, str]:
    """A card section from a results JSON: its "rows" (list of objects) as a table, else its scalars."""
    rows = data.get("rows") if isinstance(data.get("rows"), list) else None
    if rows and all(isinstance(r, dict) for r in rows):
        header = list(dict.fromkeys(k for r in rows for k in r))
        body = _markdown_table(header, [[_cell(r.get(k)) for k in header] for r in rows])
    else:
        scalars = {k: v for k, v in data.items() if isinstance(v, (int, float, str, bool)) or v is None}
        body = _markdown_table(["key", "value"], [[k, _cell(v)] for k, v in scalars.items()])
    note = data.get("note") or data.get("description")
    return {"title": title, "markdown": body + (f"\n{note}\n" if isinstance(note, str) else "")}


def sections_from_files(paths: Iterable[str | Path]) -> list[dict[str, str]]:
    sections = []
    for path in map(Path, paths):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"cannot read a card section: {err}", path) from err
        if not isinstance(data, dict):
            raise InputError("a card section must be a JSON object", path)
        sections.append(json_section(str(data.get("title") or path.stem), data))
    return sections


# --- rendering ------------------------------------------------------------------------------------

def render_card(facts: dict[str, Any]) -> str:
    """The model card (markdown); every statement comes from ``facts``."""
    stages = facts["stages"]
    names = " + ".join(f"{'single-stage (infection)' if s == 'single' else 'multi-class (background / GGO / consolidation)'} "
                       f"**{stages[s]['name']}** (`{stages[s]['model']}`)" for s in ("single", "multi") if s in stages)
    lines = ["# ssinfnet model", "", f"Pipeline: {names}."]
    if facts.get("chosen_by"):
        lines.append(f"Chosen by: {facts['chosen_by']}.")
    lines += [f"Weights stored in {facts['storage']} (safetensors); input size {_first(stages, 'size')} px; "
              f"threshold {facts['threshold']:.3f} (chosen on: {facts.get('threshold_source') or 'unknown'})"
              + ("; left-right flip test-time augmentation." if facts.get("flip_tta") else "."), ""]
    lines += ["## Training data and terms"]
    labeled = sorted({d for s in stages.values() for d in s.get("labeled_data", [])})
    for name in labeled:
        lines.append(f"- Labeled: `{name}`" + (f": {DATA_TERMS[name]}" if name in DATA_TERMS else "."))
    for key in ("single", "multi"):
        if key in stages:
            lines.append(_stage_line(stages[key]))
    if facts.get("preset"):
        overrides = " ".join(facts.get("overrides") or [])
        lines.append(f"- Preset `{facts['preset']}`" + (f", overrides: `{overrides}`" if overrides else "") + ".")
    lines.append("")
    if facts.get("metrics"):
        lines += _metrics_lines(facts["metrics"])
    else:
        lines += ["## Metrics", "Not evaluated yet: run `ssinfnet evaluate --pipeline THIS_FOLDER ...`.", ""]
    for section in facts.get("sections", []):
        lines += [f"## {section['title']}", section["markdown"].rstrip(), ""]
    if facts.get("regenerate"):
        lines += ["## Regenerate", *[f"- {entry}" for entry in facts["regenerate"]], ""]
    limits = "2D slice-wise; not a medical device."
    train = [s.get("train_slices") for s in stages.values() if s.get("train_slices")]
    if train:
        limits = f"trained on {max(train)} labeled slices; " + limits
    lines += ["Limits: " + limits, ""]
    return "\n".join(lines)


def write_card(folder: str | Path, facts: dict[str, Any]) -> Path:
    """``MODEL_CARD.md`` (and the facts it came from, ``card_facts.json``) in ``folder``, atomically."""
    folder = Path(folder)
    fileio.write_json(folder / "card_facts.json", facts)
    fileio.write_text(folder / "MODEL_CARD.md", render_card(facts))
    return folder / "MODEL_CARD.md"


def _stage_line(stage: dict[str, Any]) -> str:
    training = stage["training"]
    split = ""
    if stage.get("train_slices") is not None and stage.get("val_slices") is not None:
        split = (f" on {stage['train_slices']} labeled slices, {stage['val_slices']} more held out for validation "
                 "(split by slice: the data set gives no patient ids)")
    optimiser = (f"{training.get('optimizer')} lr {training.get('lr')}, {training.get('epochs')} epochs, batch "
                 f"{training.get('batch_size')}, focal loss {'on' if training.get('focal') else 'off'}, "
                 f"Lookahead {'on' if training.get('lookahead') else 'off'}")
    config = ", ".join(f"{k} {v}" for k, v in stage["model_config"].items())
    line = f"- {stage['stage'].capitalize()} stage **{stage['name']}** (`{stage['model']}`, {config}): trained{split}; {optimiser}."
    if stage.get("fold"):
        folds = stage["fold"]["folds"]
        members = stage.get("members") or [{"fold": stage["fold"]["fold"]}]
        line += (f" Cross-validation: {folds} folds of the labeled slices; this stage is "
                 + (f"the average of {len(members)} fold models (folds "
                    f"{', '.join(str(m['fold']) for m in members)})." if len(members) > 1
                    else f"the model of fold {members[0]['fold']}."))
    line += _input_line(stage)
    pre = stage.get("pretraining")
    if pre is None:
        return line + " Initialisation: random (not pre-trained)."
    unlabeled = pre.get("unlabeled_slices")
    labeled = pre.get("labeled_slices")
    pool = (f"{unlabeled if unlabeled is not None else 'all'} unlabeled CT slices"
            + (f" + {labeled} labeled training slices (their masks unused; validation and test slices never)"
               if labeled else ""))
    epochs = f"{pre.get('epochs')} epochs"
    if pre.get("run_epochs") is not None:
        epochs += f", kept from a {pre['run_epochs']}-epoch run"
        if pre.get("epochs") == 0:
            epochs += " (its initial weights: no pretraining step was taken)"
    return line + f" Initialisation: self-supervised coach-guided inpainting pretraining on {pool}, {epochs}."


def _input_line(stage: dict[str, Any]) -> str:
    """What the stage saw besides its labeled slices: contrast, export augmentation, negatives."""
    parts = []
    contrast = stage.get("input_contrast")
    if contrast in (CANONICAL_CONTRAST, EQUALIZED_CONTRAST):
        parts.append("inputs mapped to the canonical contrast" + (
            f", then locally equalised (CLAHE, clip limit {EQUALIZE_CLIP:g})" if contrast == EQUALIZED_CONTRAST else "")
            + " (ssinfnet.data.intensity)")
    if stage.get("export_augment"):
        parts.append("export-difference augmentation (window, gamma, CLAHE, noise, blur, JPEG, full field of view)")
    negatives = stage.get("negatives")
    if negatives:
        mined = (f" (the highest-scoring of {negatives['mined_from']} random ones under the current weights: "
                 "hard-negative mining)") if negatives.get("mined_from") else ""
        parts.append(f"{negatives.get('per_epoch')} lesion-free slices per epoch{mined} drawn from {negatives.get('files')} "
                     f"NonCOVID slices of `{', '.join(negatives.get('folders', []))}` (loss weight "
                     f"{negatives.get('weight')}; {negatives.get('heldout_fraction')} of its source groups held out "
                     "of every training step)")
    pseudo = stage.get("pseudo")
    if pseudo:
        drawn = f"{pseudo['per_epoch']} per epoch drawn from " if pseudo.get("per_epoch") else ""
        parts.append(f"{drawn}{pseudo.get('slices')} pseudo-labelled unlabeled slices of `{', '.join(pseudo.get('folders', []))}` "
                     f"(loss weight {pseudo.get('weight')}; labels predicted by an earlier model, never by a reader)")
    return (" " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + ".") if parts else ""


def _metrics_lines(summary: dict[str, Any]) -> list[str]:
    from ssinfnet.evaluation.legacy import upgrade_summary
    from ssinfnet.core.metrics import summary_note

    summary = upgrade_summary(summary)
    metrics, images = summary["metrics"], summary.get("images")
    data = summary.get("data", {})
    source = ", ".join(map(str, data.get("path", []))) or "?"
    lines = [f"## Metrics on {images} test slices (`{source}`, split {data.get('split', '?')}, data sha256 "
             f"`{str(data.get('sha256', '?'))[:16]}`)", "Paper protocol (mean ± 95% CI half-width; n where fewer "
             "images count):", "", "| class | " + " | ".join(PAPER_METRICS) + " |", "|---|" + "---|" * len(PAPER_METRICS)]
    for group in CLASS_ROWS:
        if group in metrics:
            lines.append(f"| {group} | " + " | ".join(_value(metrics[group].get(m), images) for m in PAPER_METRICS) + " |")
    lines.append("")
    if "infnet" in metrics:
        lines.append("Inf-Net protocol (infection, averaged over 256 thresholds): "
                     + " / ".join(f"{m} {_value(metrics['infnet'].get(m), images)}" for m in INFNET_METRICS) + ".")
    rule = summary_note(summary)
    lines += ["", "Overall = the paper's (mean of the three class means); image_mean = per-image mean of the "
              f"classes present. Empty classes: {rule}", "The full evaluation summary is `metrics.json` beside "
              "this card.", ""]
    return lines


def _value(value: dict[str, Any] | None, images: int | None) -> str:
    if not value or value.get("mean") is None or math.isnan(value["mean"]):
        return "-"
    text = f"{value['mean']:.3f}"
    if value.get("ci95") is not None and not math.isnan(value["ci95"]):
        text += f" ± {value['ci95']:.3f}"
    return text if value.get("n") in (None, images) else f"{text} (n={value['n']})"


def _first(stages: dict[str, Any], key: str) -> Any:
    return next((s.get(key) for s in stages.values() if s.get(key) is not None), "?")


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("missing (needed for the model card)", path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err}", path) from err


def _resolve(recorded: str, run: Path) -> Path:
    """A run recorded by path: as recorded if it exists, else beside ``run`` (a moved work folder)."""
    path = Path(recorded)
    return path if path.is_dir() else run.parent / path.name
