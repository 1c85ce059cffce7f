"""One self-contained HTML report (figures embedded as base64 PNG) from evaluation, comparison,
training, pretraining and mediation folders.

It opens with one summary table per comparison (every model side by side, with the primary metric's
paired difference against the reference, its 95% CI and Holm-adjusted p-values, planned or
exploratory), then the full comparison tables, then per-model detail, ROC curves, galleries and each
run's training curves (losses and validation scores per epoch). Paths are shown as folder names only.

What each input folder contributes is recognised from its files:

- evaluation (``summary.json`` with kind "evaluation"): metric tables with 95% CI, ROC curves,
  overlay gallery (best / median / worst slices).
- comparison (``comparison.json``): the paired-test table. With two or more evaluations of the same
  images and no comparison folder, the comparison is computed on the spot.
- training run (``metrics.jsonl``): training curves; a pretraining run's ``examples/*.png``
  (coach masks and inpaintings) are shown too.
- mediation (``mediation.json`` + ``forest.png``): embedded as given.

A figure whose inputs a folder lacks (an evaluation's ROC points or gallery, e.g. from a results folder
that kept only the summaries) is not left out silently: a note stands in its place, saying what is
missing (``not_kept`` adds why, e.g. which files a results folder did not keep).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssinfnet import __version__, fileio
from ssinfnet.analysis.mediation_outputs import FOREST_PNG, MEDIATION_JSON
from ssinfnet.core.folders import read_json
from ssinfnet.core.labels import legend_text
from ssinfnet.core.metrics import summary_note
from ssinfnet.core.runs import RunFolder
from ssinfnet.errors import InputError
from ssinfnet.evaluation.compare import (
    Comparison, compare, format_mean, is_comparison, legend, read_comparison, summary_table, table,
)
from ssinfnet.evaluation.evaluate import (
    INFNET, LESION_FRACTION, SLICE, TRUTH_LESION_FRACTION, is_evaluation, read_curves, read_summary,
)
from ssinfnet.evaluation.gallery import GALLERY_JSON, read_gallery
from ssinfnet.evaluation.legacy import strip_paths, upgrade_summary
from ssinfnet.evaluation.roc import Roc
from ssinfnet.report import figures

#: At most this many pretraining example grids (the latest ones) go into the report.
MAX_EXAMPLES = 4
ROC_TITLES = {"pixel": "Pixel-level ROC", "slice": "Slice-level ROC (lesion fraction)",
              "detection": "Detection ROC (slice labels)"}

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
code { background: #f3f3f3; padding: 0 0.2em; }
figure.example img { width: 600px; image-rendering: pixelated; }  /* small grids: enlarge, keep pixels */
"""


@dataclass
class Inputs:
    evaluations: dict[str, Path] = field(default_factory=dict)
    comparisons: list[Path] = field(default_factory=list)
    runs: dict[str, Path] = field(default_factory=dict)
    mediations: list[Path] = field(default_factory=list)


def classify(paths: list[str | Path]) -> Inputs:
    """Sort the given folders by what they hold; anything unrecognised is an input error."""
    inputs = Inputs()
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise InputError("not a folder (expected an evaluation, comparison, run or mediation folder)", path)
        if is_evaluation(path):
            inputs.evaluations[_unique_name(path, inputs.evaluations)] = path
        elif is_comparison(path):
            inputs.comparisons.append(path)
        elif RunFolder(path).has_records():
            inputs.runs[_unique_name(path, inputs.runs)] = path
        elif (path / MEDIATION_JSON).is_file():
            inputs.mediations.append(path)
        else:
            raise InputError(
                "not an evaluation (summary.json), comparison (comparison.json), training run "
                "(metrics.jsonl) or mediation (mediation.json) folder", path,
            )
    return inputs


def build_report(paths: list[str | Path], title: str = "ssinfnet report", note: str | None = None,
                 not_kept: str | None = None) -> str:
    """The report's HTML. ``note``: a line under the title; ``not_kept``: why figures may lack their
    inputs (said where each missing figure would be, and in place of training curves when no run is given)."""
    if not paths:
        raise InputError("nothing to report: give at least one folder")
    inputs = classify(paths)
    parts = [f"<h1>{_e(title)}</h1>", _p(
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} by ssinfnet {__version__} from: "
        + ", ".join(f"<code>{_e(Path(p).resolve().name)}</code>" for p in paths), "note")]
    if note:
        parts.append(_p(_e(note), "note"))
    comparisons, note = _comparisons(inputs)
    parts.append(_summary_section(comparisons))
    parts.append(_comparison_section(comparisons, note))
    for name, path in inputs.evaluations.items():
        parts.append(_evaluation_section(name, path))
    why = f" {_e(not_kept)}" if not_kept else ""
    parts.append(_roc_section(inputs.evaluations, why))
    for name, path in inputs.evaluations.items():
        parts.append(_gallery_section(name, path, why))
    for name, path in inputs.runs.items():
        parts.append(_run_section(name, path))
    if not inputs.runs and not_kept:
        parts.append("<h2>Training curves</h2>" + _p("Not shown: no training run folder (metrics.jsonl) was given."
                                                     + why, "note"))
    for path in inputs.mediations:
        parts.append(_mediation_section(path))
    body = "\n".join(part for part in parts if part)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_report(paths: list[str | Path], out: str | Path, title: str = "ssinfnet report",
                 note: str | None = None, not_kept: str | None = None) -> Path:
    out = Path(out)
    fileio.write_text(out, build_report(paths, title, note, not_kept))
    return out


# --- sections -----------------------------------------------------------------------------------

def _evaluation_section(name: str, path: Path) -> str:
    summary = upgrade_summary(read_summary(path))
    metrics = summary.get("metrics", {})
    images = summary.get("images", 0)
    data = summary.get("data", {})
    facts = [
        f"task: {_e(str(summary.get('task', '?')))}, images: {images}",
        f"threshold: {summary.get('threshold')} (chosen on: {_e(str(summary.get('threshold_source', 'unknown')))})",
        f"data: <code>{_e(_listed(data.get('path', '?')))}</code>, {data.get('files', '?')} files, "
        f"sha256 <code>{_e(str(data.get('sha256', '?'))[:16])}</code>",
        f"git commit: <code>{_e(str(summary.get('git_commit')))}</code>",
        f"model: <code>{_e(json.dumps(summary.get('model', {}))[:400])}</code>",
    ]
    fractions = metrics.get(SLICE, {})
    if LESION_FRACTION in fractions and TRUTH_LESION_FRACTION in fractions:
        facts.append(f"mean lesion fraction: predicted {fractions[LESION_FRACTION]['mean']:.3f}, "
                     f"truth {fractions[TRUTH_LESION_FRACTION]['mean']:.3f}")
    auc = summary.get("auc", {})
    if auc:
        facts.append("AUC: " + ", ".join(f"{_e(k)} {v:.3f}" for k, v in auc.items()))
    paper = {g: m for g, m in metrics.items() if g not in (SLICE, INFNET)}
    parts = [f"<h2>Evaluation: {_e(name)}</h2>", "<ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>"]
    if paper:
        rule = summary_note(summary)
        parts += ["<h3>Paper protocol (mean ± 95% CI)</h3>", _metric_table(paper, images), _p(
            "Per-image values at the threshold; n shown where fewer images count. Overall = the paper's "
            "(mean of the background, GGO and consolidation means, no CI); image_mean = per-image mean of "
            f"the classes present. Empty classes: {_e(rule)}", "note")]
    if INFNET in metrics:
        parts += ["<h3>Inf-Net protocol (mean ± 95% CI)</h3>", _metric_table({"infection": metrics[INFNET]}, images),
                  _p("Dice, sensitivity, specificity and E-phi averaged over 256 thresholds per image; "
                     "S-alpha and MAE on the 8-bit map, as in Inf-Net's evaluation code.", "note")]
    return "\n".join(parts)


def _metric_table(groups: dict[str, dict[str, dict]], images: int) -> str:
    """One row per class, one column per metric; cells "mean ± CI", with n when NaNs were skipped."""
    columns = list(dict.fromkeys(metric for group in groups.values() for metric in group))
    rows = []
    for group, values in groups.items():
        cells = [group]
        for metric in columns:
            value = values.get(metric)
            if value is None:
                cells.append("")
                continue
            text = format_mean(value["mean"], value["ci95"])
            cells.append(text if value["n"] == images else f"{text} (n={value['n']})")
        rows.append(cells)
    return _table(["Class"] + columns, rows)


def _comparisons(inputs: Inputs) -> tuple[list[Comparison], str]:
    """The given comparison folders, else one computed from the evaluations (and a note why not)."""
    comparisons = [read_comparison(p) for p in inputs.comparisons]
    note = ""
    if not comparisons and len(inputs.evaluations) >= 2:
        try:
            comparisons.append(compare(list(inputs.evaluations.values()), list(inputs.evaluations)))
        except InputError as err:  # different image sets: say so rather than compare unpaired
            note = _p(f"No comparison: {_e(str(err))}", "note")
    return comparisons, note


def _summary_section(comparisons: list[Comparison]) -> str:
    if not comparisons:
        return ""
    parts = ["<h2>Summary</h2>"]
    for comparison in comparisons:
        header, rows = summary_table(comparison)
        planned = (f"planned comparison: {comparison.reference} vs {comparison.planned}" if comparison.planned
                   else "no planned comparison declared (every test exploratory)")
        parts += [_table(header, rows), _p(_e(
            f"{comparison.task} stage, {comparison.images} images; {planned}. Δ = model − reference on the "
            "primary metric, paired by image, 95% CI; p-values raw (Holm-adjusted within the family). "
            "Full table and legend below."), "note")]
    return "\n".join(parts)


def _comparison_section(comparisons: list[Comparison], note: str) -> str:
    if not comparisons:
        return f"<h2>Comparison</h2>{note}" if note else ""
    return "<h2>Comparison</h2>\n" + "\n".join(_comparison_table(c) for c in comparisons)


def _comparison_table(comparison: Comparison) -> str:
    header, rows = table(comparison)
    return _table(header, rows) + _p(_e(legend(comparison)), "note")


def _roc_section(evaluations: dict[str, Path], why: str) -> str:
    """One figure per level (pixel, slice, detection), every evaluation's curve in it; a note in place of
    each curve an evaluation computed (its summary holds the AUC) whose points its folder lacks."""
    by_level: dict[str, dict[str, Roc]] = {}
    missing: dict[str, list[str]] = {}
    for name, path in evaluations.items():
        curves = read_curves(path)
        for level, curve in curves.items():
            by_level.setdefault(level, {})[name] = curve
        for level, auc in read_summary(path).get("auc", {}).items():
            if level not in curves:
                missing.setdefault(level, []).append(f"{name} (AUC {_cell(auc)})")
    parts = []
    for level in dict.fromkeys([*by_level, *missing]):
        title = ROC_TITLES.get(level, level)
        if level in by_level:
            parts.append(_img(figures.roc_figure(by_level[level], title), f"{level} ROC"))
        if level in missing:
            parts.append(_p(f"{_e(title)}: curve not drawn for {_e(', '.join(missing[level]))}: the AUC is in "
                            f"the summary, but the curve's points (roc.json) are not in the folder.{why}", "note"))
    return "<h2>ROC curves</h2>\n" + "\n".join(parts) if parts else ""


def _gallery_section(name: str, path: Path, why: str) -> str:
    heading = f"<h2>Best, median and worst slices: {_e(name)}</h2>\n"
    if not (path / GALLERY_JSON).is_file():
        return heading + _p(f"Gallery not shown: the folder holds no {GALLERY_JSON} (the slices' PNGs).{why}", "note")
    task, items = read_gallery(path)
    if not items:  # no masks (detection only): nothing to overlay
        return ""
    return (heading + _p(f"Ranked by per-image F1; CT, then the ground truth and the prediction overlaid: "
                         f"{_e(legend_text(task))}.", "note")
            + _img(figures.gallery_figure(items, task), f"overlay gallery of {name}"))


def _run_section(name: str, path: Path) -> str:
    parts = [f"<h2>Training run: {_e(name)}</h2>"]
    run = RunFolder(path)
    summary = strip_paths(run.summary())
    if summary:
        parts.append(_table(["Summary", "Value"], [[k, _cell(v)] for k, v in _scalars(summary).items()]))
    history = run.history()
    curves = figures.training_curves_figure(history, name) if history else None
    if curves:
        parts.append(_img(curves, f"training curves of {name}"))
    examples = run.examples()[-MAX_EXAMPLES:]
    if examples:
        parts.append("<h3>Pretraining examples (coach masks and inpaintings)</h3>")
        parts += [f'<figure class="example">{_img(png.read_bytes(), png.stem)}'
                  f"<figcaption>{_e(png.stem)}</figcaption></figure>" for png in examples]
    return "\n".join(parts)


def _mediation_section(path: Path) -> str:
    result = read_json(path / MEDIATION_JSON)
    parts = [f"<h2>Mediation analysis: {_e(path.name)}</h2>"]
    rows = result.get("results") if isinstance(result.get("results"), list) else None
    if rows and all(isinstance(r, dict) for r in rows):
        header = list(dict.fromkeys(k for r in rows for k in r))
        parts.append(_table(header, [[_cell(r.get(k)) for k in header] for r in rows]))
    else:
        parts.append(f"<pre>{_e(json.dumps(result, indent=2)[:20000])}</pre>")
    notes = result.get("notes")
    parts += [_p(_e(str(note)), "note") for note in (notes if isinstance(notes, list) else [notes] if notes else [])]
    if (path / FOREST_PNG).is_file():
        parts.append(_img((path / FOREST_PNG).read_bytes(), "mediation forest plot"))
    return "\n".join(parts)


# --- html helpers --------------------------------------------------------------------------------

def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _p(text: str, css_class: str) -> str:
    return f'<p class="{css_class}">{text}</p>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _listed(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _scalars(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Numbers and strings of a (nested) summary, keys joined with dots (e.g. validation.threshold)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_scalars(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _unique_name(path: Path, taken: dict[str, Path]) -> str:
    name = path.resolve().name
    return name if name not in taken else f"{path.resolve().parent.name}/{name}"
