#!/usr/bin/env bash
# Device call: fused RoPE + rotation shape variants (1 tile x 8 warps, 2 tiles x 4 warps, 2 tiles x 8 warps):
# ops GPU tests per variant, profile rope_rotate three times per variant, ncu of r96 @ 1024 tokens.
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
for v in 0 1 2; do
  FDCSIM_ROPE_VARIANT=$v step 60 "tests-v$v" $B/tests/ops/fdcsim_ops_gpu_tests -tc='*rope*'
done
for rep in 1 2 3; do
  for v in 0 1 2; do
    FDCSIM_ROPE_VARIANT=$v step 40 "prof-v$v-$rep" $B/fdcsim profile --gpus 1 --models llama-2-13b,llama-3-8b --tp 1 \
      --tokens 16,256,1024,4096 --filter rope_rotate --budget-s 30 --quiet --out "$R/prof-v$v-$rep"
  done
done
for v in 0 1; do
  FDCSIM_ROPE_VARIANT=$v step 60 "ncu-v$v" ncu --set full --kernel-name regex:rotate_kernel --launch-skip 5 --launch-count 1 \
    --page details $B/fdcsim profile --gpus 1 --models llama-2-13b --tp 1 --tokens 1024 \
    --filter rope_rotate/llama-2-13b/tp1/r96 --budget-s 20 --quiet --out "$R/ncu-prof-v$v"
  FDCSIM_ROPE_VARIANT=$v step 60 "ncusrc-v$v" ncu --section SourceCounters --page source --print-source sass --csv \
    --kernel-name regex:rotate_kernel --launch-skip 5 --launch-count 1 --log-file "$R/ncusrc-v$v.csv" \
    $B/fdcsim profile --gpus 1 --models llama-2-13b --tp 1 --tokens 1024 \
    --filter rope_rotate/llama-2-13b/tp1/r96 --budget-s 20 --quiet --out "$R/ncusrc-prof-v$v"
done
log done
