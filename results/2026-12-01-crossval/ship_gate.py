"""The shipping gate of the specificity follow-up runs (results/2026-12-01-{weighted-mining,specificity-finetune}):
a candidate the cost rule kept ships only if it also buys specificity.

    python results/2026-12-01-crossval/ship_gate.py SPECIFICITY_JSON

SPECIFICITY_JSON: ``benchmarks/bench_specificity.py`` with models "before" (shipped) and "after" (candidate).
Ships (exit 0) when the candidate has a lower healthy-chest DICOM lesion share and a higher held-out detection
AUC (the unlabeled pool's held-out part and the real DICOM controls: no test data); prints one line either way.

Until issue 25 the gate also read the 48 COVID-SemiSeg test slices (infection F1 >= 0.72 and an Inf-Net-protocol
Dice at most 0.01 below the shipped model's). Those criteria are retired: the test slices are for reporting,
never for choosing. The ``choice.txt`` lines of the two runs above came from the old gate (their READMEs say
so, and results/test-ledger.csv records those scorings with that purpose).
"""

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specificity")
    args = parser.parse_args()
    models = {m["model"]: m for m in json.load(open(args.specificity))["models"]}
    share = {k: m["real_ct"]["chest-2slices-dicom"]["lesion_percent_of_lung"] for k, m in models.items()}
    ship = share["after"] < share["before"] and models["after"]["auc"] > models["before"]["auc"]
    print(f"healthy chest {share['after']:.1f}% vs {share['before']:.1f}%, held-out AUC {models['after']['auc']:.3f} "
          f"vs {models['before']['auc']:.3f}: shipped: {'yes' if ship else 'no'}")
    return 0 if ship else 1


if __name__ == "__main__":
    sys.exit(main())
