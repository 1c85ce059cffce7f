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
W=${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-12-01-crossval}
D=${SSINFNET_SHARED_DATA:-../shared/data}
S=${SSINFNET:-.venv/bin/ssinfnet}
R=results/2026-12-01-crossval
FOLDS=5
JOBS=${JOBS:-2}
POOL=$D/unlabeled-ct
read -ra EXTRA <<< "${SSINFNET_EXTRA:-}"  # e.g. "--set single.epochs=1" for a smoke test
COMMON=(--preset cpu --no-progress --negatives "$POOL" --set data.folds=$FOLDS --set 'data.export_augment={probability: 0.7, clahe_probability: 0.25}'
        --set single.epochs=40 --set single.lr=0.001 --set single.focal=null --set single.lookahead=null
        --set multi.epochs=40 --set multi.optimizer=adam --set multi.lr=0.001 --set multi.momentum=0.0
        --set multi.focal=null --set multi.lookahead=null "${EXTRA[@]}")
UNET=(--set 'model={name: unet, width: 16}')
MUNET=(--set 'multi_model={name: multi_unet, width: 16}')
mkdir -p "$W/logs" "$R"

train() {  # train RUN STAGE ARGS...: skip a finished run, resume an interrupted one
    local run=$1 stage=$2; shift 2
    if [ -f "$run/summary.json" ]; then return 0; fi
    if [ -f "$run/config.json" ]; then "$S" train "$stage" --out "$run" --resume --no-progress
    else rm -rf "$run"; "$S" train "$stage" "$@" --out "$run"; fi
}

folds() {  # [K="0 1"] folds NAME STAGE ARGS... ("{k}" in ARGS becomes the fold): folds K (default all), $JOBS at a time
    local name=$1 stage=$2; shift 2
    local pids=() k
    for k in ${K:-$(seq 0 $((FOLDS - 1)))}; do
        if [ -f "$W/$name-f$k/summary.json" ]; then continue; fi
        echo "$(date -u +%H:%M:%S) $name fold $k"
        train "$W/$name-f$k" "$stage" "${@//\{k\}/$k}" --set data.fold=$k > "$W/logs/$name-f$k.log" 2>&1 &
        pids+=($!)
        if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    "$S" crossval "$W/$name"-f* --out "$R/cv-$name.json" --overwrite
}

runs() { local k; for k in $(seq 0 $((FOLDS - 1))); do echo "$W/$1-f$k"; done; }
score() { .venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['score'])" "$1"; }

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
BEST=$(.venv/bin/python -c "import json,sys; print(max(sys.argv[1:], key=lambda n: json.load(open(f'$R/cv-{n}.json'))['score']))" ssinfnet sinfnet)
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
W="$W" D="$D" S="$S" R="$R" BEST="$BEST" bash "$R/ablation.sh"
