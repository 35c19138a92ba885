#!/usr/bin/env bash
# Device call: fused RoPE + rotation, old schedule (v0), the reordered one (v1), with R's
# fragments prefetched (v2), with a quarter of the cos/sin loads early (v3), both (v4); decode kernels after the shared unit-rows refactor (tests, memcheck, bench).
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
for v in 1 2 3 4; do
  FDCSIM_ROPE_VARIANT=$v step 60 "tests-v$v" $B/tests/ops/fdcsim_ops_gpu_tests -tc='*rope*'
done
for rep in 1 2 3; do
  for v in 0 1 2 3 4; do
    FDCSIM_ROPE_VARIANT=$v step 40 "prof-v$v-$rep" $B/fdcsim profile --gpus 1 --models llama-2-13b,llama-3-8b --tp 1 \
      --tokens 16,256,1024,4096 --filter rope_rotate --budget-s 30 --quiet --out "$R/prof-v$v-$rep"
  done
done
FDCSIM_ROPE_VARIANT=1 step 60 "ncusrc-v1" ncu --section SourceCounters --section WarpStateStats --section SpeedOfLight \
  --page source --print-source sass --csv --kernel-name regex:rotate_kernel --launch-skip 5 --launch-count 1 \
  --log-file "$R/ncusrc-v1.csv" $B/fdcsim profile --gpus 1 --models llama-2-13b --tp 1 --tokens 1024 \
  --filter rope_rotate/llama-2-13b/tp1/r96 --budget-s 20 --quiet --out "$R/ncusrc-prof-v1"
step 90 gpu-tests-decode $B/tests/kernels/fdcsim_gpu_tests -tc='*decode*'
step 60 memcheck-decode compute-sanitizer --tool memcheck $B/tests/kernels/fdcsim_gpu_tests -tc='decode with uniform*,decode with token*,decode over shared*'
step 80 decode-bench $B/bench/kernels/fdc_attention_bench \
  --benchmark_filter='BM_Decode/rank:(128|64|32|0)/balanced:1/lo_pct:0/' \
  --benchmark_out="$R/decode.json" --benchmark_out_format=json --benchmark_counters_tabular=true
log done
