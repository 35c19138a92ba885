# Sourced by the device scripts: `start_clock_log FILE` logs every GPU's SM clock, power draw and
# temperature to FILE (CSV, nvidia-smi's own timestamps, every 100 ms) until the calling script
# exits, so a run's times can be read against the clocks the GPU held (sustained GEMMs may run at
# lower clocks than the engine's alternating prefill and decode steps). Without nvidia-smi it
# says so and logs nothing.
start_clock_log() {
  local file=$1
  if ! command -v nvidia-smi >/dev/null; then
    echo "clock_log: nvidia-smi not found; no clock log" >&2
    return 0
  fi
  nvidia-smi --query-gpu=timestamp,index,clocks.sm,power.draw,temperature.gpu --format=csv -lms 100 \
    > "$file" 2>&1 &
  CLOCK_LOG_PID=$!
  trap 'kill "$CLOCK_LOG_PID" 2>/dev/null || true' EXIT
}
