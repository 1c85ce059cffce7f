"""The shipping gate of the specificity follow-up runs (results/2026-12-01-{weighted-mining,specificity-finetune}):
a candidate the cost rule kept ships only if it also buys specificity and holds issue 12's floors.

    python results/2026-12-01-crossval/ship_gate.py SPECIFICITY_JSON CANDIDATE_EVAL [--shipped-eval SHIPPED_EVAL]

SPECIFICITY_JSON: ``benchmarks/bench_specificity.py`` with models "before" (shipped) and "after" (candidate);
the evaluations: ``ssinfnet evaluate`` summaries of the 48 test slices. Ships (exit 0) when the candidate has a
lower healthy-chest DICOM lesion share and a higher held-out detection AUC, infection F1 >= 0.72, and, with
``--shipped-eval``, an Inf-Net-protocol Dice at most 0.01 below the shipped model's; prints one line either way.
"""

import argparse
import json
import sys

F1_FLOOR = 0.72
DICE_COST = 0.01


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specificity")
    parser.add_argument("candidate_eval")
    parser.add_argument("--shipped-eval")
    args = parser.parse_args()
    models = {m["model"]: m for m in json.load(open(args.specificity))["models"]}
    share = {k: m["real_ct"]["chest-2slices-dicom"]["lesion_percent_of_lung"] for k, m in models.items()}
    new = json.load(open(args.candidate_eval))["metrics"]
    f1 = new["infection"]["f1"]["mean"]
    ship = share["after"] < share["before"] and models["after"]["auc"] > models["before"]["auc"] and f1 >= F1_FLOOR
    line = (f"healthy chest {share['after']:.1f}% vs {share['before']:.1f}%, held-out AUC {models['after']['auc']:.3f} vs "
            f"{models['before']['auc']:.3f}, test F1 {f1:.3f} (floor {F1_FLOOR})")
    if args.shipped_eval:
        dice, dice_old = new["infnet"]["dice"]["mean"], json.load(open(args.shipped_eval))["metrics"]["infnet"]["dice"]["mean"]
        ship = ship and dice >= dice_old - DICE_COST
        line += f", Inf-Net Dice {dice:.3f} vs {dice_old:.3f}"
    print(f"{line}: shipped: {'yes' if ship else 'no'}")
    return 0 if ship else 1


if __name__ == "__main__":
    sys.exit(main())
