#!/usr/bin/env bash
# GPU self-check (a few minutes on one GPU): trains every registered model for a few hundred
# steps with AMP and channels-last on CUDA, runs a one-process DDP step, exports to ONNX and
# predicts on CUDA, compares CUDA and CPU outputs of the same weights, and prints images/s and
# peak memory per model as JSON (stdout; also written to ${FUSEPOSE_GPU_CHECK_OUT:-runs/gpu_check.json}).
# Exit 1 if a check failed; prints a "skipped" report and exits 0 where there is no CUDA device.
#   scripts/gpu_check.sh                      every model, 200 steps
#   scripts/gpu_check.sh --models lmfnet --steps 300
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
[[ -x "$py" ]] || py=python3
exec "$py" -m fusepose.benchmark.gpu_check --out "${FUSEPOSE_GPU_CHECK_OUT:-runs/gpu_check.json}" "$@"
