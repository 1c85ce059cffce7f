"""Forest plot of mediation effects: one panel per outcome model, one row per mediator."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ssinfnet.fileio import atomic_path  # noqa: E402

PLOTTED = {"acme": ("ACME (indirect)", "tab:red"), "ade": ("ADE (direct)", "tab:blue"), "total": ("Total", "black")}


def forest_plot(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Estimates with their CIs for ACME, ADE and total effect; ``*`` marks ACME with q < 0.05."""
    path = Path(path)
    models = list(dict.fromkeys(table["outcome_model"]))
    mediators = list(dict.fromkeys(table["mediator"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models) + 1.5, 0.9 * len(mediators) + 1.4),
                             sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = table[table["outcome_model"] == model]
        for offset, (effect, (label, colour)) in zip((0.25, 0.0, -0.25), PLOTTED.items()):
            part = rows[rows["effect"] == effect].set_index("mediator").reindex(mediators)
            y = [len(mediators) - 1 - i + offset for i in range(len(mediators))]
            ax.errorbar(part["estimate"], y, xerr=[part["estimate"] - part["ci_low"], part["ci_high"] - part["estimate"]],
                        fmt="o", color=colour, ms=4, capsize=2, label=label)
            if effect == "acme":
                for yy, (_, r) in zip(y, part.iterrows()):
                    if r.get("q_value", 1.0) < 0.05:
                        ax.annotate("*", (r["ci_high"], yy), xytext=(3, -4), textcoords="offset points", color=colour)
        ax.axvline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("effect, exposure low -> high (* ACME q < 0.05)", fontsize=8)
    axes[0][0].set_yticks(range(len(mediators)), list(reversed(mediators)), fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
