#!/usr/bin/env bash
# Create .venv and install ssinfnet into it. Idempotent: a second run installs nothing new.
# On a machine without an NVIDIA GPU it installs torch==2.13.0 first (the CPU build on the project
# machines), so that resolving `torch` does not pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        $PIP install -q torch
    else
        $PIP install -q "torch==2.13.0"
    fi
fi
$PIP install -q -e ".[test]"
