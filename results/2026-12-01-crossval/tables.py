"""The tables of this experiment's README, generated from its result files (never typed by hand).

    python results/2026-12-01-crossval/tables.py            # prints the markdown
    python results/2026-12-01-crossval/tables.py --write    # replaces the generated part of README.md

Reads ``cv-*.json`` (``ssinfnet crossval``: out-of-fold scores), ``eval-*.json`` (``ssinfnet evaluate``
summaries of the 48 test slices) and ``compare-*/comparison.json`` (``ssinfnet compare``). A file that
does not exist yet (the experiment is resumable and may stop part-way) leaves its row out and says so.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- tables:begin (tables.py) -->", "<!-- tables:end -->"
FAMILIES = (("ssinfnet", "SSInfNet (pre-trained Inf-Net, ResNet-18)"), ("sinfnet", "SInfNet (random init)"),
            ("unet", "U-Net (width 16)"))
ROWS = (("unet", "U-Net"), ("sinfnet", "SInfNet"), ("ssinfnet", "SSInfNet"), ("semi", "+ semi-supervised"),
        ("ensemble", "+ 5-fold ensemble"), ("ensemble-tta", "+ flip TTA"), ("shipped", "shipped (+ Multi U-Net)"))
GOALS = {"Inf-Net Dice": 0.75, "infection F1": 0.78, "GGO F1": 0.66, "consolidation F1": 0.50, "Overall": 0.70}


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _num(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _metric(summary: dict, group: str, name: str):
    return (summary["metrics"].get(group) or {}).get(name, {}).get("mean")


def out_of_fold_table() -> list[str]:
    lines = ["| single stage | folds | out-of-fold slices | Dice (pooled threshold) | threshold | with flip TTA | flip helps |",
             "|---|---|---|---|---|---|---|"]
    missing = []
    for key, label in FAMILIES + tuple((f"semi-{k}", f"{name} + semi-supervised") for k, name in FAMILIES):
        cv = _read(HERE / f"cv-{key}.json")
        if cv is None:
            missing += [] if key.startswith("semi-") else [key]  # one semi-supervised round, of the chosen family
            continue
        lines.append(f"| {label} | {len(cv['folds_done'])}/{cv['folds']} | {cv['slices']} | {_num(cv['plain']['score'])} | "
                     f"{cv['plain']['threshold']:.2f} | {_num(cv['flip']['score'])} | {cv['flip_tta']} |")
    for key in ("ssinfnet", "sinfnet", "unet"):
        cv = _read(HERE / f"cv-multi-{key}.json")
        if cv is not None:
            lines += ["", f"Multi stage (Multi U-Net on the {key} prior), out of fold: GGO Dice "
                      f"{_num(cv['plain'].get('val_dice_GGO'))}, consolidation {_num(cv['plain'].get('val_dice_consolidation'))} "
                      f"(with flip {_num(cv['flip'].get('val_dice_GGO'))} / {_num(cv['flip'].get('val_dice_consolidation'))})."]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return lines


def test_table() -> list[str]:
    lines = ["| model | Inf-Net Dice | infection F1 | GGO F1 | consolidation F1 | Overall (paper) | threshold |",
             "|---|---|---|---|---|---|---|"]
    missing = []
    for key, label in ROWS:
        summary = _read(HERE / f"eval-{key}.json")
        if summary is None:
            missing.append(label)
            continue
        lines.append(f"| {label} | {_num(_metric(summary, 'infnet', 'dice'))} | {_num(_metric(summary, 'infection', 'f1'))} | "
                     f"{_num(_metric(summary, 'GGO', 'f1'))} | {_num(_metric(summary, 'consolidation', 'f1'))} | "
                     f"{_num(_metric(summary, 'Overall', 'f1'))} | {summary.get('threshold', float('nan')):.2f} |")
    lines.append("| goal (issue 15) | " + " | ".join(f">= {GOALS[k]:.2f}" for k in GOALS) + " | |")
    if missing:
        lines += ["", f"Not scored yet: {', '.join(missing)}."]
    return lines


def comparison_lines() -> list[str]:
    lines = ["| comparison | metric | reference vs model (paired means) | Δ [95% CI] | n | t-test p (Holm) | family |",
             "|---|---|---|---|---|---|---|"]
    for folder in sorted(HERE.glob("compare-*/comparison.json")):
        data = json.loads(folder.read_text())
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


def render() -> str:
    choice = (HERE / "choice.txt").read_text().strip().splitlines() if (HERE / "choice.txt").is_file() else []
    parts = ["### Out-of-fold scores of the labeled training slices: every choice is made here", "",
             *out_of_fold_table(), "", *(f"- {line}" for line in choice), "",
             "### The 48 test slices, scored once (ablation)", "", *test_table(), "",
             "### Paired tests on the 48 test slices", "", *comparison_lines()]
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the generated part of README.md")
    args = parser.parse_args()
    text = render()
    if not args.write:
        print(text)
        return
    readme = HERE / "README.md"
    old = readme.read_text()
    head, rest = old.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


if __name__ == "__main__":
    main()
