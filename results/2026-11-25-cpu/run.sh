#!/usr/bin/env bash
# The command that produced this folder (resumable: run it again to continue after an interruption).
# Preset: preset.yaml here (the cpu preset as of this run), with the budgets below halved so that the whole
# experiment (2 pretrainings + 8 trainings + 9 evaluations) fits one 3-hour session on 2 CPU cores.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # 2 threads thrash when anything else runs on a 2-core machine
cd "$(dirname "$0")/../.."
.venv/bin/ssinfnet reproduce --data ../shared/data --preset results/2026-11-25-cpu/preset.yaml \
    --work "${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-11-25-cpu}" --out results/2026-11-25-cpu \
    --bundle src/ssinfnet/weights/default \
    --set pretrain.epochs=12 --set pretrain.warmup_epochs=4 --set pretrain.coach_epochs=2 \
    --set pretrain.inpaint_epochs=2 --set pretrain.grad_clip=1.0 \
    --set single.epochs=150 --set multi.epochs=150
