#!/usr/bin/env bash
# The command that produced this folder (resumable: run it again to continue after an interruption).
# Preset: preset.yaml here (the cpu preset as of this run) with SHORTENED budgets, so that the whole
# experiment (2 pretrainings + 8 trainings + 9 evaluations) fits what was left of one 3-hour session on
# 2 CPU cores: pretraining 12 epochs on 1000 unlabeled slices + the 50 training images, 60 epochs per
# stage (300 steps), and for so few steps Adam at 1e-3 in both stages instead of the paper's Adam 1e-4
# (single) and SGD 0.01 (multi); U-Net baselines at width 16 (a width-32 U-Net step costs 7x an Inf-Net step).
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # 2 threads thrash when anything else runs on a 2-core machine
cd "$(dirname "$0")/../.."
.venv/bin/ssinfnet reproduce --data ../shared/data --preset results/2026-11-25-cpu/preset.yaml \
    --work "${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-11-25-cpu}" --out results/2026-11-25-cpu \
    --bundle src/ssinfnet/weights/default --unet-width 16 \
    --set pretrain.epochs=12 --set pretrain.warmup_epochs=4 --set pretrain.coach_epochs=2 \
    --set pretrain.inpaint_epochs=2 --set pretrain.grad_clip=1.0 \
    --set single.epochs=60 --set single.lr=0.001 \
    --set multi.epochs=60 --set multi.optimizer=adam --set multi.lr=0.001 --set multi.momentum=0.0
