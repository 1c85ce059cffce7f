"""The tables of this experiment's README, generated from its result files (never typed by hand).

    python results/2026-12-01-crossval/tables.py            # prints the markdown
    python results/2026-12-01-crossval/tables.py --write    # replaces the generated part of README.md
    python results/2026-12-01-crossval/tables.py results/2026-12-01-mining --write   # the follow-up runs'
    python results/2026-12-01-crossval/tables.py results/2026-12-01-robustness --write
    python results/2026-12-01-crossval/tables.py results/2026-12-01-weighted-mining --write
    python results/2026-12-01-crossval/tables.py results/2026-12-01-specificity-finetune --write

Reads ``cv-*.json`` (``ssinfnet crossval``: out-of-fold scores; ``cv-*-exports.json`` with ``--exports``:
also under each fixed export difference), ``eval-*.json`` (``ssinfnet evaluate``
summaries of the 48 test slices) and ``compare-*/comparison.json`` (``ssinfnet compare``). A file that
does not exist yet (the experiment is resumable and may stop part-way) leaves its row out and says so.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
BEGIN, END = "<!-- tables:begin (tables.py) -->", "<!-- tables:end -->"
GOALS = {"Inf-Net Dice": 0.75, "infection F1": 0.78, "GGO F1": 0.66, "consolidation F1": 0.50, "Overall": 0.70}
CROSSVAL = "2026-12-01-crossval"


class Layout:
    """What one experiment folder's README shows: (file stem, label) rows; a stem "folder/name" reads
    another experiment's file (shown for reference). ``required``: stems whose absence is reported."""

    def __init__(self, out_of_fold, multi, test, required=(), exports=()):
        self.out_of_fold, self.multi, self.test, self.required = out_of_fold, multi, test, set(required)
        self.exports = exports


LAYOUTS = {
    CROSSVAL: Layout(
        out_of_fold=[("ssinfnet", "SSInfNet (pre-trained Inf-Net, ResNet-18)"), ("sinfnet", "SInfNet (random init)"),
                     ("unet", "U-Net (width 16)")]
        + [(f"semi-{key}", f"{name} + semi-supervised") for key, name in
           (("ssinfnet", "SSInfNet (pre-trained Inf-Net, ResNet-18)"), ("sinfnet", "SInfNet (random init)"),
            ("unet", "U-Net (width 16)"))],
        multi=[(f"multi-{key}", f"Multi U-Net on the {key} prior") for key in ("ssinfnet", "sinfnet", "unet")],
        test=[("unet", "U-Net"), ("sinfnet", "SInfNet"), ("ssinfnet", "SSInfNet"), ("semi", "+ semi-supervised"),
              ("ensemble", "+ 5-fold ensemble"), ("ensemble-tta", "+ flip TTA"), ("shipped", "shipped (+ Multi U-Net)")],
        required=("ssinfnet", "sinfnet", "unet", "semi", "ensemble", "ensemble-tta", "shipped"),
    ),
    "2026-12-01-mining": Layout(
        out_of_fold=[(f"{CROSSVAL}/semi-sinfnet", "SInfNet + semi-supervised (crossval run)"),
                     ("mined-semi-sinfnet", "+ hard-negative mining, 40 of 160"),
                     ("mined80-semi-sinfnet", "+ hard-negative mining, 40 of 80")],
        multi=[(f"{CROSSVAL}/multi-sinfnet", "Multi U-Net on the SInfNet prior (crossval run)"),
               ("multi-semi", "Multi U-Net on the shipped prior"),
               ("multi-semi-pseudo", "Multi U-Net on the shipped prior + pseudo-labels"),
               ("multi-mined", "Multi U-Net on the mined prior, mined negatives (40 of 160)"),
               ("multi-mined80", "Multi U-Net on the mined prior, mined negatives (40 of 80)")],
        test=[(f"{CROSSVAL}/semi", "SInfNet + semi-supervised, fold 0 (crossval run)"),
              ("mined", "+ hard-negative mining (40 of 160), fold 0"),
              ("mined80", "+ hard-negative mining (40 of 80), fold 0"),
              (f"{CROSSVAL}/shipped", "crossval run's candidate (+ flip TTA + Multi U-Net)"),
              ("mined-candidate", "mined candidate, 40 of 160 (+ flip TTA + its Multi U-Net)"),
              ("mined80-candidate", "mined candidate, 40 of 80 (+ flip TTA + its Multi U-Net)"),
              ("shipped", "shipped (this run's choice: the unmined candidate unless a strength was kept)")],
        # (a weaker mining strength is trained only when the stronger one is not kept)
        required=("mined-semi-sinfnet", "multi-semi", "multi-semi-pseudo", "multi-mined", "mined",
                  "mined-candidate", "shipped"),
    ),
    "2026-12-01-robustness": Layout(
        out_of_fold=[("semi-sinfnet-exports", "SInfNet + semi-supervised (shipped recipe)"),
                     ("semi-sinfnet-f01-exports", "the same, folds 0-1 only"),
                     ("equalized-semi-sinfnet-f01-exports", "+ equalized input contrast, folds 0-1 only"),
                     ("strong-semi-sinfnet-exports", "+ \"strong\" (CLAHE on half the slices, gamma 0.6-1.7)"),
                     ("clahe50-semi-sinfnet-exports", "+ \"clahe50\" (CLAHE on half the slices)")],
        multi=[("2026-12-01-mining/multi-semi-pseudo", "shipped Multi U-Net (mining run)"),
               ("multi-strong", "Multi U-Net, \"strong\" augmentation, on its prior"),
               ("multi-clahe50", "Multi U-Net, \"clahe50\" augmentation, on its prior")],
        test=[("2026-12-01-mining/shipped", "shipped until now (mining run's choice)"),
              ("clahe50-candidate", "\"clahe50\" candidate (fold 0 + flip TTA + its Multi U-Net)")],
        exports=[("semi-sinfnet-exports", "shipped recipe"), ("semi-sinfnet-f01-exports", "shipped recipe, folds 0-1"),
                 ("equalized-semi-sinfnet-f01-exports", "equalized, folds 0-1"),
                 ("strong-semi-sinfnet-exports", "strong"), ("clahe50-semi-sinfnet-exports", "clahe50")],
        required=("semi-sinfnet-exports", "equalized-semi-sinfnet-f01-exports", "strong-semi-sinfnet-exports",
                  "clahe50-semi-sinfnet-exports"),
    ),
    "2026-12-01-weighted-mining": Layout(
        out_of_fold=[(f"{CROSSVAL}/semi-sinfnet", "SInfNet + semi-supervised (shipped recipe)"),
                     ("2026-12-01-mining/mined-semi-sinfnet", "+ hard-negative mining, 40 of 160 (mining run)"),
                     ("mined-w25-semi-sinfnet", "+ the same mining, negatives at loss weight 0.25")],
        multi=[("2026-12-01-mining/multi-semi-pseudo", "shipped Multi U-Net (mining run)"),
               ("multi-mined-w25", "Multi U-Net on the weighted-mining prior, the same negatives")],
        test=[("2026-12-01-mining/shipped", "shipped until now (mining run's choice)"),
              ("mined-w25-candidate", "weighted-mining candidate (fold 0 + flip TTA + its Multi U-Net)")],
        # (the candidate is scored only when the rule keeps the recipe)
        required=("mined-w25-semi-sinfnet", "multi-mined-w25"),
    ),
    "2026-12-01-specificity-finetune": Layout(
        out_of_fold=[(f"{CROSSVAL}/semi-sinfnet", "SInfNet + semi-supervised (shipped recipe)"),
                     ("2026-12-01-mining/mined-semi-sinfnet", "+ hard-negative mining, 40 of 160, 40 epochs (mining run)"),
                     ("ft-mined-semi-sinfnet", "shipped folds + 12 epochs of the same mining at Adam 3e-4")],
        multi=[("2026-12-01-mining/multi-semi-pseudo", "shipped Multi U-Net (the candidate's too)")],
        test=[("shipped", "shipped"),
              ("ft-mined-candidate", "fine-tuned candidate (fold 0 + flip TTA + the shipped Multi U-Net)")],
        # (the candidate is scored only when the rule keeps the recipe)
        required=("ft-mined-semi-sinfnet",),
    ),
}


def _path(folder: Path, kind: str, stem: str) -> Path:
    """``kind``-``stem``.json of ``folder``, or of another experiment for a stem "other/name"."""
    if "/" in stem:
        other, stem = stem.split("/", 1)
        folder = RESULTS / other
    return folder / f"{kind}-{stem}.json"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _num(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _metric(summary: dict, group: str, name: str):
    return (summary["metrics"].get(group) or {}).get(name, {}).get("mean")


def _files(folder: Path, kind: str, rows, layout: Layout, missing: list[str]):
    """(label, contents) of each row's file that exists; a required one that does not goes to ``missing``."""
    for key, label in rows:
        data = _read(_path(folder, kind, key))
        if data is not None:
            yield label, data
        elif key in layout.required:
            missing.append(key)


def out_of_fold_table(folder: Path, layout: Layout) -> list[str]:
    lines = ["| single stage | folds | out-of-fold slices | Dice (pooled threshold) | threshold | with flip TTA | flip helps |",
             "|---|---|---|---|---|---|---|"]
    missing = []
    for label, cv in _files(folder, "cv", layout.out_of_fold, layout, missing):
        lines.append(f"| {label} | {len(cv['folds_done'])}/{cv['folds']} | {cv['slices']} | {_num(cv['plain']['score'])} | "
                     f"{cv['plain']['threshold']:.2f} | {_num(cv['flip']['score'])} | {cv['flip_tta']} |")
    multi = []
    for label, cv in _files(folder, "cv", layout.multi, layout, missing):
        multi.append(f"| {label} | {len(cv['folds_done'])}/{cv['folds']} | {cv['slices']} | "
                     f"{_num(cv['plain'].get('val_dice_GGO'))} / {_num(cv['plain'].get('val_dice_consolidation'))} | "
                     f"{_num(cv['flip'].get('val_dice_GGO'))} / {_num(cv['flip'].get('val_dice_consolidation'))} |")
    if multi:
        lines += ["", "| multi stage | folds | out-of-fold slices | GGO / consolidation Dice | with flip TTA |",
                  "|---|---|---|---|---|", *multi]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return lines


def exports_table(folder: Path, layout: Layout) -> list[str]:
    """Out-of-fold Dice under each fixed export difference (the chosen view's), a column per run."""
    missing: list[str] = []
    runs = list(_files(folder, "cv", layout.exports, layout, missing))
    if not runs:
        return []
    chosen = [(label, cv["flip" if cv["flip_tta"] else "plain"]) for label, cv in runs]
    names = list(chosen[0][1]["exports"])
    lines = ["| export | " + " | ".join(f"{label}: Dice (loss)" for label, _ in chosen) + " |",
             "|---|" + "---|" * len(chosen),
             "| clean | " + " | ".join(_num(view["score"]) for _, view in chosen) + " |"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{_num(view['exports'][name]['score'])} "
                                                 f"({view['exports'][name]['loss']:+.3f})" for _, view in chosen) + " |")
    worst = []
    for _, view in chosen:
        name = max((n for n in names if n != "full_fov"), key=lambda n: view["exports"][n]["loss"])
        worst.append(f"{view['exports'][name]['loss']:.3f} ({name})")
    lines.append("| **worst loss, full_fov aside** | " + " | ".join(worst) + " |")
    return ["### Out of fold under fixed export differences (`ssinfnet crossval --exports all`)", "", *lines, ""]


def test_table(folder: Path, layout: Layout) -> list[str]:
    lines = ["| model | Inf-Net Dice | infection F1 | GGO F1 | consolidation F1 | Overall (paper) | threshold |",
             "|---|---|---|---|---|---|---|"]
    missing = []
    for label, summary in _files(folder, "eval", layout.test, layout, missing):
        lines.append(f"| {label} | {_num(_metric(summary, 'infnet', 'dice'))} | {_num(_metric(summary, 'infection', 'f1'))} | "
                     f"{_num(_metric(summary, 'GGO', 'f1'))} | {_num(_metric(summary, 'consolidation', 'f1'))} | "
                     f"{_num(_metric(summary, 'Overall', 'f1'))} | {summary.get('threshold', float('nan')):.2f} |")
    lines.append("| goal (issue 15) | " + " | ".join(f">= {GOALS[k]:.2f}" for k in GOALS) + " | |")
    if missing:
        lines += ["", f"Not scored yet: {', '.join(missing)}."]
    return lines


def comparison_lines(folder: Path) -> list[str]:
    lines = ["| comparison | metric | reference vs model (paired means) | Δ [95% CI] | n | t-test p (Holm) | family |",
             "|---|---|---|---|---|---|---|"]
    for path in sorted(folder.glob("compare-*/comparison.json")):
        data = json.loads(path.read_text())
        for row in data["rows"]:
            if (row["group"], row["metric"]) not in (("infnet", "dice"), ("infection", "f1")):
                continue
            for model, test in row["tests"].items():
                half = test.get("difference_ci95") or float("nan")
                diff = test["mean_difference"]
                lines.append(f"| {data['reference']} vs {model} | {row['group']} {row['metric']} | "
                             f"{_num(test['reference_mean'])} vs {_num(test['mean'])} | {diff:+.3f} "
                             f"[{diff - half:+.3f}, {diff + half:+.3f}] | {test['pairs']} | "
                             f"{test['t_p']:.3g} ({test['t_p_holm']:.3g}) | {test['family']} |")
    return lines if len(lines) > 2 else ["No comparisons yet."]


def render(folder: Path) -> str:
    layout = LAYOUTS[folder.name]
    choice = (folder / "choice.txt").read_text().strip().splitlines() if (folder / "choice.txt").is_file() else []
    parts = ["### Out-of-fold scores of the labeled training slices: every choice is made here", "",
             *out_of_fold_table(folder, layout), "", *(f"- {line}" for line in choice), "",
             *exports_table(folder, layout),
             "### The 48 test slices, scored once (ablation)", "", *test_table(folder, layout), "",
             "### Paired tests on the 48 test slices", "", *comparison_lines(folder)]
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=HERE,
                        help=f"the experiment folder (default: this one; known: {', '.join(LAYOUTS)})")
    parser.add_argument("--write", action="store_true", help="replace the generated part of the folder's README.md")
    args = parser.parse_args()
    folder = args.folder.resolve()
    text = render(folder)
    if not args.write:
        print(text)
        return
    readme = folder / "README.md"
    old = readme.read_text()
    head, rest = old.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


if __name__ == "__main__":
    main()
