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


def kept_results(root, evaluations, runs=()):
    """A results folder keeping each evaluation as reproduce does (evaluation.results.keep) and each run's
    records as run-<name>/, then laid out again as the report's input folders (evaluation.results.restore)."""
    from ssinfnet.evaluation.results import keep, restore

    results = root / "results"
    for folder in evaluations:
        keep(folder, results, f"eval-{folder.name}")
    for run in runs:
        (results / f"run-{run.name}").mkdir(parents=True)
        (results / f"run-{run.name}" / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
    restored = [restore(results, f"eval-{folder.name}", root / "restored" / folder.name) for folder in evaluations]
    return results, restored + sorted(results.glob("run-*"))


def test_a_report_from_kept_files_has_the_figures_of_the_full_one(tmp_path):
    from ssinfnet.evaluation.evaluate import read_curves
    from ssinfnet.evaluation.results import KEPT_CURVE_POINTS

    evaluations = write_two_evaluations(tmp_path)
    train = make_run_folders(tmp_path)[0]
    results, inputs = kept_results(tmp_path, evaluations, [train])
    kept = json.loads((results / "eval-better-roc.json").read_text())
    full = read_curves(evaluations[1])
    assert set(kept) == set(full) == {"pixel", "slice"}
    for level, curve in full.items():  # thinned and rounded, same AUC, same ends
        assert len(kept[level]["fpr"]) <= min(len(curve.fpr), KEPT_CURVE_POINTS + 1)
        assert kept[level]["auc"] == curve.auc
        assert (kept[level]["fpr"][0], kept[level]["tpr"][-1]) == (curve.fpr[0], curve.tpr[-1])
    gallery = json.loads((results / "eval-better-gallery" / "gallery.json").read_text())
    assert all((results / "eval-better-gallery" / item["image"]).is_file() for item in gallery["items"])
    page = build_report(inputs)
    assert "curve not drawn" not in page and "not shown" not in page.lower()
    # 2 ROC levels + 2 galleries + the run's training curves, as from the evaluation and run folders.
    assert len(embedded_pngs(page)) == 5
    assert page.count("overlay gallery of") == 2 and "training curves of run-train_run" in page
    assert "GGO red, consolidation green" in page


def test_missing_figure_inputs_are_said_in_place_of_each_figure(tmp_path):
    baseline, better = write_two_evaluations(tmp_path)
    for part in ("roc.json", "gallery.json"):  # better keeps only its summary
        (better / part).unlink()
    page = build_report([baseline, better], not_kept="REASON.")
    auc = json.loads((better / "summary.json").read_text())["auc"]
    roc = page[page.index("<h2>ROC curves</h2>"):]
    for level in ("pixel", "slice"):
        assert f"curve not drawn for better (AUC {auc[level]:.4g})" in roc, level
    gallery = page[page.index("Best, median and worst slices: better"):]
    assert gallery.index("Gallery not shown") < gallery.index("REASON.")
    assert "Not shown: no training run folder (metrics.jsonl) was given. REASON." in page
    # baseline's figures are still drawn: 2 ROC levels, 1 gallery.
    assert len(embedded_pngs(page)) == 3
    assert "Training curves" not in build_report([baseline, better])  # no reason given: runs simply absent


def test_gallery_and_segment_overlays_share_the_label_colours_and_legend(tmp_path):
    from ssinfnet.core.labels import LABEL_COLOURS, legend_entries, legend_text, overlay_rgb
    from ssinfnet.evaluation.gallery import read_gallery
    from ssinfnet.inference.outputs import LEGEND_HEIGHT, representative_overlays
    from ssinfnet.report import figures

    assert legend_text("multi") == "GGO red, consolidation green" and legend_text("single") == "infection red"
    stack = np.full((1, 40, 200), 0.5, np.float32)
    labels = np.zeros((1, 40, 200), np.uint8)
    labels[0, :10], labels[0, 10:20] = 1, 2
    (_, picture), = representative_overlays(stack, "8bit", labels)
    rgb = np.asarray(picture)
    assert rgb.shape == (40 + LEGEND_HEIGHT, 200, 3)
    assert np.array_equal(rgb[:40], overlay_rgb(np.full((40, 200), 0.5 / 255, np.float32), labels[0]))
    strip = {tuple(p) for p in rgb[40:].reshape(-1, 3)}
    assert {colour for _, _, colour, _ in legend_entries("multi")} <= strip  # each label's box in its colour
    assert [name for _, name, _, _ in legend_entries("multi")] == [n for n, _, _ in LABEL_COLOURS.values()]
    # The gallery figure tints with the same function, and its legend shows each label's colour.
    _, items = read_gallery(write_two_evaluations(tmp_path)[0])
    drawn = np.asarray(Image.open(io.BytesIO(figures.gallery_figure(items, "multi"))).convert("RGB")).reshape(-1, 3)
    assert all((drawn == colour).all(axis=1).any() for _, _, colour, _ in legend_entries("multi"))
