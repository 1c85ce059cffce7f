"""Report figures (matplotlib, Agg backend), returned as PNG bytes for embedding."""

from __future__ import annotations

import io
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ssinfnet.core.labels import legend_entries, overlay_rgb  # noqa: E402
from ssinfnet.evaluation.gallery import GalleryItem  # noqa: E402
from ssinfnet.evaluation.roc import Roc  # noqa: E402

DPI = 100
#: Keys of metrics.jsonl rows that are bookkeeping, not curves.
NOT_PLOTTED = {"epoch", "seconds", "step"}


def to_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def roc_figure(curves: dict[str, Roc], title: str) -> bytes:
    """ROC curves of several models (legend: name and AUC)."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
    for name, curve in curves.items():
        axes.plot(curve.fpr, curve.tpr, label=f"{name} (AUC {curve.auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right", fontsize="small")
    return to_png(figure)


def training_curves_figure(history: Sequence[dict[str, Any]], title: str) -> bytes | None:
    """Losses in one panel, validation scores in another, against epoch; None when nothing is numeric."""
    keys = sorted({k for row in history for k, v in row.items()
                   if k not in NOT_PLOTTED and isinstance(v, (int, float)) and not isinstance(v, bool)})
    if not keys:
        return None
    panels = [[k for k in keys if "loss" in k], [k for k in keys if "loss" not in k]]
    panels = [panel for panel in panels if panel]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for key in panel:
            points = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(history)
                      if isinstance(row.get(key), (int, float))]
            x, y = zip(*points)
            ax.plot(x, y, marker="o", markersize=3, label=key)
        ax.set(xlabel="epoch", title="losses" if "loss" in panel[0] else "validation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    figure.suptitle(title)
    return to_png(figure)


def gallery_figure(items: Sequence[GalleryItem], task: str = "multi") -> bytes:
    """One row per slice: CT, ground truth and prediction overlays in the label colours and legend of
    ``core.labels`` (segment's overlays use the same; a single-stage model's infection is label 1)."""
    figure, axes = plt.subplots(len(items), 3, figsize=(9, 3 * len(items)), squeeze=False)
    for row, item in zip(axes, items):
        panels = (
            (item.image, f"{item.rank}: {item.id}"),
            (overlay_rgb(item.image, item.truth), "ground truth"),
            (overlay_rgb(item.image, item.prediction), f"prediction (F1 {item.score:.2f})"),
        )
        for ax, (picture, label) in zip(row, panels):
            if picture.ndim == 2:
                ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(picture)
            ax.set_title(label, fontsize="small")
            ax.axis("off")
    handles = [Patch(color=[c / 255 for c in rgb], label=name) for _, name, rgb, _ in legend_entries(task)]
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False)
    return to_png(figure)


def budget_figure(rows: Sequence[dict[str, Any]], endpoint: str, title: str) -> bytes:
    """A study's endpoint against pretraining epochs (left) and its difference to the stage's reference
    paired by slice (right), 95% CI bars, one line per pretrained recipe; the candidates without pretraining
    as horizontal lines with their CI band (random init at every budget)."""
    figure, (absolute, paired) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    pretrained = [row for row in rows if row["pretrain_epochs"] is not None]
    budgets = sorted({row["pretrain_epochs"] for row in pretrained}) or [0]
    for row in rows:
        if row["pretrain_epochs"] is None:
            absolute.axhline(row["endpoint"], color="grey", linestyle="--", linewidth=1,
                             label=f"{row['name']} (random init)")
            absolute.axhspan(row["ci_low"], row["ci_high"], color="grey", alpha=0.15)
    paired.axhline(0, color="grey", linestyle="--", linewidth=1, label=f"{rows[0]['reference']} (reference)")
    for recipe in dict.fromkeys(row["recipe"] for row in pretrained):
        line = sorted((row for row in pretrained if row["recipe"] == recipe), key=lambda row: row["pretrain_epochs"])
        x = [row["pretrain_epochs"] for row in line]
        for axes, key, low, high in ((absolute, "endpoint", "ci_low", "ci_high"),
                                     (paired, "vs_reference", "vs_reference_low", "vs_reference_high")):
            y = [row[key] for row in line]
            error = [[v - row[low] for v, row in zip(y, line)], [row[high] - v for v, row in zip(y, line)]]
            axes.errorbar(x, y, yerr=error, marker="o", capsize=3, label=f"{recipe} (pretrained)")
    for axes, label in ((absolute, endpoint), (paired, "difference to the reference, paired by slice")):
        axes.set_xscale("symlog", linthresh=1)  # epoch 0 stays on the axis: linear up to 1, logarithmic beyond
        axes.set_xlim(-0.3, max(budgets) * 1.3 + 0.5)
        axes.set_xticks(budgets, [str(b) for b in budgets])
        axes.set(xlabel="pretraining epochs (coach-guided inpainting)", ylabel=label)
        axes.legend(fontsize="small")
    figure.suptitle(title)
    return to_png(figure)
