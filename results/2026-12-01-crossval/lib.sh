# Shared by this folder's run.sh and ablation.sh and by the run.sh of results/2026-12-01-{mining,robustness,
# weighted-mining,specificity-finetune} (source it from the repository root after setting R, the results folder): the settings
# every fold run shares and the resumable steps. Environment: SSINFNET_WORK, SSINFNET_SHARED_DATA, SSINFNET
# (the CLI), SSINFNET_PYTHON, SSINFNET_EXTRA (e.g. "--set single.epochs=1" for a smoke test), JOBS (parallel fold runs).
: "${R:?set R, the results folder, before sourcing lib.sh}"
W=${W:-${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-12-01-crossval}}
D=${D:-${SSINFNET_SHARED_DATA:-../shared/data}}
S=${S:-${SSINFNET:-.venv/bin/ssinfnet}}
PY=${PY:-${SSINFNET_PYTHON:-.venv/bin/python}}
P=$W/pipelines
E=$W/eval
FOLDS=5
JOBS=${JOBS:-2}
POOL=$D/unlabeled-ct
read -ra EXTRA <<< "${SSINFNET_EXTRA:-}"
COMMON=(--preset cpu --no-progress --negatives "$POOL" --set data.folds=$FOLDS --set 'data.export_augment={probability: 0.7, clahe_probability: 0.25}'
        --set single.epochs=40 --set single.lr=0.001 --set single.focal=null --set single.lookahead=null
        --set multi.epochs=40 --set multi.optimizer=adam --set multi.lr=0.001 --set multi.momentum=0.0
        --set multi.focal=null --set multi.lookahead=null "${EXTRA[@]}")
LABELED=(--data "$D/covid-semiseg" "${COMMON[@]}")  # the labeled slices with those settings
PSEUDO=(--pseudo "$W/pseudo" --set pseudo.per_epoch=40)  # the semi-supervised round's pseudo-labels (run.sh makes them)
UNET=(--set 'model={name: unet, width: 16}')
MUNET=(--set 'multi_model={name: multi_unet, width: 16}')
mkdir -p "$W/logs" "$R" "$P" "$E"

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
field() { "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
score() { field "$1" score; }
flip() { field "$1" flip_tta; }
higher() { "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))" "$1" "$2"; }
# the follow-up runs' cost rule: score A at most 0.01 below score B
within_cost() { "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]) - 0.01)" "$1" "$2"; }
# keep TEXT CV BASE: the follow-up runs' rule (CV's out-of-fold score within_cost of BASE's), its line in
# $R/choice.txt; fails when not kept
keep() {
    local kept=no
    if within_cost "$(score "$2")" "$(score "$3")"; then kept=yes; fi
    echo "$1 out of fold: $(score "$2") vs $(score "$3") without; kept: $kept" | tee "$R/choice.txt"
    [ "$kept" = yes ]
}
# export arguments for flip TTA and its threshold when the crossval file CV chose flip, else none
tta() { if [ "$(flip "$1")" = True ]; then echo --flip-tta --threshold-from "$1"; fi; }

pipeline() {  # pipeline NAME EXPORT_ARGS...: a pipeline folder, once
    local name=$1; shift
    [ -f "$P/$name/pipeline.json" ] || "$S" export "$@" --out "$P/$name" --storage bf16 --overwrite
}
evaluate() {  # evaluate NAME: the 48 test slices, once
    [ -f "$E/$1/summary.json" ] || "$S" evaluate --data "$D/covid-semiseg" --split test --pipeline "$P/$1" \
        --out "$E/$1" --overwrite --no-progress
}
