#!/usr/bin/env bash
# Issue 25 at one CPU session's budget: the study declared in studies/self-supervision-cpu.yaml (committed
# before any of its runs), then its small outputs copied here. Resumable: run it again after an interruption.
# `run.sh PROTOCOL` does the same for the later self-supervision-cpu-* protocols, into their suffix's folder
# (seed1/, 3seeds/, focal/).
# The study scores its winner on the 48 test slices once, through segment's path (the test ledger records it);
# the networks-alone score of the same winner, the Inf-Net protocol of the published table, is the one other
# scoring of the test slices here.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$(dirname "$0")/../.."
P=${1:-self-supervision-cpu}
W=${SSINFNET_WORK:-$HOME/ssinfnet-work/$P}
D=${SSINFNET_SHARED_DATA:-../shared/data}
S=.venv/bin/ssinfnet
HERE=results/2026-12-07-self-supervision-cpu
if [ "$P" != self-supervision-cpu ]; then HERE=$HERE/${P#self-supervision-cpu-}; mkdir -p "$HERE"; fi
"$S" study "studies/$P.yaml" --work "$W" --data-root "$D" --jobs 2
if [ -f "$W/winner/pipeline.json" ] && [ ! -f "$W/test-raw/summary.json" ]; then
    "$S" evaluate --data "$D/covid-semiseg" --split test --pipeline "$W/winner" --raw --out "$W/test-raw" \
        --overwrite --no-progress --purpose "study $P: winner, networks alone (Inf-Net protocol)"
fi
cp "$W/study.json" "$W/out-of-fold.csv" "$W/budget.png" "$HERE/"
sed -e "s|$W|\$WORK|g" -e "s|$D|\$DATA|g" "$W/commands.sh" > "$HERE/commands.sh"  # no machine paths
mkdir -p "$HERE/cv" "$HERE/checks" "$HERE/pretrain"
for run in "$W"/pretrain/*/; do  # the pretraining curves: reconstruction errors and seconds per epoch
    cp "$run/metrics.jsonl" "$HERE/pretrain/$(basename "$run")-metrics.jsonl"
done
cp "$W"/cv/*.json "$HERE/cv/"
for folder in "$W"/checks/*/; do  # each candidate's check values and P001's evaluation summary
    name=$(basename "$folder")
    mkdir -p "$HERE/checks/$name"
    cp "$folder"/*.json "$HERE/checks/$name/"
    cp "$folder/P001/summary.json" "$HERE/checks/$name/P001-summary.json"
done
for name in test test-raw; do  # summaries name data folders, not paths
    if [ -f "$W/$name/summary.json" ]; then
        .venv/bin/python -c "import sys; from pathlib import Path; from ssinfnet.evaluation.results import keep; \
keep(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])" "$W/$name" "$HERE" "eval-$name"
    fi
done
