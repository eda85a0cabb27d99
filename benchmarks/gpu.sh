#!/usr/bin/env bash
# The GPU path measured in one command (issue 15): a fresh virtualenv with xfast's GPU extra
# (pip builds the kernels), then benchmarks/bench_gpu.py. On a machine without a GPU it says so
# and runs the CPU parts. Usage: bash benchmarks/gpu.sh   (XFAST_GPU_VENV: where the virtualenv goes;
# XFAST_GPU_PAIRS / XFAST_CPU_PAIRS: pairs for the end-to-end runs)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${XFAST_GPU_VENV:-${TMPDIR:-/tmp}/xfast-gpu-venv}
start=$(date +%s)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu.sh: $(nvidia-smi -L | head -1)"
  gpu=1
else
  echo "gpu.sh: no GPU found (nvidia-smi sees none): installing the CPU runtime and running the CPU parts"
  gpu=0
fi

python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q torch==2.13.0   # the pinned CPU build; it only exports models here
if [ "$gpu" = 1 ]; then
  pip install -q -e ".[gpu]" pytest
  # onnxruntime and onnxruntime-gpu install the same module: keep only the GPU one
  pip uninstall -q -y onnxruntime
  pip install -q --force-reinstall --no-deps "$(pip show onnxruntime-gpu | awk '/^Version/ {print "onnxruntime-gpu==" $2}')"
else
  pip install -q -e . pytest   # the CPU runtime
fi
echo "gpu.sh: environment ready in $(( $(date +%s) - start )) s"
export OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
python benchmarks/bench_gpu.py
if [ "$gpu" = 1 ]; then
  python -m pytest -q tests/test_gpu.py
fi
echo "gpu.sh: finished in $(( $(date +%s) - start )) s"
