#!/usr/bin/env bash
# Builds the attention kernels (kernels-only driver), runs the GPU suite, the SDPA comparison and
# the benchmarks on the local GPU. Usage: scripts/gpu/run_attention.sh [OUT_DIR]
# Logs and Google Benchmark JSON go to OUT_DIR (default ./results/attention).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/results/attention}"
build="${FDC_BUILD_DIR:-$root/build-gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt" || true
cmake -S "$root/scripts/gpu/kernels-only" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFDCSIM_WERROR=ON
ninja -C "$build" -j"$(nproc)" fdcsim_tests fdcsim_gpu_tests fdc_attention_bench
"$build/fdcsim_tests"
mkdir -p "$out/dumps"
rc=0
FDC_SDPA_DUMP_DIR="$out/dumps" "$build/tests/kernels/fdcsim_gpu_tests" || rc=1
python3 "$root/scripts/gpu/sdpa_reference.py" --check "$out/dumps" || rc=1
rm -rf "$out/dumps"
python3 "$root/scripts/gpu/sdpa_reference.py" --bench | tee "$out/sdpa.txt" || rc=1
"$build/bench/kernels/fdc_attention_bench" --benchmark_out="$out/attention_bench.json" --benchmark_out_format=json \
  --benchmark_counters_tabular=true || rc=1
exit $rc
