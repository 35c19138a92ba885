#!/usr/bin/env bash
# ctest `mpi_searches`: max-rate, min-servers and sweep under an MPI launch of 3 ranks print and write
# byte for byte what one process does (exit codes too), and failures every rank shares are reported
# once with their exit code.
#   usage: mpi_searches.sh FDCSIM MPIEXEC NP_FLAG
set -uo pipefail
fdcsim=$1 mpiexec=$2 np=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() { echo "mpi_searches: FAILED: $*" >&2; failed=1; }

# same_as_one_process NAME EXPECTED_EXIT ARGS...: one process and 3 ranks, stdout and --json-out compared.
same_as_one_process() {
  local name=$1 want=$2; shift 2
  "$fdcsim" "$@" --jobs 1 --json-out "$work/$name.one.json" >"$work/$name.one.txt" 2>"$work/$name.one.err"
  local rc_one=$?
  "$mpiexec" "$np" 3 "$fdcsim" "$@" --jobs 1 --json-out "$work/$name.mpi.json" >"$work/$name.mpi.txt" 2>"$work/$name.mpi.err"
  local rc_mpi=$?
  [ "$rc_one" = "$want" ] || fail "$name: one process exited $rc_one, expected $want: $(tail -3 "$work/$name.one.err")"
  [ "$rc_mpi" = "$want" ] || fail "$name: 3 ranks exited $rc_mpi, expected $want: $(tail -3 "$work/$name.mpi.err")"
  cmp -s "$work/$name.one.txt" "$work/$name.mpi.txt" || fail "$name: stdout differs: $(diff "$work/$name.one.txt" "$work/$name.mpi.txt" | head -5)"
  cmp -s "$work/$name.one.json" "$work/$name.mpi.json" || fail "$name: --json-out differs"
  grep -q '"searches"\|"runs"' "$work/$name.mpi.json" || fail "$name: no searches or runs in the JSON"
}

# shared_failure NAME EXPECTED_EXIT PATTERN ARGS...: 3 ranks exit with the code, the message once.
shared_failure() {
  local name=$1 want=$2 pattern=$3; shift 3
  "$mpiexec" "$np" 3 "$fdcsim" "$@" >"$work/$name.txt" 2>"$work/$name.err"
  local rc=$?
  [ "$rc" = "$want" ] || fail "$name: exited $rc, expected $want: $(tail -5 "$work/$name.err")"
  local n
  n=$(grep -c -- "$pattern" "$work/$name.err")
  [ "$n" = 1 ] || fail "$name: the message \"$pattern\" printed $n times, expected once: $(head -5 "$work/$name.err")"
  [ ! -s "$work/$name.txt" ] || fail "$name: something on stdout"
}

small=(--set workload.num_requests=300)
same_as_one_process max_rate 0 max-rate "${small[@]}" --compare-policy none,fdc-uniform-50 --band 5
same_as_one_process min_servers 0 min-servers --set workload.num_requests=600 --set workload.arrival.rate_per_s=30 \
  --compare-policy none,fdc-uniform-50 --vary hardware=p4de,p5
same_as_one_process none_meets 1 min-servers "${small[@]}" --set slo.ttft_ms=1 --max-servers 2 \
  --compare-policy none,fdc-uniform-50,fdc-hybrid

same_as_one_process sweep 0 sweep "${small[@]}" --vary workload.arrival.rate_per_s=4,12 \
  --compare-policy none,fdc-uniform-50,fdc-hybrid --band 5 --csv-out "$work/sweep.csv"

shared_failure bad_value 2 "fdcsim: error: " max-rate --set scheduler.max_num_seqs='"many"'
shared_failure bad_option 2 "The following argument was not expected" min-servers --no-such-option
shared_failure unwritable 4 "cannot open for writing" min-servers "${small[@]}" --json-out "$work/no/such/folder/x.json"
shared_failure one_process_only 2 "run simulate as one process" simulate --quiet --out "$work/sim"

exit $failed
