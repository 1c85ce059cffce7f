#!/usr/bin/env bash
# Issue 23: what the product path (segment's lung step, used by evaluate by default) gives against the
# networks alone (evaluate --raw, the Inf-Net benchmark protocol), for the bundled model; and the development
# real scans through evaluate/segment. The test split is scored here once (product and raw), for reporting.
# Writes the evaluations' summary.json files here as eval-<name>.json; the README quotes them.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$(dirname "$0")/../.."
W=${SSINFNET_WORK:-$HOME/ssinfnet-work/2026-12-07-product-path}
D=${SSINFNET_SHARED_DATA:-../shared/data}
S=.venv/bin/ssinfnet
B=src/ssinfnet/weights/default
HERE=results/2026-12-07-product-path
mkdir -p "$W"
for split in train test; do
    "$S" evaluate --data $D/covid-semiseg --split $split --pipeline $B --out "$W/$split-product" --overwrite --no-progress
    "$S" evaluate --data $D/covid-semiseg --split $split --pipeline $B --raw --out "$W/$split-raw" --overwrite --no-progress
done
"$S" evaluate --data $D/real-ct/covid-ct-md-P001 --pipeline $B --out "$W/P001" --overwrite --no-progress
"$S" segment $D/real-ct/covid-ct-md-normal001/dicom $D/real-ct/covid-ct-md-P001/dicom $D/real-ct/abdomen-20slices-dicom \
    $D/real-ct/chest-2slices-dicom --out "$W/segment" --overwrite --no-progress
for name in train-product train-raw test-product test-raw P001; do  # summaries name data folders, not paths
    .venv/bin/python -c "import sys; from pathlib import Path; from ssinfnet.evaluation.results import keep; \
keep(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])" "$W/$name" "$HERE" "eval-$name"
done
"$S" compare "$W/test-raw" "$W/test-product" --out "$W/compare-test" --overwrite
cp "$W/compare-test/comparison.md" "$HERE/compare-test.md"
"$S" report "$W/compare-test" "$W/test-raw" "$W/test-product" "$W/P001" --out "$HERE/report.html" \
    --title "Bundled model: networks alone (raw) vs segment's path (product); COVID-CT-MD P001 detection"
# segment's summary without its source column (this machine's paths)
.venv/bin/python -c "import pandas as pd, sys; pd.read_csv(sys.argv[1]).drop(columns='source').to_csv(sys.argv[2], index=False)" \
    "$W/segment/summary.csv" "$HERE/segment-summary.csv"
