#!/usr/bin/env bash
# Issue 12, continued: hard-negative mining at half the loss weight. Needs the crossval, mining and
# robustness runs' work folder (pseudo-labels, the shipped recipe's fold runs and out-of-fold scores). One
# resumable command, from the repository root:
#   bash results/2026-12-01-weighted-mining/run.sh
# Mining from 160 (results/2026-12-01-mining) brought the healthy chest DICOM from 9.0% to 3.4% "lesion" but
# cost 0.021 out-of-fold Dice; this run mines the same way with the mined negatives weighing 0.25 in the loss
# instead of 0.5 (negatives.weight), so that they push less against the lesions they resemble.
#  1. the shipped recipe (semi-supervised SInfNet) with mining from 160 at weight 0.25, 5 folds;
#  2. rule, written before its results (the mining run's): kept if its out-of-fold Dice is at most 0.01 below
#     the shipped recipe's (results/2026-12-01-crossval/cv-semi-sinfnet.json);
#  3. when kept: its multi stage on its fold-0 prior (pseudo-labels, as shipped), the candidate (fold 0, flip
#     TTA if it helps out of fold) scored once on the 48 test slices, paired test against the shipped
#     candidate, the specificity and robustness benchmarks (after = the candidate);
#  4. (added after the results, see step 4 below) the bundle and its segment benchmark, only when the
#     candidate also buys specificity.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/../.."
C=results/2026-12-01-crossval
R=results/2026-12-01-weighted-mining
source "$C/lib.sh"
[ -f "$E/unmined-candidate/summary.json" ] || { echo "run results/2026-12-01-mining/run.sh first" >&2; exit 1; }
NAME=mined-w25
MINING=(--set negatives.mined_from=160 --set negatives.weight=0.25)
BASE=$C/cv-semi-sinfnet.json

# 1. the folds (fold 4 beside the multi stage on fold 0's prior, which step 3 needs when kept)
K="0 1 2 3" folds "$NAME-semi-sinfnet" single "${LABELED[@]}" "${PSEUDO[@]}" "${MINING[@]}"
K=4 folds "$NAME-semi-sinfnet" single "${LABELED[@]}" "${PSEUDO[@]}" "${MINING[@]}" & A=$!
K=0 folds "multi-$NAME" multi "${LABELED[@]}" "${MUNET[@]}" "${PSEUDO[@]}" "${MINING[@]}" \
    --prior-from "$W/$NAME-semi-sinfnet-f{k}" & B=$!
wait $A; wait $B
CV=$R/cv-$NAME-semi-sinfnet.json

# 2. the rule
keep "mining from 160 at weight 0.25" "$CV" "$BASE" || exit 0

# 3. the candidate, its scores, the benchmarks and the bundle
pipeline "$NAME-candidate" --single "$W/$NAME-semi-sinfnet-f0" $(tta "$CV") --multi "$W/multi-$NAME-f0"
evaluate "$NAME-candidate"
cp "$E/$NAME-candidate/summary.json" "$R/eval-$NAME-candidate.json"
"$S" compare "$E/unmined-candidate" "$E/$NAME-candidate" --out "$R/compare-candidates" --overwrite
MODELS=(--model "before=$P/unmined-candidate" --model "after=$P/$NAME-candidate")
# (written here, not to results/benchmarks/, which describe the bundle: step 4 copies them there when it ships)
"$PY" benchmarks/bench_specificity.py --data "$D" "${MODELS[@]}" --out "$R/benchmark-specificity.json"
"$PY" benchmarks/bench_robustness.py --data "$D" "${MODELS[@]}" --out "$R/benchmark-robustness.json"
# 4. Added after this run's results (README): the rule of step 2 judges only what the recipe costs. Shipped
#    only when the candidate also buys specificity on data no choice has used so far (a lower healthy-chest
#    DICOM lesion share and a higher held-out detection AUC than the shipped candidate's). Its committed
#    choice.txt line also held issue 12's floor on the 48 test slices (infection F1 >= 0.72); issue 25 retired
#    that criterion (the test slices are for reporting), so this step no longer reads them (README).
if ! "$PY" "$C/ship_gate.py" "$R/benchmark-specificity.json" | tee -a "$R/choice.txt"; then exit 0; fi
for name in specificity.json specificity.md robustness.json robustness.md; do
    cp "$R/benchmark-$name" "results/benchmarks/$name"
done
"$S" export --single "$W/$NAME-semi-sinfnet-f0" $(tta "$CV") --multi "$W/multi-$NAME-f0" --out src/ssinfnet/weights/default \
    --storage bf16 --overwrite --metrics "$E/$NAME-candidate/summary.json" \
    --card-section results/benchmarks/specificity.json --card-section results/benchmarks/robustness.json
OMP_NUM_THREADS=2 "$PY" benchmarks/bench_segment.py --threads 2
cp results/benchmarks/segment.json "$R/benchmark-segment.json"
