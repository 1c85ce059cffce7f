"""The HTML report: every section from small generated folders, self-contained (no external files)."""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from test_eval_scoring import make_samples, noisy_predictions, write_two_evaluations

from ssinfnet.errors import InputError
from ssinfnet.evaluation.evaluate import score_images, write_evaluation
from ssinfnet.report.html import build_report, write_report


def png_bytes(shape=(16, 24), value=128):
    buffer = io.BytesIO()
    Image.fromarray(np.full(shape, value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_run_folders(root):
    """A training run (metrics.jsonl, summary.json), a pretraining run (examples/*.png) and a
    mediation output folder, shaped like the other stages write them."""
    train = root / "train_run"
    train.mkdir()
    summary = {"best_epoch": 4, "validation": {"val_dice": 0.61, "threshold": 0.4}}
    (train / "summary.json").write_text(json.dumps(summary))
    (train / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "phase": "train", "loss": 1 / e, "val_dice": 0.1 * e, "seconds": 1.0}) + "\n"
        for e in range(1, 5)))
    pretrain = root / "pretrain_run"
    (pretrain / "examples").mkdir(parents=True)
    (pretrain / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "phase": "warmup", "rec_loss": 0.2}) + "\n")
    for name in ("round000_warmup", "round001_coach"):
        (pretrain / "examples" / f"{name}.png").write_bytes(png_bytes())
    mediation = root / "mediation"
    mediation.mkdir()
    (mediation / "mediation.json").write_text(json.dumps({"results": [
        {"mediator": "lesion_fraction", "acme": 0.12, "acme_p": 0.01, "q_value": 0.03}],
        "notes": ["bootstrap CI from 200 resamples"]}))
    (mediation / "forest.png").write_bytes(png_bytes(value=30))
    return [train, pretrain, mediation]


def full_report(root):
    """Report over two evaluations, their on-the-fly comparison and every kind of run folder."""
    evaluations = write_two_evaluations(root)
    return write_report([*evaluations, *make_run_folders(root)], root / "report.html", title="Test report")


def embedded_pngs(page):
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_has_every_section_and_only_embedded_images(tmp_path):
    page = full_report(tmp_path).read_text()
    for text in ("<title>Test report</title>", "Evaluation: baseline", "Paper protocol", "Inf-Net protocol",
                 "Comparison", "Wilcoxon", "ROC curves", "Best, median and worst slices: better",
                 "Training run: train_run", "validation.threshold", "coach masks and inpaintings", "Mediation analysis",
                 "lesion_fraction", "bootstrap CI from 200 resamples"):
        assert text in page, text
    images = embedded_pngs(page)
    # 2 ROC levels + 2 galleries + 2 training-curve plots + 2 examples + forest plot.
    assert len(images) == 9
    assert all(Image.open(io.BytesIO(png)).size[0] > 0 for png in images)
    assert len(re.findall(r"<img ", page)) == len(images)  # nothing refers to a file outside the page


def test_report_notes_evaluations_of_different_images(tmp_path):
    baseline, _ = write_two_evaluations(tmp_path)
    samples = make_samples(n=3)
    other = write_evaluation(tmp_path / "other", score_images(samples, noisy_predictions(samples, 0, 0.5)[0]), {})
    page = build_report([baseline, other])
    assert "No comparison" in page and "image set differs" in page


def test_report_refuses_unknown_folders(tmp_path):
    with pytest.raises(InputError, match="not an evaluation"):
        build_report([tmp_path])
    with pytest.raises(InputError, match="nothing to report"):
        build_report([])


def test_report_opens_with_the_summary_table_and_shows_no_machine_paths(tmp_path):
    from ssinfnet.evaluation.compare import compare, write_comparison

    evaluations = write_two_evaluations(tmp_path)
    comparison = write_comparison(tmp_path / "cmp", compare(evaluations, planned="better"))
    runs = make_run_folders(tmp_path)
    page = build_report([*evaluations, comparison, *runs[:2]])
    summary = page.index("<h2>Summary</h2>")
    assert summary < page.index("<h2>Comparison</h2>") < page.index("Evaluation: baseline")
    first_table = page[summary:page.index("</table>", summary)]
    for text in ("baseline", "better", "reference", "planned", "Δ vs baseline", "Holm"):
        assert text in first_table, text
    assert page.count("training curves of") == 2  # one per run folder given
    assert str(tmp_path) not in page
