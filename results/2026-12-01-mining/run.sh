#!/usr/bin/env bash
# Issues 12 and 15, continued from results/2026-12-01-crossval: this run needs that run's work folder (its
# fold runs, pseudo-labels and out-of-fold scores) and starts it first when it has not finished. The whole
# experiment is one resumable command, from the repository root:
#   bash results/2026-12-01-mining/run.sh
# Same settings as the crossval run (lib.sh there); choices on validation, never on the 48 test slices:
#  1. the multi stage on the prior it gets when shipped (the semi-supervised SInfNet's fold 0; the
#     crossval run's multi stage was trained on plain SInfNet's), with and without the pseudo-labelled
#     slices; fold 0's validation chooses;
#  2. hard-negative mining (negatives.mined_from=160: each epoch's 40 negatives are the 40 of 160 random
#     NonCOVID slices with the highest lesion probability under the current weights) for the shipped
#     single stage, 5 folds; kept unless its out-of-fold Dice is more than 0.01 below the unmined one's
#     (the out-of-fold slices all hold lesions: they show what mining costs, not what it buys);
#  3. the shipped pipeline (fold 0, flip TTA if it helps out of fold, + the multi stage) and the mined
#     candidate, the 48 test slices scored once each, paired tests against the crossval run's shipped
#     candidate; specificity and robustness benchmarks (before = the bundle the crossval run found,
#     crossval = its candidate, after = the shipped one, mined = the mined candidate); the bundle and its
#     segment benchmark.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/../.."
C=results/2026-12-01-crossval
R=results/2026-12-01-mining
source "$C/lib.sh"
LABELED=(--data "$D/covid-semiseg" "${COMMON[@]}")
PSEUDO=(--pseudo "$W/pseudo" --set pseudo.per_epoch=40)
MINE=(--set negatives.mined_from=160)
[ -f "$E/shipped/summary.json" ] || bash "$C/run.sh"  # (its last steps are redone below with this run's choice)
: > "$R/choice.txt"

# 2a. hard-negative mining, folds 0-3 (first: step 1's multi runs may still be training elsewhere)
K="0 1 2 3" folds mined-semi-sinfnet single "${LABELED[@]}" "${PSEUDO[@]}" "${MINE[@]}"

# 1. multi stage on the shipped prior, fold 0 (both at once)
K=0 folds multi-semi multi "${LABELED[@]}" "${MUNET[@]}" --prior-from "$W/semi-sinfnet-f{k}" & A=$!
K=0 folds multi-semi-pseudo multi "${LABELED[@]}" "${MUNET[@]}" "${PSEUDO[@]}" --prior-from "$W/semi-sinfnet-f{k}" & B=$!
wait $A; wait $B
MULTI=multi-semi MULTI_PSEUDO=()
if higher "$(score "$R/cv-multi-semi-pseudo.json")" "$(score "$R/cv-multi-semi.json")"; then
    MULTI=multi-semi-pseudo MULTI_PSEUDO=("${PSEUDO[@]}")
fi
echo "multi stage on the shipped prior: $MULTI ($(score "$R/cv-multi-semi-pseudo.json") with pseudo-labels vs $(score "$R/cv-multi-semi.json") without; crossval run's: $(score "$C/cv-multi-sinfnet.json"))" | tee -a "$R/choice.txt"

# 2b. the last fold, and beside it the mined single stage's multi stage (fold 0)
K=4 folds mined-semi-sinfnet single "${LABELED[@]}" "${PSEUDO[@]}" "${MINE[@]}" & A=$!
K=0 folds multi-mined multi "${LABELED[@]}" "${MUNET[@]}" "${MULTI_PSEUDO[@]}" "${MINE[@]}" --prior-from "$W/mined-semi-sinfnet-f{k}" & B=$!
wait $A; wait $B
FINAL=semi-sinfnet SINGLE_CV=$C/cv-semi-sinfnet.json
if "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]) - 0.01)" \
        "$(score "$R/cv-mined-semi-sinfnet.json")" "$(score "$SINGLE_CV")"; then
    FINAL=mined-semi-sinfnet SINGLE_CV=$R/cv-mined-semi-sinfnet.json MULTI=multi-mined
fi
echo "hard-negative mining out of fold: $(score "$R/cv-mined-semi-sinfnet.json") vs $(score "$C/cv-semi-sinfnet.json") without; shipped: $FINAL + $MULTI" | tee -a "$R/choice.txt"

# 3. the 48 test slices (each once), paired tests, benchmarks, the bundle. The mined candidate (its fold 0,
#    flip TTA if it helps out of fold, its multi stage) is scored and benchmarked beside the shipped one
#    whichever is chosen, so that the trade-off is on record (never used to choose).
tta() { if [ "$(flip "$1")" = True ]; then echo --flip-tta --threshold-from "$1"; fi; }
read -ra TTA <<< "$(tta "$SINGLE_CV")"
read -ra MINED_TTA <<< "$(tta "$R/cv-mined-semi-sinfnet.json")"
pipeline mined --single "$W/mined-semi-sinfnet-f0"
pipeline mined-candidate --single "$W/mined-semi-sinfnet-f0" "${MINED_TTA[@]}" --multi "$W/multi-mined-f0"
pipeline shipped-2 --single "$W/$FINAL-f0" "${TTA[@]}" --multi "$W/$MULTI-f0"
for name in mined mined-candidate shipped-2; do evaluate "$name"; done
cp "$E/mined/summary.json" "$R/eval-mined.json"
cp "$E/mined-candidate/summary.json" "$R/eval-mined-candidate.json"
cp "$E/shipped-2/summary.json" "$R/eval-shipped.json"
"$S" compare "$E/semi" "$E/mined" --out "$R/compare-mining" --overwrite
"$S" compare "$E/shipped" "$E/shipped-2" "$E/mined-candidate" --out "$R/compare-shipped" --overwrite
MODELS=(--model "before=$W/bundle-before" --model "crossval=$P/shipped" --model "after=$P/shipped-2"
        --model "mined=$P/mined-candidate")
"$PY" benchmarks/bench_specificity.py --data "$D" "${MODELS[@]}"
"$PY" benchmarks/bench_robustness.py --data "$D" "${MODELS[@]}"
"$S" export --single "$W/$FINAL-f0" "${TTA[@]}" --multi "$W/$MULTI-f0" --out src/ssinfnet/weights/default \
    --storage bf16 --overwrite --metrics "$E/shipped-2/summary.json" \
    --card-section results/benchmarks/specificity.json --card-section results/benchmarks/robustness.json
OMP_NUM_THREADS=2 "$PY" benchmarks/bench_segment.py --threads 2
for name in specificity.json specificity.md robustness.json robustness.md segment.json; do
    cp "results/benchmarks/$name" "$R/benchmark-$name"
done
