#!/usr/bin/env bash
# Runs `fdcsim validate --config` (the engine on this server's GPUs, then the simulator's
# prediction of the same run) for several policies and request rates, one output folder each.
#
#   scripts/gpu/validate.sh --config FILE --out DIR [--gpus N] [--requests N] [--bin DIR] POLICY@RATE...
#
# e.g. scripts/gpu/validate.sh --config configs/validate/llama-2-13b-h100.json --out results/val \
#        none@1.15 none@2.07 fdc-uniform-50@2.07
# Builds fdcsim with CUDA into build-validate, unless --bin names a folder with a built fdcsim.
# Each run writes DIR/<policy>_r<rate>/ (measured_timeline.jsonl, predicted_timeline.jsonl,
# validation.json, iterations.csv, iteration_times.svg) and its report to DIR/<policy>_r<rate>.txt;
# with --also-set KEY=VALUE the measured timeline is compared once more with that prediction
# config (e.g. costmodel.kind=profile) into DIR/<policy>_r<rate>/alt/.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=""
out=""
gpus=1
requests=""
bin=""
also=()
runs=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --gpus) gpus="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --also-set) also+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *@*) runs+=("$1"); shift ;;
    *) echo "validate.sh: unknown argument $1 (expected options or POLICY@RATE)" >&2; exit 2 ;;
  esac
done
[[ -n "$config" && -n "$out" && ${#runs[@]} -gt 0 ]] || { echo "validate.sh: --config, --out and at least one POLICY@RATE are required" >&2; exit 2; }
if [[ -z "$bin" ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  cmake -S . -B build-validate -G Ninja -DCMAKE_BUILD_TYPE=Release -DFDCSIM_CUDA=ON -DFDCSIM_BUILD_TESTS=OFF >/dev/null
  ninja -C build-validate -j "$(nproc)" fdcsim
  bin=build-validate
fi
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > "$out/nvidia-smi.csv"
for run in "${runs[@]}"; do
  policy="${run%@*}"
  rate="${run#*@}"
  name="${policy}_r${rate}"
  args=(validate --config "$config" --gpus "$gpus" --set "policy=$policy" --set "workload.arrival.rate_per_s=$rate"
        --out "$out/$name")
  [[ -n "$requests" ]] && args+=(--set "workload.num_requests=$requests")
  echo "== $name: $bin/fdcsim ${args[*]}" | tee "$out/$name.txt"
  "$bin/fdcsim" "${args[@]}" 2>&1 | tr '\r' '\n' | grep -v "requests completed" | tee -a "$out/$name.txt"
  if [[ ${#also[@]} -gt 0 ]]; then
    echo "== $name, prediction with ${also[*]}" | tee -a "$out/$name.txt"
    "$bin/fdcsim" validate --measured "$out/$name/measured_timeline.jsonl" "${also[@]}" --out "$out/$name/alt" 2>&1 |
      tee -a "$out/$name.txt"
  fi
done
