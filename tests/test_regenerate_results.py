"""scripts/regenerate_results.py on a copy of a committed results folder: tables from the saved
evaluations alone, the same on a second run, and no machine paths left in the inputs."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "2026-11-26-cpu"


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def script():
    return _module("regenerate_results", ROOT / "scripts" / "regenerate_results.py")


def test_tables_come_from_the_saved_evaluations_and_are_stable(tmp_path, script):
    if not (RESULTS / "compare-single-comparison.json").is_file():
        pytest.skip(f"no saved comparison in {RESULTS}")
    folder = tmp_path / RESULTS.name
    shutil.copytree(RESULTS, folder)
    legacy = json.loads((folder / "compare-single-comparison.json").read_text())
    legacy["evaluations"] = ["/machine/work/eval/" + Path(p).name for p in legacy["evaluations"]]
    (folder / "compare-single-comparison.json").write_text(json.dumps(legacy))
    assert script.main([str(folder)]) == 0
    summary = (folder / "summary.md").read_text()
    first = (folder / "compare-single-comparison.md").read_text()
    # The planned row carries the paired difference of the saved test: SInfNet - SSInfNet on Inf-Net Dice.
    row = next(r for r in legacy["rows"] if (r["group"], r["metric"]) == ("infnet", "dice"))
    difference = row["tests"]["sinfnet"]["mean_difference"]
    planned = next(line for line in summary.splitlines() if line.startswith("| sinfnet |"))
    assert f"{difference:+.3f}" in planned and "planned" in planned and "n=48" in planned
    assert "/machine" not in (folder / "compare-single-comparison.json").read_text()
    assert script.main([str(folder)]) == 0
    assert (folder / "compare-single-comparison.md").read_text() == first
    assert "<h2>Summary</h2>" in (folder / "report.html").read_text()


def test_the_report_draws_the_kept_figures_and_names_the_missing_ones(tmp_path, script):
    # eval-ssinfnet keeps its ROC points and gallery (as reproduce writes them now), one run keeps its
    # metrics.jsonl; the other evaluations kept only their summaries, as in the committed folders.
    from test_eval_scoring import write_two_evaluations

    from ssinfnet.evaluation.results import keep

    if not (RESULTS / "compare-single-comparison.json").is_file():
        pytest.skip(f"no saved comparison in {RESULTS}")
    folder = tmp_path / RESULTS.name
    shutil.copytree(RESULTS, folder)
    evaluation = write_two_evaluations(tmp_path)[1]
    summary = (folder / "eval-ssinfnet.json").read_bytes()
    keep(evaluation, folder, "eval-ssinfnet")
    (folder / "eval-ssinfnet.json").write_bytes(summary)
    (folder / "run-ssinfnet").mkdir()
    (folder / "run-ssinfnet" / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "loss": 1 / e, "val_dice": 0.2 * e}) + "\n" for e in (1, 2, 3)))
    assert script.main([str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert page.count("<img ") == 4  # pixel + slice ROC, eval-ssinfnet's gallery, run-ssinfnet's curves
    assert "overlay gallery of eval-ssinfnet" in page and "training curves of run-ssinfnet" in page
    for name in ("eval-sinfnet", "eval-ssinfnet-fl-la", "eval-u-net"):  # the pixel AUC is all they kept
        auc = json.loads((folder / f"{name}.json").read_text())["auc"]["pixel"]
        assert f"{name} (AUC {auc:.4g})" in page
        gallery = page[page.index(f"Best, median and worst slices: {name}"):]
        assert gallery.split("</p>", 1)[0].count("Gallery not shown") == 1
    assert "curve not drawn for eval-ssinfnet" not in page


@pytest.fixture()
def tables():
    return _module("tables", ROOT / "results" / "2026-12-01-crossval" / "tables.py")


def test_every_experiment_readme_holds_the_tables_its_result_files_give(tables):
    # A README whose generated part differs from what tables.py renders now holds a number no file gives.
    for name in tables.LAYOUTS:
        folder = ROOT / "results" / name
        readme = (folder / "README.md").read_text()
        generated = readme.split(tables.BEGIN, 1)[1].split(tables.END, 1)[0]
        assert generated == "\n" + tables.render(folder), f"results/{name}/README.md: run tables.py {folder} --write"
