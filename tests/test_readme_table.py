"""The README's generated parts equal their generators' output: the results table
(scripts/results_table.py, from committed result files) and docs/CLI.md (scripts/cli_reference.py, from
the parser); a missing source stops the table generator with one line and leaves the README untouched."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


results_table = load_script("results_table")
SOURCES = (results_table.RAW, results_table.PRODUCT, results_table.P001, results_table.SEGMENT_SUMMARY,
           results_table.SEGMENT_SPEED, results_table.EVALUATE_SPEED, results_table.STUDY_JSON)


def readme_block(text: str, begin: str = results_table.BEGIN, end: str = results_table.END) -> str:
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"README.md lacks the markers {begin} ... {end}"
    return match.group(1)


def test_readme_tables_are_the_generators_output(capsys):
    assert results_table.main([]) == 0
    printed = capsys.readouterr().out
    text = README.read_text(encoding="utf-8")
    study = readme_block(text, results_table.STUDY_BEGIN, results_table.STUDY_END)
    assert study + "\n" + readme_block(text) == printed
    assert text.index(results_table.STUDY_BEGIN) < text.index(results_table.BEGIN)  # the study's table comes first


def test_the_study_table_rows_are_the_study_candidates():
    study = json.loads((REPO / results_table.STUDY_JSON).read_text())
    rows = [line for line in results_table.study_table().splitlines() if line.startswith("| ")]
    candidates = study["stages"]["single"]["candidates"]
    assert len(rows) == len(candidates) + 1  # the header, then one row per candidate
    for line, candidate in zip(rows[1:], candidates):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1].startswith(f"{candidate['endpoint']:.3f} [")
        assert ("(chosen)" in cells[0]) == (candidate["name"] == study["stages"]["single"]["chosen"])


def test_table_values_come_from_the_result_files():
    raw = json.loads((REPO / results_table.RAW).read_text())
    row = next(line for line in results_table.table().splitlines() if "networks alone, `--raw`" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"{raw['metrics']['infnet']['dice']['mean']:.3f}"
    assert cells[2] == "Inf-Net 0.682, Semi-Inf-Net 0.739"  # the published figures, not ours


def copy_sources(root: Path) -> None:
    for relative in SOURCES:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / relative, root / relative)


def test_the_copied_sources_give_the_same_table(tmp_path):
    copy_sources(tmp_path)
    assert results_table.table(tmp_path) == results_table.table()
    assert results_table.study_table(tmp_path) == results_table.study_table()


@pytest.mark.parametrize("missing", SOURCES)
def test_a_missing_source_file_fails_loudly_and_writes_nothing(tmp_path, capsys, missing):
    copy_sources(tmp_path)
    (tmp_path / missing).unlink()
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text(encoding="utf-8"), encoding="utf-8")
    assert results_table.main(["--root", str(tmp_path), "--write", str(readme)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"results_table: missing source file {missing}"
    assert readme.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_a_missing_key_is_named(tmp_path, capsys):
    copy_sources(tmp_path)
    speed = tmp_path / results_table.SEGMENT_SPEED
    record = json.loads(speed.read_text())
    del record["total_s"]
    speed.write_text(json.dumps(record))
    assert results_table.main(["--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == f"results_table: {results_table.SEGMENT_SPEED}: no key 'total_s'"


def test_a_missing_scan_row_is_named(tmp_path, capsys):
    copy_sources(tmp_path)
    summary = tmp_path / results_table.SEGMENT_SUMMARY
    lines = summary.read_text().splitlines()
    summary.write_text("\n".join(line for line in lines if not line.startswith("dicom,")) + "\n")
    assert results_table.main(["--root", str(tmp_path)]) == 1
    assert "expected one row for scan 'dicom', found 0" in capsys.readouterr().err


def test_readme_size_and_links():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    assert [n for n, line in enumerate(lines, 1) if len(line) > 110] == []
    text = "\n".join(lines)
    targets = re.findall(r"\]\(([^)#\s]+)\)", text) + re.findall(r"^\[[^\]]+\]: (\S+)$", text, re.M)
    assert targets and [t for t in targets if not t.startswith("http") and not (REPO / t).exists()] == []


def test_cli_reference_is_current():
    cli_reference = load_script("cli_reference")
    assert (REPO / "docs" / "CLI.md").read_text(encoding="utf-8") == cli_reference.reference(), (
        "docs/CLI.md is stale: run PYTHONPATH=src python scripts/cli_reference.py --write docs/CLI.md")


def test_a_multi_seed_study_says_its_seeds_and_its_pairing(tmp_path):
    copy_sources(tmp_path)
    path = tmp_path / results_table.STUDY_JSON
    study = json.loads(path.read_text())
    for row in study["stages"]["single"]["candidates"]:
        row["seeds"] = {"0": row["endpoint"]}
        row["images"] //= 3
    path.write_text(json.dumps(study))
    one = " ".join(results_table.study_table(tmp_path).split())
    assert "(5 folds, seed 0)" in one and "(b) paired by slice" in one
    many = " ".join(results_table.study_table().split())
    seeds = sorted({s for row in json.loads((REPO / results_table.STUDY_JSON).read_text())["stages"]["single"]
                    ["candidates"] for s in row["seeds"]})
    assert len(seeds) > 1 and f"seeds {', '.join(seeds)}: their mean" in many and "paired by seed and slice" in many
    assert "of the 50 labelled training slices" in one and "of the 50 labelled training slices" in many
