#!/usr/bin/env bash
# Runs `fdcsim layer-check` on this server's GPU for several policies, one JSON report each, over
# the batches the committed reports use (the layer-check defaults plus the decode points of the
# attention grid), and prints each report's summary line.
#
#   scripts/gpu/layer_checks.sh --config FILE --out DIR [--per-op] [--bin DIR] [--batches LIST]
#                               [--tag TAG] [--first-layers F,F,...] POLICY...
#
# e.g. scripts/gpu/layer_checks.sh --config configs/validate/llama-2-13b-h200.json --out results/layer \
#        --per-op none fdc-uniform-50 fdc-table-llama-2-13b fdc-table-hybrid-llama-2-13b
# Builds fdcsim with CUDA into build-validate, unless --bin names a folder with a built fdcsim.
# Writes DIR/layer-<TAG>-<policy>[-perop].json (TAG defaults to the GPU's short name, e.g. h200)
# and DIR/layer-<TAG>-<policy>[-perop].txt (the table). With --per-op every op is timed too
# (docs/cli.md: the totals come from forwards without the per-op events), and DIR/gpu-clocks-<TAG>.csv
# (SM clock, power and temperature every 100 ms; scripts/gpu/clock_log.sh). Re-predict a report on
# any machine with `fdcsim layer-check --measured REPORT`. --first-layers times each policy at
# several windows of its layers (`fdcsim layer-check --first-layer F`, policy layers F+2..F+5; a
# per-layer rank table keeps other ranks in other layers), one report each, named ...-firstF.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=""
out=""
per_op=0
bin=""
tag=""
batches="prefill:1x512,prefill:1x2048,prefill:4x512,decode:32x1024,decode:128x2048,decode:256x512,prefill:1x512+decode:32x1024,decode:8x2048,decode:32x512,decode:32x2048,decode:128x512,decode:256x2048"
policies=()
firsts=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --per-op) per_op=1; shift ;;
    --bin) bin="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --first-layers) firsts="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "layer_checks.sh: unknown option $1" >&2; exit 2 ;;
    *) policies+=("$1"); shift ;;
  esac
done
[[ -n "$config" && -n "$out" && ${#policies[@]} -gt 0 ]] ||
  { echo "layer_checks.sh: --config, --out and at least one POLICY are required (--help)" >&2; exit 2; }
[[ -f "$config" ]] || { echo "layer_checks.sh: --config $config: no such file" >&2; exit 2; }
[[ -z "$firsts" || "$firsts" =~ ^[0-9]+(,[0-9]+)*$ ]] ||
  { echo "layer_checks.sh: --first-layers $firsts: expected layer numbers joined by commas, e.g. 0,16,34" >&2; exit 2; }
if [[ -z "$bin" ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  cmake -S . -B build-validate -G Ninja -DCMAKE_BUILD_TYPE=Release -DFDCSIM_CUDA=ON -DFDCSIM_BUILD_TESTS=OFF >/dev/null
  ninja -C build-validate -j "$(nproc)" fdcsim
  bin=build-validate
fi
[[ -x "$bin/fdcsim" ]] || { echo "layer_checks.sh: $bin/fdcsim is not an executable fdcsim" >&2; exit 2; }
if [[ -z "$tag" ]]; then
  tag=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr '[:upper:]' '[:lower:]' |
        sed -e 's/^nvidia //' -e 's/ .*//' -e 's/[^a-z0-9]\+/-/g')
fi
mkdir -p "$out"
source scripts/gpu/clock_log.sh
start_clock_log "$out/gpu-clocks-$tag.csv"
flags=()
suffix=""
if ((per_op)); then flags+=(--per-op); suffix="-perop"; fi
code=0
IFS=, read -r -a first_list <<< "${firsts:-}"
for p in "${policies[@]}"; do
  for f in "${first_list[@]:-}"; do
    name="layer-${tag}-${p}${f:+-first$f}${suffix}"
    echo "layer_checks.sh: $p${f:+ (first layer $f)} -> $out/$name.json" >&2
    set +e
    "$bin/fdcsim" layer-check -c "$config" --gpus 1 --set "policy=$p" ${f:+--first-layer "$f"} "${flags[@]}" \
      --batches "$batches" --out "$out/$name.json" > "$out/$name.txt"
    rc=$?
    set -e
    if [[ $rc != 0 ]]; then
      echo "layer_checks.sh: $p failed (exit $rc); see $out/$name.txt" >&2
      code=$rc
      continue
    fi
    echo "$p${f:+ first $f}: $(grep -o 'within 5%: [0-9]* of [0-9]*' "$out/$name.txt")"
  done
done
exit $code
