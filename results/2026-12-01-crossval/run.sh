#!/usr/bin/env bash
# Issue 15 (beat Semi-Inf-Net): the whole experiment, one resumable command (run it again to continue;
# a finished step is skipped, an interrupted training resumes). From the repository root:
#   bash results/2026-12-01-crossval/run.sh
# Heavy files in $SSINFNET_WORK (default ~/ssinfnet-work/2026-12-01-crossval); small results here.
#
# Every choice is made on out-of-fold predictions of 5 group-aware folds of the 50 labeled training
# slices (`ssinfnet crossval`), never on the 48 test slices, which are scored once at the end:
#  1. self-supervised coach-guided pretraining on the unlabeled pool's training part (all of it;
#     the held-out 20% and every labeled slice stay out, so no fold's validation images are seen), 3
#     epochs (warm-up 1, coach 1, inpainter 1: about the slice-epochs of 11 epochs over 1000 slices);
#  2. single stage, 5 folds each: SSInfNet (pre-trained Inf-Net, ResNet-18), SInfNet (random init),
#     U-Net (width 16); all with NonCOVID negatives, export augmentation (+ CLAHE on 25% of slices),
#     canonical contrast, Adam 1e-3, 40 epochs, 224 px;
#  3. the Inf-Net family with the best out-of-fold Dice gets its multi stage (Multi U-Net, width 16: an
#     Inf-Net multi stage would not fit the 25 MB bundle beside it), fold 0, prior from the same fold;
#     the U-Net, fold 0 only (both for lack of time in one session);
#  4. semi-supervised round (Semi-Inf-Net's randomly selected propagation): the fold ensemble labels 500
#     random COVID slices of the pool's training part; the single stage retrains on labeled + 40
#     pseudo-labelled slices per epoch (weight 0.5), 5 folds; kept if its out-of-fold score is higher;
#  5. flip test-time augmentation if it helps out of fold; the ensemble's threshold from out-of-fold;
#  6. the 48 test slices scored once per ablation step; paired tests, Holm-adjusted; specificity and
#     robustness benchmarks; the bundle exported (<= 25 MB).
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cd "$(dirname "$0")/../.."
R=results/2026-12-01-crossval
source "$R/lib.sh"

# 1. pretraining (both threads: one job)
if [ ! -f "$W/pretrain/summary.json" ]; then
    if [ -f "$W/pretrain/config.json" ]; then OMP_NUM_THREADS=2 "$S" pretrain --out "$W/pretrain" --resume --no-progress
    else rm -rf "$W/pretrain"; OMP_NUM_THREADS=2 "$S" pretrain --data "$POOL" --out "$W/pretrain" --preset cpu --no-progress \
        --set data.unlabeled_limit=null --set 'data.export_augment={probability: 0.7, clahe_probability: 0.25}' --set pretrain.epochs=3 \
        --set pretrain.warmup_epochs=1 --set pretrain.coach_epochs=1 --set pretrain.inpaint_epochs=1 "${EXTRA[@]}"; fi
fi
# 2. single stage
folds ssinfnet single --data "$D/covid-semiseg" "${COMMON[@]}" --init "$W/pretrain"
folds sinfnet single --data "$D/covid-semiseg" "${COMMON[@]}"
# 3. the better Inf-Net family's multi stage (fold 0: the shipped multi stage), beside the U-Net's
#    fold 0 (for the ablation row; all five U-Net folds did not fit the session: its out-of-fold score
#    covers fold 0's 10 slices only, so it does not take part in the choice)
BEST=$("$PY" -c "import json,sys; print(max(sys.argv[1:], key=lambda n: json.load(open(f'$R/cv-{n}.json'))['score']))" ssinfnet sinfnet)
echo "best single-stage family out of fold: $BEST" | tee "$R/choice.txt"
INIT=(); if [ "$BEST" = ssinfnet ]; then INIT=(--init "$W/pretrain"); fi
FAMILY=(); if [ "$BEST" = unet ]; then FAMILY=("${UNET[@]}"); fi
K=0 folds unet single --data "$D/covid-semiseg" "${COMMON[@]}" "${UNET[@]}" &
UNET_PID=$!
K=0 folds "multi-$BEST" multi --data "$D/covid-semiseg" "${COMMON[@]}" "${MUNET[@]}" --prior-from "$W/$BEST-f{k}"
wait "$UNET_PID"
# 4. semi-supervised round: the fold ensemble labels 500 COVID slices of the pool's training part
if [ ! -f "$W/ensemble-$BEST/pipeline.json" ]; then
    "$S" export --single $(runs "$BEST") --multi "$W/multi-$BEST-f0" --threshold-from "$R/cv-$BEST.json" \
        --out "$W/ensemble-$BEST" --overwrite
fi
if [ ! -f "$W/pseudo/pseudolabels.json" ]; then
    "$S" pseudolabel "$POOL" --model "$W/ensemble-$BEST" --out "$W/pseudo" --count 500 --seed 0 --no-progress
fi
folds "semi-$BEST" single --data "$D/covid-semiseg" "${COMMON[@]}" "${FAMILY[@]}" "${INIT[@]}" --pseudo "$W/pseudo" \
    --set pseudo.per_epoch=40
echo "semi-supervised out of fold: $(score "$R/cv-semi-$BEST.json") vs $(score "$R/cv-$BEST.json") without" | tee -a "$R/choice.txt"
# 5.-6. ablation on the 48 test slices, the bundle, benchmarks
BEST="$BEST" source "$R/ablation.sh"
