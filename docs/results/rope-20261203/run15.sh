#!/usr/bin/env bash
# Device call: the committed build — GPU suites (ops, kernels, engine), memcheck of the fused RoPE
# kernel, and its timing beside the build measured earlier (fdcsim_v0), alternating.
set -u
S=$(date +%s)
DEADLINE=$((S + ${BUDGET:-300}))
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
tar xJf devcarry/bins.tar.xz && xz -d -k devcarry/alt/fdcsim_v0.xz && chmod +x devcarry/alt/fdcsim_v0
export LD_LIBRARY_PATH=$PWD/devcarry/lib:${LD_LIBRARY_PATH:-}
B=build-cuda
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv > "$R/device.txt"
date -u >> "$R/device.txt"
step 120 ops-gpu-tests $B/tests/ops/fdcsim_ops_gpu_tests
step 120 gpu-tests $B/tests/kernels/fdcsim_gpu_tests
step 90 engine-gpu-tests $B/tests/validate/fdcsim_engine_gpu_tests
step 90 memcheck-rope compute-sanitizer --tool memcheck $B/tests/ops/fdcsim_ops_gpu_tests -tc='*rope*'
for rep in 1 2; do
  for v in v0 final; do
    bin=$B/fdcsim; [[ $v == v0 ]] && bin=devcarry/alt/fdcsim_v0
    step 40 "prof-$v-$rep" $bin profile --gpus 1 --models llama-2-13b,llama-3-8b --tp 1 \
      --tokens 16,256,1024,4096 --filter rope_rotate --budget-s 30 --quiet --out "$R/prof-$v-$rep"
  done
done
log done
