#!/usr/bin/env bash
# Steps 5-6 of run.sh (sourced by it with R and BEST set): the ablation on the 48 test slices,
# scored once, the shipped pipeline, its benchmarks and the bundle. Resumable like run.sh.
set -euo pipefail
: "${BEST:?}" "${R:?}" "${W:?}"  # (lib.sh is loaded by run.sh)

# The semi-supervised round is kept when its out-of-fold score is higher.
FINAL=$BEST
if higher "$(score "$R/cv-semi-$BEST.json")" "$(score "$R/cv-$BEST.json")"; then FINAL=semi-$BEST; fi
TTA=(); if [ "$(flip "$R/cv-$FINAL.json")" = True ]; then TTA=(--flip-tta); fi
echo "final single stage: $FINAL, flip TTA: ${TTA[*]:-off} (out of fold)" | tee -a "$R/choice.txt"

# One model per row (fold 0, threshold from its own validation fold), then the ensemble steps.
pipeline unet --single "$W/unet-f0"
pipeline sinfnet --single "$W/sinfnet-f0"
pipeline ssinfnet --single "$W/ssinfnet-f0"
pipeline semi --single "$W/semi-$BEST-f0"
pipeline ensemble --single $(runs "$FINAL") --threshold-from "$R/cv-$FINAL.json"
pipeline ensemble-tta --single $(runs "$FINAL") --threshold-from "$R/cv-$FINAL.json" --flip-tta
for name in unet sinfnet ssinfnet semi ensemble ensemble-tta; do evaluate "$name"; done
# SSInfNet vs SInfNet is the planned comparison; then each step against the one before it.
"$S" compare "$E/sinfnet" "$E/ssinfnet" "$E/unet" --planned ssinfnet --out "$R/compare-families" --overwrite
BEFORE_ENSEMBLE=$BEST; if [ "$FINAL" != "$BEST" ]; then BEFORE_ENSEMBLE=semi; fi
"$S" compare "$E/$BEST" "$E/semi" --out "$R/compare-semi" --overwrite
"$S" compare "$E/$BEFORE_ENSEMBLE" "$E/ensemble" --out "$R/compare-ensemble" --overwrite
"$S" compare "$E/ensemble" "$E/ensemble-tta" --out "$R/compare-tta" --overwrite

# The shipped pipeline: the chosen single stage as an ensemble when it fits 25 MB, else its fold-0
# model; the multi stage (Multi U-Net) of fold 0.
SHIPPED=(--single $(runs "$FINAL") --threshold-from "$R/cv-$FINAL.json" "${TTA[@]}")
pipeline shipped-size "${SHIPPED[@]}" --multi "$W/multi-$BEST-f0"
BYTES=$(du -cb "$P/shipped-size"/*.safetensors | tail -1 | cut -f1)
if [ "$BYTES" -gt 25000000 ]; then
    SHIPPED=(--single "$W/$FINAL-f0" "${TTA[@]}")
    if [ ${#TTA[@]} -gt 0 ]; then SHIPPED+=(--threshold-from "$R/cv-$FINAL.json"); fi
fi
pipeline shipped "${SHIPPED[@]}" --multi "$W/multi-$BEST-f0"
evaluate shipped
for name in unet sinfnet ssinfnet semi ensemble ensemble-tta shipped; do
    cp "$E/$name/summary.json" "$R/eval-$name.json"
done
BEFORE=$W/bundle-before
[ -d "$BEFORE" ] || cp -r src/ssinfnet/weights/default "$BEFORE"
"$PY" benchmarks/bench_specificity.py --data "$D" --model "before=$BEFORE" --model "after=$P/shipped"
"$PY" benchmarks/bench_robustness.py --data "$D" --model "before=$BEFORE" --model "after=$P/shipped"
"$S" export "${SHIPPED[@]}" --multi "$W/multi-$BEST-f0" --out src/ssinfnet/weights/default --storage bf16 \
    --overwrite --metrics "$E/shipped/summary.json" \
    --card-section results/benchmarks/specificity.json --card-section results/benchmarks/robustness.json
OMP_NUM_THREADS=2 "$PY" benchmarks/bench_segment.py --threads 2
