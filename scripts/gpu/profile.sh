#!/usr/bin/env bash
# Builds fdcsim with CUDA and runs `fdcsim profile` on this GPU server within a time budget.
#
#   scripts/gpu/profile.sh [--budget-s S] [--gpus N] [--out DIR] [--suffix S] [--tests] [--jobs J]
#                          [-- extra fdcsim profile args]
#
# Defaults: 480 s of profiling, every visible GPU, output in
# configs/profiles/raw/<gpu>-<n>gpu-<UTC date>[-S]/ (the documented place for raw profiles; see
# docs/profile.md). --tests first runs the GPU test suite of the ops (fdcsim_ops_gpu_tests; its
# output goes to gpu-tests.log in the output folder; a failure is reported in the exit code, the
# profile still runs). Only the targets needed are built (fdcsim, and the test binary with
# --tests). The build itself is not counted in the budget. A copy without git history may set
# FDCSIM_SOURCE_COMMIT to the commit it was exported from (recorded in the provenance). When NCCL_TESTS_DIR points at built nccl-tests,
# NCCL's own all_reduce_perf / alltoall_perf run on the same GPUs for comparison (nccl-tests/*.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
budget=480
gpus=""
out=""
tests=0
suffix=""
jobs=$(nproc)
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --budget-s) budget="$2"; shift 2 ;;
    --gpus) gpus="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --tests) tests=1; shift ;;
    --suffix) suffix="-$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
export PATH="/usr/local/cuda/bin:$PATH"
build=${BUILD_DIR:-build-profile}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFDCSIM_CUDA=ON -DFDCSIM_BUILD_TESTS=$([[ $tests == 1 ]] && echo ON || echo OFF) >/dev/null
targets=(fdcsim)
[[ $tests == 1 ]] && targets+=(fdcsim_ops_gpu_tests)
ninja -C "$build" -j "$jobs" "${targets[@]}"
visible=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
n=${gpus:-$visible}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr '[:upper:]' '[:lower:]' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\+/-/g' -e 's/-$//')
if [[ -z "$out" ]]; then
  out="configs/profiles/raw/${gpu}-${n}gpu-$(date -u +%Y%m%d)${suffix}"
fi
mkdir -p "$out"
tests_code=0
if [[ $tests == 1 ]]; then
  set +e
  "$build/tests/ops/fdcsim_ops_gpu_tests" 2>&1 | tee "$out/gpu-tests.log"
  tests_code=${PIPESTATUS[0]}
  set -e
  echo "profile.sh: fdcsim_ops_gpu_tests exit $tests_code"
fi
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
if [[ $code == 0 && $tests_code != 0 ]]; then code=4; fi
exit $code
