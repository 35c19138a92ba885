#!/usr/bin/env bash
# Device call: fused RoPE + rotation, 32-column (v0) against 48-column (v1) MMA groups; rope tests,
# memcheck; decode A/B: the committed decode kernels (fdc_attention_bench_head) against the shared
# unit-rows refactor, alternating.
set -u
S=$(date +%s)
DEADLINE=$((S + ${BUDGET:-420}))
R=/tmp/r; mkdir -p $R
log() { echo "[$(( $(date +%s) - S ))s] $*" | tee -a "$R/steps.log"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
step() {
  local max=$1 name=$2; shift 2
  local l; l=$(left)
  if (( l < 15 )); then log "skip $name (only ${l}s left)"; return; fi
  (( max > l )) && max=$l
  log "start $name (limit ${max}s)"
  timeout "$max" "$@" > "$R/$name.log" 2>&1
  log "end $name rc=$?"
}
pack() { tar czf "$OUT/results.tgz" -C /tmp r; ls -la "$OUT"; }
trap pack EXIT
tar xJf devcarry/bins.tar.xz
export LD_LIBRARY_PATH=$PWD/devcarry/lib:${LD_LIBRARY_PATH:-}
B=build-cuda
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv > "$R/device.txt"
date -u >> "$R/device.txt"
for v in 0 1; do
  FDCSIM_ROPE_VARIANT=$v step 60 "tests-v$v" $B/tests/ops/fdcsim_ops_gpu_tests -tc='*rope*'
done
for rep in 1 2 3; do
  for v in 0 1; do
    FDCSIM_ROPE_VARIANT=$v step 40 "prof-v$v-$rep" $B/fdcsim profile --gpus 1 --models llama-2-13b,llama-3-8b --tp 1 \
      --tokens 16,256,1024,4096 --filter rope_rotate --budget-s 30 --quiet --out "$R/prof-v$v-$rep"
  done
done
for rep in 1 2; do
  for bin in fdc_attention_bench_head fdc_attention_bench; do
    step 40 "decode-$bin-$rep" $B/bench/kernels/$bin --benchmark_filter='BM_Decode/rank:(128|0)/balanced:1/lo_pct:0/' \
      --benchmark_out="$R/decode-$bin-$rep.json" --benchmark_out_format=json
  done
done
step 90 memcheck-rope compute-sanitizer --tool memcheck $B/tests/ops/fdcsim_ops_gpu_tests -tc='*rope*'
log done
