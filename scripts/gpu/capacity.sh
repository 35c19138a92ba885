#!/usr/bin/env bash
# Measures the engine's capacity per policy on this server's GPUs, then validates at fractions of it.
#
#   scripts/gpu/capacity.sh --config FILE --out DIR [--gpus N] [--burst N] [--requests N]
#                           [--fractions 0.5,0.9] [--bin DIR] POLICY...
#
# For each policy:
#  1. a burst run: `fdcsim validate --config FILE` with every one of N requests (default 200)
#     arriving at t = 0; the capacity is the run's sustained throughput (requests completed until
#     the last request was first scheduled, per second: docs/validate.md), measured on the GPUs and
#     predicted by the simulator from the same config;
#  2. one Poisson run per fraction of the *measured* capacity (default 50% and 90%), each with
#     --requests requests (default: the config's), through scripts/gpu/validate.sh.
# Outputs: DIR/<policy>_burst/ and DIR/<policy>_burst.txt (the burst run), DIR/<policy>_r<rate>/ and
# .txt (the Poisson runs), and DIR/capacity.csv (appended to, a row per policy: burst requests, measured and predicted
# capacity, error, the rates run), and DIR/gpu-clocks.csv (SM clock, power and temperature every
# 100 ms while the script runs; scripts/gpu/clock_log.sh). Builds fdcsim into build-validate unless
# --bin names a folder with a built fdcsim. Needs python3 (reads validation.json).
set -euo pipefail
cd "$(dirname "$0")/../.."
config=""
out=""
gpus=1
burst=200
requests=""
fractions="0.5,0.9"
bin=""
policies=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --gpus) gpus="$2"; shift 2 ;;
    --burst) burst="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --fractions) fractions="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "capacity.sh: unknown option $1" >&2; exit 2 ;;
    *) policies+=("$1"); shift ;;
  esac
done
[[ -n "$config" && -n "$out" && ${#policies[@]} -gt 0 ]] ||
  { echo "capacity.sh: --config, --out and at least one POLICY are required (see --help)" >&2; exit 2; }
[[ "$burst" =~ ^[1-9][0-9]*$ ]] || { echo "capacity.sh: --burst expects a positive integer, found '$burst'" >&2; exit 2; }
command -v python3 >/dev/null || { echo "capacity.sh: python3 is needed to read validation.json" >&2; exit 2; }
if [[ -z "$bin" ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  cmake -S . -B build-validate -G Ninja -DCMAKE_BUILD_TYPE=Release -DFDCSIM_CUDA=ON -DFDCSIM_BUILD_TESTS=OFF >/dev/null
  ninja -C build-validate -j "$(nproc)" fdcsim
  bin=build-validate
fi
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > "$out/nvidia-smi.csv"
source scripts/gpu/clock_log.sh
start_clock_log "$out/gpu-clocks.csv"
# Appended to, so that runs into the same folder (one policy at a time) keep every row.
[[ -s "$out/capacity.csv" ]] ||
  echo "policy,burst_requests,capacity_measured_rps,capacity_predicted_rps,error,rates_run" > "$out/capacity.csv"
for policy in "${policies[@]}"; do
  name="${policy}_burst"
  args=(validate --config "$config" --gpus "$gpus" --set "policy=$policy" --set 'workload.arrival={"process":"burst"}'
        --set "workload.num_requests=$burst" --out "$out/$name")
  echo "== $name: $bin/fdcsim ${args[*]}" | tee "$out/$name.txt"
  "$bin/fdcsim" "${args[@]}" 2>&1 | tr '\r' '\n' | grep -v "requests completed" | tee -a "$out/$name.txt"
  read -r measured predicted error rates < <(python3 - "$out/$name/validation.json" "$fractions" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
v = j["sustained_throughput_requests_per_s"]
m, p = v["measured"], v["predicted"]
if m <= 0:
    sys.exit("capacity.sh: %s: the burst run has no sustained throughput (every request was scheduled at once: "
             "use a larger --burst)" % sys.argv[1])
# A server that holds the whole burst at once schedules the last request within the first
# prefills: the window then holds almost no decode and its rate is no capacity (`loaded`: the
# sustained throughput is at least half the run's, validate/compare.h).
if not v["loaded"]:
    sys.exit("capacity.sh: %s: the sustained throughput %.3f req/s is under half the run's throughput %.3f "
             "req/s: the server scheduled the whole burst at once, so the burst does not load it; use a larger "
             "--burst" % (sys.argv[1], m, j["throughput_requests_per_s"]["measured"]))
rates = ["%.3f" % (float(f) * m) for f in sys.argv[2].split(",")]
print("%.4f %.4f %.4f %s" % (m, p, p / m - 1, ";".join(rates)))
EOF
  )
  echo "$policy,$burst,$measured,$predicted,$error,$rates" >> "$out/capacity.csv"
  echo "== $policy: capacity measured $measured req/s, predicted $predicted req/s; runs at ${rates//;/, } req/s"
  runs=()
  for r in ${rates//;/ }; do runs+=("$policy@$r"); done
  vargs=(--config "$config" --out "$out" --gpus "$gpus" --bin "$bin")
  [[ -n "$requests" ]] && vargs+=(--requests "$requests")
  scripts/gpu/validate.sh "${vargs[@]}" "${runs[@]}"
done
cat "$out/capacity.csv"
