#!/usr/bin/env bash
# Create .venv in the repository root and install fusepose into it (idempotent).
#   scripts/setup.sh          runtime + ONNX extras
#   scripts/setup.sh --dev    also test/lint tools
# torch: `pip install torch==2.13.0` is tried first because a CPU wheel of it lies on
# many CI machines; where it does not, pip falls back to the index's default build
# (CUDA on Linux). Set FUSEPOSE_TORCH_SPEC to choose another build, e.g.
#   FUSEPOSE_TORCH_SPEC="torch==2.5.1" scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
extras="onnx,tensorboard,flops"
[[ "${1:-}" == "--dev" ]] && extras="dev"
stamp=".venv/.fusepose-installed-$extras"
if [[ -f "$stamp" && "$stamp" -nt pyproject.toml ]]; then exit 0; fi
[[ -x .venv/bin/python ]] || python3 -m venv .venv
py=.venv/bin/python
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install --quiet "${FUSEPOSE_TORCH_SPEC:-torch==2.13.0}"
fi
"$py" -m pip install --quiet -e ".[$extras]"
touch "$stamp"
