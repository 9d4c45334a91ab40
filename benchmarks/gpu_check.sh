#!/usr/bin/env bash
# The one script a session with a CUDA GPU runs (about 10 minutes on one H100): install, the
# CUDA tests, the GPU sweep (chunk sizes, compile, TF32, bfloat16) and `nnfractal bench` on CUDA.
# Results go to $OUT (default ./gpu_check_out): logs, gpu_sweep.json, bench_cuda.json.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
{ nvidia-smi; "$PY" --version; } > "$OUT/machine.txt" 2>&1
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  "$PY" -m venv .venv-gpu && . .venv-gpu/bin/activate && PY=python
  pip install -q -e ".[test]" > "$OUT/install.log" 2>&1 || { echo "install failed"; tail "$OUT/install.log"; exit 1; }
else
  "$PY" -m pip install -q -e ".[test]" > "$OUT/install.log" 2>&1 || true
fi
"$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/machine.txt"
# 1. correctness on the GPU (skipped on CPU machines): ~1 min
timeout 300 "$PY" -m pytest -q tests/test_gpu.py 2>&1 | tee "$OUT/tests_gpu.log" | tail -3
# 2. ResNet-20 model-steps/s by chunk size and option (goal: >= 5000 float32 on one H100): ~3 min
timeout 400 "$PY" benchmarks/gpu_sweep.py --json "$OUT/gpu_sweep.json" 2>&1 | tee "$OUT/gpu_sweep.log"
# 3. the standard bench on CUDA, quick (both workloads, naive loop included): ~2 min
timeout 300 "$PY" -m nnfractal bench --device cuda --quick --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.log" | tail -12
echo "results in $OUT"
