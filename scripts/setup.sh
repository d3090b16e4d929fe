#!/usr/bin/env bash
# Create .venv in the repository root and install the project with its dev tools.
# Idempotent: a second run only installs what is missing.
#   TORCH_SPEC   the torch requirement to install first (default: the CPU build torch==2.13.0;
#                on a CUDA machine set it to the build you want, e.g. TORCH_SPEC=torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip -q --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "[setup] installing ${TORCH_SPEC:-torch==2.13.0}"
    "${PIP[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
fi
echo "[setup] installing sgd-dynamics[dev,launchers] (editable)"
"${PIP[@]}" install -e ".[dev,launchers]"
if ! .venv/bin/python -c "import curvlinops" 2>/dev/null; then
    echo "[setup] installing curvlinops-for-pytorch (test reference, no torchvision)"
    "${PIP[@]}" install --no-deps "curvlinops-for-pytorch==3.0.1"
fi
echo "[setup] done: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
