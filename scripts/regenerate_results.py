"""Regenerate a reproduction folder's tables and report from what it holds (``eval-*.json``,
``compare-*-comparison.json``, ``experiment.json``): no run folders, no retraining. Optionally also the
bundled pipeline's ``metrics.json`` and ``MODEL_CARD.md`` from an evaluation of that pipeline.

    python scripts/regenerate_results.py results/2026-11-26-cpu
    python scripts/regenerate_results.py results/2026-11-25-cpu --bundle src/ssinfnet/weights/default \
        --data ../shared/data

With ``--bundle`` and ``--data`` the bundled pipeline is evaluated again on the test slices (under a
minute on a CPU: the scoring rule of today, same weights), and its ``metrics.json``, ``pipeline.json``
(without machine paths), ``card_facts.json`` and ``MODEL_CARD.md`` are rewritten, plus
``eval-bundled.json`` and ``eval-bundled-per_image.csv`` here.

Writes into the folder: ``compare-<stage>-comparison.md/.csv`` (paired means, difference CI, raw and
Holm-adjusted p-values, planned vs exploratory), ``summary.md`` (one table per stage, every model side by
side) and ``report.html``. The saved JSONs are the inputs; they are only rewritten without machine paths.
The report's figures come from what ``reproduce`` keeps beside each ``eval-<name>.json`` (see
``ssinfnet.evaluation.results``: ``eval-<name>-roc.json``, ``eval-<name>-gallery/``) and from
``run-<name>/metrics.jsonl``; where a folder lacks them (one written before they were kept), the report says
so in place of each figure. Nothing is evaluated again for them.
Comparisons written before paired means existed are read with ``ssinfnet.evaluation.legacy`` (what can
and cannot be derived from them is said there and in the tables' legends).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ssinfnet import fileio
from ssinfnet.core.runs import METRICS
from ssinfnet.evaluation.compare import (
    Comparison, format_summary, legend, markdown, markdown_table, summary_table, table_rows,
)
from ssinfnet.evaluation.legacy import check_paired_means, is_legacy, strip_paths, upgrade_comparison, upgrade_summary
from ssinfnet.evaluation.results import keep, kept_stems, restore
from ssinfnet.report.html import write_report
from ssinfnet.workflows.reproduce import MULTI_VARIANTS, SINGLE_VARIANTS, slug

STAGES = {"single": (SINGLE_VARIANTS, "SSInfNet", "SInfNet"), "multi": (MULTI_VARIANTS, "Multi SSInfNet", "Multi SInfNet")}
SINGLE_COLUMNS = (("infection", "f1", "F1 (paper protocol)"), ("infnet", "dice", "Dice (Inf-Net protocol)"),
                  ("infnet", "s_alpha", "S-alpha"), ("infnet", "e_phi", "E-phi"), ("infnet", "mae", "MAE"))
MULTI_COLUMNS = (("GGO", "f1", "GGO F1"), ("consolidation", "f1", "consolidation F1"),
                 ("Overall", "f1", "Overall F1 (paper: mean of class means)"),
                 ("image_mean", "f1", "per-image mean F1 (paired tests)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a reproduction results folder, e.g. results/2026-11-25-cpu")
    parser.add_argument("--bundle", type=Path, help="the bundled pipeline folder made by this experiment")
    parser.add_argument("--data", type=Path, help="the shared data root: the bundle is evaluated on its test "
                                                  "slices, and its training/validation slices are counted")
    parser.add_argument("--card-section", action="append", default=[], type=Path, metavar="FILE.json",
                        help="add a results JSON (e.g. results/benchmarks/*.json: rows or scalars) to the model card")
    args = parser.parse_args(argv)
    folder = args.folder
    command = "python scripts/regenerate_results.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for path in sorted(folder.glob("*.json")):  # the inputs, without the training machine's paths
        data = json.loads(path.read_text())
        if strip_paths(data) != data:
            fileio.write_json(path, strip_paths(data))
    if args.bundle is not None:
        regenerate_bundle(folder, args.bundle, args.data, command, args.card_section)
    experiment = json.loads((folder / "experiment.json").read_text())
    comparisons = {}
    for stage, (variants, _, planned) in STAGES.items():
        path = folder / f"compare-{stage}-comparison.json"
        if path.is_file():
            comparisons[stage] = read_comparison(path, slug(planned))
            write_tables(folder / f"compare-{stage}-comparison", comparisons[stage])
    text = summary_markdown(folder, experiment, comparisons, command)
    fileio.write_text(folder / "summary.md", text)
    write_folder_report(folder, comparisons, command)
    print(text)
    return 0


def read_comparison(path: Path, planned: str) -> Comparison:
    data = json.loads(path.read_text())
    if not is_legacy(data):
        return Comparison.from_dict(data)
    comparison = upgrade_comparison(data, planned)
    problems = check_paired_means(comparison)
    if problems:  # the derivation of paired means from the summaries must match the stored differences
        raise SystemExit(f"{path}: derived paired means disagree with the stored differences: {problems}")
    return comparison


def write_tables(stem: Path, comparison: Comparison) -> None:
    fileio.write_text(stem.with_suffix(".md"), markdown_table(comparison))
    fileio.write_csv(stem.with_suffix(".csv"), table_rows(comparison))


def model_table(folder: Path, stage: str, experiment: dict) -> str:
    """Every model of a stage side by side: validation Dice (experiment.json) and test metrics (eval-*.json)."""
    variants = STAGES[stage][0]
    columns = SINGLE_COLUMNS if stage == "single" else MULTI_COLUMNS
    validation = experiment.get("validation_dice", {})
    header = ["model", "val Dice"] + [label for _, _, label in columns]
    rows = []
    for variant in variants:
        path = folder / f"eval-{slug(variant.name)}.json"
        if not path.is_file():
            continue
        summary = upgrade_summary(json.loads(path.read_text()))
        metrics, images = summary["metrics"], summary["images"]
        val = validation.get(variant.name) if stage == "single" else None
        rows.append([variant.name, "-" if val is None else f"{val:.3f}"]
                    + [format_summary(metrics[g][m], images) if m in metrics.get(g, {}) else "-" for g, m, _ in columns])
    return markdown(header, rows)


def summary_markdown(folder: Path, experiment: dict, comparisons: dict[str, Comparison], command: str) -> str:
    lines = [f"# {folder.name}: tables regenerated from the saved evaluations", "",
             f"Written by `{command}` from `eval-*.json`, `compare-*-comparison.json` and `experiment.json` "
             "(no retraining). Mean ± 95% CI half-width on the test slices; (n=...) where fewer images count.", ""]
    for stage, comparison in comparisons.items():
        title = "Single stage (infection)" if stage == "single" else (
            f"Multi stage (prior from {experiment.get('prior_from')}, chosen by {experiment.get('prior_chosen_by')})")
        lines += [f"## {title}", "", model_table(folder, stage, experiment),
                  f"Paired comparisons against {comparison.reference} on the primary metric "
                  f"(full table: `compare-{stage}-comparison.md`):", "", markdown(*summary_table(comparison)),
                  legend(comparison), ""]
    return "\n".join(lines)


def write_folder_report(folder: Path, comparisons: dict[str, Comparison], command: str) -> None:
    """report.html from the saved summaries, ROC points, galleries, comparisons and run records (laid out as
    evaluation, comparison and run folders)."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [restore(folder, stem, Path(tmp) / stem) for stem in kept_stems(folder)]
        for stage, comparison in comparisons.items():
            target = Path(tmp) / f"compare-{stage}"
            target.mkdir()
            fileio.write_json(target / "comparison.json", comparison.as_dict())
            inputs.append(target)
        inputs += sorted(run for run in folder.glob("run-*") if (run / METRICS).is_file())
        write_report(inputs, folder / "report.html", title=f"ssinfnet reproduction: {folder.name}", note=(
            f"Regenerated by `{command}` from the files in this folder: eval-*.json (with eval-*-roc.json and "
            "eval-*-gallery/ where kept), compare-*-comparison.json and run-*/metrics.jsonl (where kept); "
            "nothing was evaluated or trained again."), not_kept=(
            "This results folder does not keep it (its evaluation and run folders were in run.sh's work folder, "
            "which is not part of the repository); drawing it again needs `bash run.sh`, which evaluates on the "
            "test slices again."))


def regenerate_bundle(folder: Path, bundle: Path, data: Path | None, command: str, sections: list[Path]) -> None:
    """metrics.json, pipeline.json (without machine paths) and MODEL_CARD.md of the bundled pipeline."""
    from ssinfnet.cli import main as ssinfnet
    from ssinfnet.data.readers import read_dataset
    from ssinfnet.data.splits import train_val_split
    from ssinfnet.workflows.model_card import card_facts, sections_from_files, stage_facts_from_config, write_card
    from ssinfnet.workflows.reproduce import variant_config

    pipeline = json.loads((bundle / "pipeline.json").read_text())
    pipeline["meta"] = strip_paths(pipeline.get("meta", {}))
    fileio.write_json(bundle / "pipeline.json", pipeline)
    metrics = json.loads((bundle / "metrics.json").read_text())
    if data is not None:  # a fresh evaluation of the bundled pipeline with today's scoring rule
        with tempfile.TemporaryDirectory() as tmp:
            evaluation = Path(tmp) / "eval-bundled"
            if ssinfnet(["evaluate", "--data", str(data / "covid-semiseg"), "--split", "test", "--pipeline",
                         str(bundle), "--out", str(evaluation), "--purpose", "report: the bundle's model card"]) != 0:
                raise SystemExit("evaluating the bundled pipeline failed")
            metrics = strip_paths(json.loads((evaluation / "summary.json").read_text()))
            shutil.copy(evaluation / "per_image.csv", folder / "eval-bundled-per_image.csv")
            keep(evaluation, folder, "eval-bundled")  # its ROC points and gallery too (the summary: below)
        fileio.write_json(bundle / "metrics.json", metrics)
        fileio.write_json(folder / "eval-bundled.json", metrics)
    experiment = json.loads((folder / "experiment.json").read_text())
    preset, overrides, width = experiment["preset"], experiment["overrides"], experiment.get("unet_width")
    counts: dict = {}
    if data is not None:
        semiseg = data / "covid-semiseg"
        samples = read_dataset(semiseg, split="train")
    stages = {}
    for stage, (variants, _, _) in STAGES.items():
        run = pipeline["meta"]["runs"][stage]["path"]
        variant = next(v for v in variants if slug(v.name) == run)
        config = variant_config(stage, variant, preset, overrides, width)
        if data is not None:
            train, val = train_val_split(samples, config["data"]["val_fraction"], int(config["seed"]))
            counts = {"train_slices": len(train), "val_slices": len(val)}
        stages[stage] = stage_facts_from_config(variant.name, stage, config, variant.pretrained,
                                                labeled_data=["covid-semiseg"], **counts)
    chosen = (f"{experiment.get('prior_chosen_by', 'validation Dice')} ({stages['single']['name']}) and the best "
              f"validation Dice among the multi-stage models ({stages['multi']['name']}); the test slices were used "
              "once, for the metrics")
    facts = card_facts(stages, pipeline["meta"], pipeline["threshold"], metrics, chosen_by=chosen, preset=preset,
                       overrides=overrides, sections=sections_from_files(sections), regenerate=[
        f"`{command}` (this card, from the saved results and a fresh evaluation of these weights)",
        f"`bash {folder}/run.sh` (the whole experiment again: every training and evaluation)"])
    write_card(bundle, facts)


if __name__ == "__main__":
    sys.exit(main())
