#!/usr/bin/env bash
# The retraining of issue 12 (trustworthy on real scans): the bundled two-stage model (U-Net + Multi U-Net,
# width 16, as chosen on validation in results/2026-11-25-cpu) retrained with
#   - negative supervision: the NonCOVID slices of the unlabeled pool's training part (weight 0.5, 40 per epoch),
#   - export-difference augmentation and the canonical input contrast (ssinfnet.data.intensity),
#   - the unlabeled pool's held-out part (20% of source groups) left out of every step,
# at the budgets of the 2026-11-25 run (60 epochs, Adam 1e-3, 224 px). Resumable: run it again to continue.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/../.."
W=${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-12-01-realscan}
D=../shared/data
S=.venv/bin/ssinfnet
COMMON=(--preset cpu --no-progress --set single.epochs=60 --set single.lr=0.001 --set single.focal=null
        --set single.lookahead=null --set multi.epochs=60 --set multi.optimizer=adam --set multi.lr=0.001
        --set multi.momentum=0.0 --set multi.focal=null --set multi.lookahead=null)
mkdir -p "$W"
step() {  # step NAME RUN_DIR STAGE ARGS...: skip a complete run, resume an interrupted one
    local name=$1 run=$2 stage=$3; shift 3
    if [ -f "$run/summary.json" ]; then echo "done: $name"
    elif [ -d "$run" ]; then "$S" train "$stage" --out "$run" --resume --no-progress
    else "$S" train "$stage" "$@" --out "$run"; fi
}
step "U-Net" "$W/u-net" single --data $D/covid-semiseg --negatives $D/unlabeled-ct "${COMMON[@]}" \
    --set 'model={name: unet, width: 16}'
step "Multi U-Net" "$W/multi-u-net" multi --data $D/covid-semiseg --negatives $D/unlabeled-ct "${COMMON[@]}" \
    --prior-from "$W/u-net" --set 'multi_model={name: multi_unet, width: 16}'
"$S" export --single "$W/u-net" --multi "$W/multi-u-net" --out "$W/bundle" --storage bf16 --overwrite
"$S" evaluate --data $D/covid-semiseg --split test --pipeline "$W/bundle" --out "$W/eval-bundle" --overwrite
# Specificity and robustness, before (the bundled model of commit c61dcf8, with today's code) and after.
BEFORE="$W/bundle-before"
if [ ! -d "$BEFORE" ]; then
    mkdir -p "$W/before-src" && git archive c61dcf8 src/ssinfnet/weights/default | tar -x -C "$W/before-src"
    mv "$W/before-src/src/ssinfnet/weights/default" "$BEFORE"
fi
.venv/bin/python benchmarks/bench_specificity.py --data $D --model "before=$BEFORE" --model "after=$W/bundle"
.venv/bin/python benchmarks/bench_robustness.py --data $D --model "before=$BEFORE" --model "after=$W/bundle"
# The bundled default: the same runs, its card generated from them with the figures above.
"$S" export --single "$W/u-net" --multi "$W/multi-u-net" --out src/ssinfnet/weights/default --storage bf16 \
    --overwrite --metrics "$W/eval-bundle/summary.json" \
    --card-section results/benchmarks/specificity.json --card-section results/benchmarks/robustness.json
cp src/ssinfnet/weights/default/metrics.json results/2026-12-01-realscan/eval-bundle.json
