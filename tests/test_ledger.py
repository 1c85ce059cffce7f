"""The test ledger (ssinfnet.evaluation.ledger): a scoring of the COVID-SemiSeg test split, recognised by its
images' content, appends one row; other data append nothing; rows already there are kept, under concurrent
appends too; the seeded rows are what scripts/seed_test_ledger.py derives from the committed files."""

import csv
import importlib.util
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssinfnet.cli import main
from ssinfnet.errors import InputError
from ssinfnet.evaluation import ledger
from ssinfnet.models.registry import build_model
from ssinfnet.models.weights import save_model

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "test-ledger.csv"


def write_dataset(folder: Path, seed: int, count: int = 3) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        mask = np.zeros((36, 40), np.uint8)
        mask[5:15, 6:20] = 1
        image = np.clip(60 + 120 * mask + rng.normal(0, 20, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / "images" / f"slice{i}.png")
        Image.fromarray(mask).save(folder / "masks" / f"slice{i}.png")
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger")
    write_dataset(root / "fake-test", seed=0)
    write_dataset(root / "other", seed=1)
    run = root / "tiny-run"
    run.mkdir()
    torch.manual_seed(0)
    save_model(build_model("unet", width=4), run / "model.safetensors")
    (run / "config.json").write_text(json.dumps({"data": {"size": 32}}))
    (run / "summary.json").write_text(json.dumps({"stage": "single", "validation": {"threshold": 0.5}}))
    return root


@pytest.fixture
def fake_test_split(workspace, monkeypatch):
    """The tiny dataset 'fake-test' is the known test split (its images' fingerprint is the constant)."""
    from ssinfnet.data.readers import read_dataset

    samples = read_dataset(workspace / "fake-test")
    monkeypatch.setattr(ledger, "TEST_SPLIT_SHA256", ledger.images_fingerprint(samples))
    monkeypatch.setattr(ledger, "TEST_SPLIT_IMAGES", len(samples))
    return workspace / "fake-test"


def evaluate(workspace, data, out, *extra):
    return main(["evaluate", "--data", str(data), "--single", str(workspace / "tiny-run"), "--out", str(out),
                 "--no-progress", "--gallery", "0", *extra])


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_scoring_of_the_test_split_appends_one_row(workspace, fake_test_split, tmp_path, capsys):
    book = tmp_path / "ledger.csv"
    before = datetime.now(timezone.utc).replace(microsecond=0)
    assert evaluate(workspace, fake_test_split, tmp_path / "eval", "--ledger", str(book),
                    "--purpose", "report: table 1") == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    [row] = rows(book)
    assert list(row) == list(ledger.COLUMNS)
    assert before <= datetime.strptime(row["date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) \
        <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert row["commit"] == (summary["git_commit"] or "")
    assert row["model"] == "tiny-run" and row["model_sha256"] == ledger.model_sha256(summary["model"])
    assert row["prediction"] == "product" and row["purpose"] == "report: table 1"
    assert row["data_sha256"] == summary["data"]["sha256"] and row["record"] == "eval"
    assert f"recorded in the test ledger {book}" in capsys.readouterr().out
    # the same images under other names and folders are still the test split; the default purpose is "report"
    moved = tmp_path / "elsewhere"
    (moved / "imgs").mkdir(parents=True)
    (moved / "labels").mkdir()
    for image in (fake_test_split / "images").iterdir():
        (moved / "imgs" / f"renamed-{image.name}").write_bytes(image.read_bytes())
        (moved / "labels" / f"renamed-{image.name}").write_bytes((fake_test_split / "masks" / image.name).read_bytes())
    assert evaluate(workspace, moved, tmp_path / "eval-raw", "--ledger", str(book), "--raw") == 0
    first, second = rows(book)
    assert first == row and (second["prediction"], second["purpose"]) == ("raw", ledger.DEFAULT_PURPOSE)


def test_other_data_append_nothing(workspace, fake_test_split, tmp_path, capsys):
    book = tmp_path / "ledger.csv"
    assert evaluate(workspace, workspace / "other", tmp_path / "eval", "--ledger", str(book)) == 0
    assert not book.exists() and "ledger" not in capsys.readouterr().out


def test_the_default_ledger_is_the_environments_and_never_the_committed_one(workspace, fake_test_split, tmp_path,
                                                                          monkeypatch, capsys):
    committed = COMMITTED.read_bytes()
    monkeypatch.setenv(ledger.LEDGER_ENV, str(tmp_path / "env-ledger.csv"))
    assert evaluate(workspace, fake_test_split, tmp_path / "eval") == 0
    assert len(rows(tmp_path / "env-ledger.csv")) == 1 and COMMITTED.read_bytes() == committed
    # installed without a checkout and nothing named: one note line, nothing written
    monkeypatch.delenv(ledger.LEDGER_ENV)
    monkeypatch.setattr(ledger, "checkout_ledger", lambda: None)
    assert evaluate(workspace, fake_test_split, tmp_path / "eval2") == 0
    assert "no test ledger recorded it" in capsys.readouterr().out and COMMITTED.read_bytes() == committed


def test_a_source_checkout_ledger_is_results_test_ledger_csv(monkeypatch):
    monkeypatch.delenv(ledger.LEDGER_ENV, raising=False)
    assert ledger.ledger_path() == COMMITTED
    assert ledger.ledger_path("x.csv") == Path("x.csv")


def test_a_file_that_is_not_a_ledger_is_refused_before_predicting(workspace, fake_test_split, tmp_path, capsys):
    book = tmp_path / "notes.csv"
    book.write_text("name,value\na,1\n")
    assert evaluate(workspace, fake_test_split, tmp_path / "eval", "--ledger", str(book)) == 2
    assert "notes.csv: is not a test ledger" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists() and book.read_text() == "name,value\na,1\n"
    with pytest.raises(InputError, match="is a folder"):
        ledger.check(tmp_path)


def test_concurrent_appends_keep_every_row(tmp_path):
    book = tmp_path / "ledger.csv"
    seeded = [ledger.make_row({"pipeline": f"seed{i}"}, commit="c", prediction="", purpose="p, with a comma",
                              data_sha256="d", record="r", date="2026-12-01T00:00:00Z") for i in range(2)]
    for row in seeded:
        ledger.append(book, row)
    script = ("import sys; from ssinfnet.evaluation import ledger\n"
              "for i in range(25):\n"
              "    ledger.append(sys.argv[1], ledger.make_row({'pipeline': f'w{sys.argv[2]}-{i}'}, commit='c', "
              "prediction='raw', purpose='concurrency', data_sha256='d', record='r'))\n")
    workers = [subprocess.Popen([sys.executable, "-c", script, str(book), str(w)]) for w in range(4)]
    assert all(worker.wait(timeout=120) == 0 for worker in workers)
    written = rows(book)
    assert written[:2] == seeded and len(written) == 2 + 4 * 25
    assert sorted(r["model"] for r in written[2:]) == sorted(f"w{w}-{i}" for w in range(4) for i in range(25))
    assert book.read_text().count(",".join(ledger.COLUMNS)) == 1


def test_a_row_after_a_torn_line_starts_on_its_own_line(tmp_path):
    book = tmp_path / "ledger.csv"
    book.write_text(",".join(ledger.COLUMNS) + "\n2026-12-01T00:00:00Z,abc")  # a writer killed mid-row
    ledger.append(book, ledger.make_row({"pipeline": "next"}, commit="c", prediction="raw", purpose="p",
                                        data_sha256="d", record="r"))
    assert rows(book)[-1]["model"] == "next"


def test_model_label_names_the_pipeline_and_its_runs():
    assert ledger.model_label({"pipeline": "shipped", "runs": [{"single": {"path": "a-f0"}}],
                               "multi_runs": ["m-f0"]}) == "shipped (a-f0, m-f0)"
    assert ledger.model_label({"single": {"path": "u-net"}, "multi": {"path": "multi-u-net"}}) == "u-net, multi-u-net"


def seed_script():
    spec = importlib.util.spec_from_file_location("seed_test_ledger", ROOT / "scripts" / "seed_test_ledger.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_seeded_rows_are_derived_from_the_committed_files():
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: the seed dates come from git")
    seed = seed_script()
    first = seed.seed_rows()
    assert first == seed.seed_rows()  # deterministic
    assert all(row["data_sha256"] == ledger.SEMISEG_FOLDER_SHA256 for row in first)
    decided = [row for row in first if row["purpose"].startswith("shipping decision")]
    # what ship_gate.py read: the two follow-up runs' candidates and the shipped model (one scoring, two copies)
    assert len(decided) == 3 and {f for row in decided for f in row["record"].split("; ")} >= set(seed.DECIDED)
    start, end = zip(*(row["date"].split("/") for row in first))
    assert all(a and b and a <= b for a, b in zip(start, end))  # every scoring dated between code and commit
    # the committed ledger begins with exactly these rows: none edited by hand
    assert rows(COMMITTED)[:len(first)] == first


@pytest.mark.realdata
def test_the_constants_are_the_shared_datas(shared_data):
    from ssinfnet.core.provenance import content_fingerprint
    from ssinfnet.data.readers import read_semiseg

    semiseg = shared_data / "covid-semiseg"
    for task in ("multi", "single"):
        assert ledger.is_test_split(read_semiseg(semiseg, "test", task))
    assert not ledger.is_test_split(read_semiseg(semiseg, "train"))
    assert content_fingerprint(semiseg)["sha256"] == ledger.SEMISEG_FOLDER_SHA256
