#!/usr/bin/env bash
# Builds fdcsim with CUDA and runs `fdcsim profile` on this GPU server within a time budget.
#
#   scripts/gpu/profile.sh [--budget-s S] [--gpus N] [--out DIR] [--tests] [-- extra fdcsim profile args]
#
# Defaults: 480 s of profiling, every visible GPU, output in
# configs/profiles/raw/<gpu>-<n>gpu-<UTC date>/ (the documented place for raw profiles; see
# docs/profile.md). --tests first runs the GPU test suite of the ops (fdcsim_ops_gpu_tests).
# The build itself is not counted in the budget. When NCCL_TESTS_DIR points at built nccl-tests,
# NCCL's own all_reduce_perf / alltoall_perf run on the same GPUs for comparison (nccl-tests/*.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
budget=480
gpus=""
out=""
tests=0
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --budget-s) budget="$2"; shift 2 ;;
    --gpus) gpus="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --tests) tests=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
export PATH="/usr/local/cuda/bin:$PATH"
build=${BUILD_DIR:-build-profile}
jobs=$(nproc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFDCSIM_CUDA=ON -DFDCSIM_BUILD_TESTS=$([[ $tests == 1 ]] && echo ON || echo OFF) >/dev/null
targets=(fdcsim)
[[ $tests == 1 ]] && targets+=(fdcsim_ops_gpu_tests)
ninja -C "$build" -j "$jobs" "${targets[@]}"
if [[ $tests == 1 ]]; then
  "$build/tests/ops/fdcsim_ops_gpu_tests"
fi
visible=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
n=${gpus:-$visible}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr '[:upper:]' '[:lower:]' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/-$//')
if [[ -z "$out" ]]; then
  out="configs/profiles/raw/${gpu}-${n}gpu-$(date -u +%Y%m%d)"
fi
mkdir -p "$out"
nvidia-smi -q > "$out/nvidia-smi.txt" 2>&1 || true
nvidia-smi topo -m > "$out/nvidia-smi-topo.txt" 2>&1 || true
set +e
"$build/fdcsim" profile --budget-s "$budget" --gpus "$n" --out "$out" "${extra[@]}"
code=$?
set -e
if [[ -n "${NCCL_TESTS_DIR:-}" && "$n" -ge 2 ]]; then
  mkdir -p "$out/nccl-tests"
  for t in all_reduce_perf alltoall_perf all_gather_perf; do
    [[ -x "$NCCL_TESTS_DIR/build/$t" ]] && "$NCCL_TESTS_DIR/build/$t" -b 1K -e 1G -f 2 -g "$n" -d bfloat16 \
      > "$out/nccl-tests/$t.txt" 2>&1 || true
  done
fi
echo "profile.sh: raw profile in $out (exit $code)"
exit $code
