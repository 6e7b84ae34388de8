#!/usr/bin/env bash
# The GPU check in one command (< 8 min on one GPU): the gpu-marked tests, then
# benchmarks/gpu_check.py (training loop vs an airbench-style reference, host syncs per recipe,
# extraction + scores vs one forward pass, projected PASCL wall time), JSON in
# benchmarks/results/gpu_check.json. On a machine without CUDA every part is skipped cleanly
# and what it would measure is printed. `benchmarks/gpu_check.sh --smoke` runs every part on the
# CPU at tiny sizes (a check of the code paths before a GPU is lent; nothing is written).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export PYTHONPATH="${PWD}/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch; run with PYTHON=/path/to/venv/bin/python" >&2
    exit 1
fi
if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests
else
    echo "[skipped: no CUDA] gpu-marked tests: would run: pytest -m gpu tests"
fi
"$PYTHON" benchmarks/gpu_check.py "$@"
