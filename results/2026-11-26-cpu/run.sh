#!/usr/bin/env bash
# The command that produced this folder (resumable: run it again to continue after an interruption).
# The `cpu` preset as it is (no budget overrides): pretraining 24 epochs on 1000 unlabeled slices + the
# 50 training images, 300 epochs per stage (Adam 1e-4 single, SGD 0.01 + focal + Lookahead multi as
# the preset says; the plain variants switch focal/Lookahead off). U-Net baselines at width 16 (a
# width-32 U-Net step costs 7x an Inf-Net step). --jobs 2: the four trainings of a stage run two at a
# time with one thread each, which on 2 cores finishes sooner than one at a time with two threads.
# The single-stage pretraining in WORK was made by benchmarks/bench_time_to_quality.py (the same
# `ssinfnet pretrain` command, timed); reproduce finds it complete and reuses it.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$(dirname "$0")/../.."
.venv/bin/ssinfnet reproduce --data ../shared/data --preset cpu \
    --work "${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-11-26-cpu}" --out results/2026-11-26-cpu \
    --unet-width 16 --jobs 2 "$@"
