"""The demo: the whole method on a generated cohort, end to end, in a few minutes on a laptop CPU.

generated cohort -> self-supervised pretraining (coach) of the single network -> single stage
(initialised from it) -> pretraining of the multi network (prior from the single stage) -> multi
stage -> the two-stage pipeline scored on the generated TEST slices (never used before this point) through
the product path (``out/evaluation``) -> one generated test volume segmented as ``ssinfnet segment`` does
(``out/segment/<subject>``) -> one HTML report of the runs and the evaluation (``out/report.html``).
Budgets come from the ``demo`` preset (tuned on the generated validation slices only).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ssinfnet import fileio
from ssinfnet.core.metrics import FP_AREA, mean_ci
from ssinfnet.core.provenance import git_commit
from ssinfnet.data.demo_cohort import make_demo_cohort
from ssinfnet.data.readers import read_semiseg
from ssinfnet.evaluation.evaluate import PREDICTIONS, score_predictions, write_evaluation
from ssinfnet.evaluation.predict import ModelUnderTest, predict_samples
from ssinfnet.inference.predictor import Pipeline, save_pipeline
from ssinfnet.inference.segment import segment
from ssinfnet.models import load_model
from ssinfnet.report.html import write_report
from ssinfnet.training.config import load_config
from ssinfnet.training.pretrain import pretrain
from ssinfnet.training.supervised import train_multi, train_single

#: Metrics printed in the summary: (evaluation group, metric, label). Under the paper's empty-class rule a
#: class's mean F1 also scores the slices whose truth lacks it (any prediction of it there is an F1 of 0), so
#: for the rare consolidation the demo also shows its F1 over the slices whose truth holds it (``PRESENT``).
PRESENT = "f1_where_present"
SHOWN = (("infection", "f1", "lesion (infection) Dice"), ("GGO", "f1", "GGO Dice"),
         ("consolidation", "f1", "consolidation Dice"),
         ("consolidation", PRESENT, "consolidation Dice, slices with it"),
         ("Overall", "f1", "Overall Dice (class means)"))
#: The runs the report shows beside the evaluation, in the order they are trained.
RUNS = ("pretrain_single", "single", "pretrain_multi", "multi")


def run_demo(out: str | Path, overrides: Iterable[str] = (), cohort: dict[str, Any] | None = None,
             progress: bool = True, log=print) -> dict[str, Any]:
    """Run every step into ``out`` (a fresh folder) and return the test summary (also ``out/summary.json``)."""
    out = Path(out)
    config = load_config("demo", list(overrides))
    cohort_options = {**config["cohort"], **(cohort or {})}
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, action):
        log(f"[demo] {name} ...")
        begin = time.perf_counter()
        result = action()
        steps[name] = round(time.perf_counter() - begin, 1)
        return result

    data = out / "cohort"
    step("generating the cohort", lambda: make_demo_cohort(data, **cohort_options))
    labeled, unlabeled = data / "semiseg", data / "unlabeled"
    step("pretraining the single network (inpainting vs coach)",
         lambda: pretrain(out / "pretrain_single", [unlabeled, labeled], config, "single", progress=progress))
    step("training the single stage", lambda: train_single(
        out / "single", [labeled], config, init=out / "pretrain_single", progress=progress, negatives=[unlabeled]))
    step("pretraining the multi network", lambda: pretrain(
        out / "pretrain_multi", [unlabeled, labeled], config, "multi", prior_from=out / "single", progress=progress))
    step("training the multi stage", lambda: train_multi(
        out / "multi", [labeled], config, prior_from=out / "single", init=out / "pretrain_multi", progress=progress,
        negatives=[unlabeled]))
    summary = step("evaluating on the generated test slices", lambda: evaluate(out, labeled, config))
    summary["overlay"] = step("segmenting a generated test volume", lambda: segment_volume(out, data))
    summary["report"] = step("writing the report", lambda: report(out))
    summary["seconds"] = {**steps, "total": round(time.perf_counter() - started, 1)}
    fileio.write_json(out / "summary.json", summary)
    log(format_summary(summary))
    log(f"report: {out / summary['report']}")
    log(f"segmented volume's overlay: {out / summary['overlay']}")
    return summary


def evaluate(out: Path, labeled: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Score the two-stage pipeline on the test slices into ``out/evaluation`` (what ``ssinfnet evaluate``
    writes); save the pipeline as ``out/pipeline`` for ``segment``."""
    single_summary = json.loads((out / "single" / "summary.json").read_text())
    pipeline = Pipeline(
        load_model(out / "single" / "model.safetensors"), load_model(out / "multi" / "model.safetensors"),
        size=config["data"]["size"], threshold=single_summary["validation"]["threshold"],
        meta={"trained_by": "ssinfnet demo"}, bf16=config["bf16"],
    )
    save_pipeline(out / "pipeline", pipeline, overwrite=True)
    test = read_semiseg(labeled, split="test", task="multi")
    model = ModelUnderTest(pipeline, "validation", {"pipeline": "pipeline"})
    evaluation = score_predictions(test, predict_samples(model, test), multi=True, threshold=pipeline.threshold,
                                   calls_from_labels=True)  # what `ssinfnet evaluate` scores: segment's labels
    write_evaluation(out / "evaluation", evaluation, {
        "prediction": "product", "prediction_definition": PREDICTIONS["product"], "truth": "multi-class",
        "layout": "semiseg", "threshold_source": model.threshold_source, "model": model.description,
        "precision": "bf16" if pipeline.bf16 else "fp32", "git_commit": git_commit(),
        "data": {"split": "test", "samples": len(test)},
    })
    result = evaluation.summary()
    result["metrics"].setdefault("consolidation", {})[PRESENT] = present_f1(evaluation.rows, "consolidation")
    result["test_slices"] = len(test)
    result["dice"] = {label: metric_mean(result, group, metric) for group, metric, label in SHOWN}
    return result


def present_f1(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Mean F1 (with CI) of class ``name`` over the images whose truth holds it (``fp_area`` is defined
    only where it does not)."""
    held = [row for row in rows if np.isnan(row[f"{name}.{FP_AREA}"])]
    return mean_ci((row[f"{name}.f1"] for row in held), [row["group"] for row in held]).as_dict()


def segment_volume(out: Path, data: Path) -> str:
    """Segment the first generated test subject's CT volume with the demo's pipeline, as ``ssinfnet segment``
    does, into ``out/segment/<subject>``; return its first overlay, relative to ``out``."""
    subject = json.loads((data / "truth.json").read_text())["cohort"]["subjects_by_split"]["test"][0]
    saved = segment(data / "volumes" / subject / "ct.nii.gz", model=out / "pipeline").save(out / "segment" / subject)
    return str(min((saved / "overlays").glob("*.png")).relative_to(out))


def report(out: Path) -> str:
    """``out/report.html``: the evaluation and the four runs (``ssinfnet report``); its name in ``out``."""
    write_report([out / "evaluation", *(out / run for run in RUNS)], out / "report.html", title="ssinfnet demo")
    return "report.html"


def metric_mean(result: dict[str, Any], group: str, metric: str) -> float:
    return float(result["metrics"].get(group, {}).get(metric, {}).get("mean", float("nan")))


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"ssinfnet demo: {summary['test_slices']} generated test slices "
             f"(threshold {summary['threshold']:.2f} chosen on validation), "
             f"{summary['seconds']['total']:.0f} s in all"]
    for group, metric, label in SHOWN:
        stats = summary["metrics"].get(group, {}).get(metric)
        if stats:
            lines.append(f"  {label:<36} {stats['mean']:.3f} +- {_ci(stats['ci95'])} (n={stats['n']})")
    return "\n".join(lines)


def _ci(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"
