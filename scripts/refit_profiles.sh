#!/usr/bin/env bash
# Regenerates the committed fitted profiles from the committed raw measurements:
#
#   scripts/refit_profiles.sh [FDCSIM [FIT_FLAG...]]      (default: build/fdcsim; a CPU-only build is enough)
#
# FIT_FLAGs (e.g. --decode-units, --prefill-makespan: terms that are off by default, docs/fit.md)
# go to the two fits of the raw folders, except --no-attn-in-layer, which leaves prefill attention
# uncalibrated in layers (by default it is calibrated on the per-op layer reports, `fit
# --attn-in-layer-from`, as the committed profiles are since 2026-12-04), and
# --elementwise-in-layer, which also calibrates the norms, RoPE, KV append, residual and activation
# on them (`fit --elementwise-in-layer-from`; off: the per-op events inflate these short kernels,
# docs/fit.md), and --no-decode-in-layer, which leaves the decode kernels without their extra time
# per call in a layer (`fit --decode-in-layer-from`, on since 2026-12-05 night); without any flag
# the committed profiles are reproduced.
# configs/profiles/h100.json and h200.json: `fdcsim fit` over the raw folders, then the GEMMs
# calibrated on layers measured per op (`fit --in-layer-from`, the layer-check reports of
# docs/results/layer-check-20261206 for both GPUs) and the iteration overhead on engine timelines
# (`fit --overhead-from`); a100-extrapolated.json derived
# from the H100 profile. Which folders and timelines, and why, is in docs/fit.md; the raw folders
# are described in configs/profiles/raw/README.md. Rebuild afterwards: the profiles are embedded.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/fdcsim}
fit_flags=()
attn_in_layer=1
elementwise_in_layer=0
decode_in_layer=1
for f in "${@:2}"; do
  case "$f" in
    --no-attn-in-layer) attn_in_layer=0 ;;
    --elementwise-in-layer) elementwise_in_layer=1 ;;
    --no-decode-in-layer) decode_in_layer=0 ;;
    --attn-in-layer) attn_in_layer=1 ;;  # the default; accepted for older command lines
    *) fit_flags+=("$f") ;;
  esac
done
[[ -x "$bin" ]] || { echo "refit_profiles.sh: $bin is not an executable fdcsim (pass the path)" >&2; exit 2; }
R=configs/profiles/raw
# A fixed scratch folder (git ignores results/), so that the profiles' `fitted_by` is the same on
# every machine.
tmp=results/refit-profiles
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

# H100: the 2026-11-28 re-profile, its KV append / classification cases and the first H100
# collectives, with attention (the wgmma prefill kernel, the tensor-core and shared-page decode
# kernels, the policies' rank tables) and the small ops twice measured again on 2026-12-05, and the
# GEMMs with the algorithms chosen by timing on 2026-12-06 (later folders replace the cases they
# hold); GEMMs and prefill attention in a layer from the per-op layer checks of 2026-12-06 (the four
# policies, prefill rows; both H100 units of that day); decode attention in a layer from those of
# 2026-12-05 (below); the token classification of 2026-12-06 afternoon (ranked by counting, commit
# 4c1f5ad); the norms and RoPE of 2026-12-06 (the kernels of commit 667f638; its peaks stand); the
# small ops (norms, residual add, SwiGLU, RoPE alone and fused, KV append, classification) of
# 2026-12-07 on a denser token grid, last and taken whole (`--whole-ops-from`: every earlier case of
# those ops dropped, so no earlier unit's launch floor stays between its points; its peaks not taken);
# RoPE alone and fused again, last and whole, with the fused kernel's blocks split by head (2026-12-07);
# prefill attention on a denser grid (sequences 1, 2, 4, 8 x new tokens 128..8192 x prefixes
# 0..4096, measured twice; 2026-12-07), last and whole;
# decode attention on shared pages at lo shares 0.4 / 0.53 / 0.6 / 0.7 (an even split of the page
# runs faster than the shares on either side; 2026-12-07), last;
# overheads calibrated on the bursts of Llama-2-13B of 2026-12-06 (the current engine: none, table,
# FDC 50% in the morning; none, table, FDC 50% later that morning; the token-class policy in the
# afternoon, with the classification as it runs now), and the 2026-11-28 Llama-2-7B sp=2 bursts (2 GPUs).
"$bin" fit "$R/h100-1gpu-20261128-k2" "$R/h100-1gpu-20261128-kv" "$R/h100-2gpu-20261128-comm/collectives" \
  "$R/h100-2gpu-20261128-comm/ulysses" "$R/h100-1gpu-20261205-attn" "$R/h100-1gpu-20261205-ops" \
  "$R/h100-1gpu-20261206-classify" "$R/h100-1gpu-20261206-gemm" "$R/h100-1gpu-20261206-ops" \
  "$R/h100-1gpu-20261207-dense-small-ops" --whole-ops-from "$R/h100-1gpu-20261207-dense-small-ops" \
  "$R/h100-1gpu-20261207-rope-split" --whole-ops-from "$R/h100-1gpu-20261207-rope-split" \
  "$R/h100-1gpu-20261207-attn-prefill-dense" --whole-ops-from "$R/h100-1gpu-20261207-attn-prefill-dense" \
  "$R/h100-1gpu-20261207-decode-lo" \
  ${fit_flags[@]+"${fit_flags[@]}"} --out "$tmp/h100.json"
L=docs/results/layer-check-20261205c
args=()
for f in docs/results/layer-check-20261206{,b}/layer-h100-*.json; do  # the GEMMs as the engine plans them now
  args+=(--in-layer-from "$f")
  if ((elementwise_in_layer)); then args+=(--elementwise-in-layer-from "$f"); fi
  # the table decode rows run no prefill
  if ((attn_in_layer)) && [[ $f != *-decode-perop.json ]]; then args+=(--attn-in-layer-from "$f"); fi
done
# Decode attention in a layer: the uniform policies at layers 2-5 (every layer the same), the
# per-head policies over windows spread across the model (their layers' extra time differs:
# layers 2-13 of the table policy about 14 us, layers 18-39 0-3 us; docs/fit.md).
if ((decode_in_layer)); then
  L6=docs/results/layer-check-20261205d
  for f in "$L"/layer-h100-none-perop-2.json "$L"/layer-h100-fdc-uniform-50-perop.json \
    "$L"/layer-h100-fdc-uniform-50-perop-2.json "$L"/layer-h100-fdc-table-hybrid-llama-2-13b-perop.json \
    "$L6"/layer-h100-fdc-table-llama-2-13b-first{0,8,16,24,34}-perop.json \
    "$L6"/layer-h100-fdc-table-hybrid-llama-2-13b-first{16,34}-perop.json; do
    args+=(--decode-in-layer-from "$f")
  done
fi
for f in "$R"/h100-1gpu-20261206-engine/*.jsonl.gz "$R"/h100-1gpu-20261206-engine2/*.jsonl.gz \
  "$R"/h100-1gpu-20261206-engine3/*.jsonl.gz "$R"/h100-2gpu-20261128-engine/*.jsonl.gz; do
  # the token-class burst of engine2 ran the classification before commit 4c1f5ad; engine3's runs it now
  [[ $f == */h100-1gpu-20261206-engine2/*hybrid* ]] && continue
  args+=(--overhead-from "$f")
done
# The H100's overhead lines take the prefill term (`--overhead-prefill`): its engine's prefill steps
# ran 5-8% faster than priced in the bursts and in the held-out Poisson runs alike (docs/fit.md).
"$bin" fit --from "$tmp/h100.json" "${args[@]}" --overhead-prefill --out configs/profiles/h100.json

# H200: the 2026-11-28 re-profile, its KV append / classification cases and the 2026-11-27
# collectives, with prefill attention measured again on 2026-12-04 with the wgmma kernel (last, the
# night's folder with its K/V copies by TMA, as the engine runs it), the decode kernels and small
# ops of 2026-12-05, and on 2026-12-06 the GEMMs with the algorithms chosen by timing and the norms
# and RoPE (alone and fused) with that day's kernels (a later folder replaces the cases it holds, the
# GEMM folders also the peaks); GEMMs and prefill attention in a layer from the per-op layer checks
# of 2026-12-06 (the four policies, prefill rows); overheads from the Llama-2-13B bursts of
# 2026-12-06 (none, FDC 50%; the current engine), the token-class burst of 2026-12-04 and the
# 2026-11-27 sp=2 engine runs (the 2026-11-28 sp=2 runs are held out to evaluate it). Last, the
# small ops on the dense token grid of 2026-12-07, three times each, taken whole (as the H100's),
# and prefill attention on the denser grid of the same call (416 of its cases, the budget's cut),
# which replace the earlier folders' cases of the same name and add the others.
"$bin" fit "$R/h200-1gpu-20261128-k2" "$R/h200-1gpu-20261128-kv" "$R/h200-2gpu-20261127-collectives" \
  "$R/h200-2gpu-20261127-ulysses" "$R/h200-4gpu-20261127-collectives" "$R/h200-1gpu-20261204-attn-prefill" \
  "$R/h200-1gpu-20261204-gemm" "$R/h200-1gpu-20261204-attn-decode-auto" "$R/h200-1gpu-20261204-attn-prefill-tma" \
  "$R/h200-1gpu-20261205-gemm-rows" "$R/h200-1gpu-20261205-attn-decode-shared" "$R/h200-1gpu-20261205-attn-decode-r96" \
  "$R/h200-1gpu-20261205-attn-decode-tables" "$R/h200-1gpu-20261205-small-ops-reps" "$R/h200-1gpu-20261206-gemm" \
  "$R/h200-1gpu-20261206-ops" \
  "$R/h200-1gpu-20261207-dense-small-ops" --whole-ops-from "$R/h200-1gpu-20261207-dense-small-ops" \
  "$R/h200-1gpu-20261207-attn-prefill-dense" ${fit_flags[@]+"${fit_flags[@]}"} --out "$tmp/h200.json"
L4=docs/results/layer-check-20261204d
L5=docs/results/layer-check-20261205
args=()
for f in docs/results/layer-check-20261206/layer-h200-*.json; do  # the GEMMs as the engine plans them now
  args+=(--in-layer-from "$f")
  if ((elementwise_in_layer)); then args+=(--elementwise-in-layer-from "$f"); fi
  if ((attn_in_layer)); then args+=(--attn-in-layer-from "$f"); fi
done
# Decode attention in a layer: the reports on the current decode kernels (the CUDA-core kernel of
# 2026-12-04 night; the tensor-core kernels of one width and token classes on shared pages of
# 2026-12-05).
if ((decode_in_layer)); then
  for f in "$L4"/layer-h200-none-perop.json "$L4"/layer-h200-fdc-uniform-50-perop.json \
    "$L5"/layer-h200-fdc-table-llama-2-13b-perop.json "$L5"/layer-h200-fdc-table-hybrid-llama-2-13b-perop.json \
    docs/results/layer-check-20261205b/layer-h200-none-perop-decode-rows.json; do
    args+=(--decode-in-layer-from "$f")
  done
fi
for f in "$R"/h200-1gpu-20261206-engine/*.jsonl.gz "$R"/h200-1gpu-20261204-engine2/*hybrid*.jsonl.gz; do
  args+=(--overhead-from "$f")
done
for f in "$R"/h200-2gpu-20261127-engine/*.jsonl.gz; do args+=(--overhead-from "$f"); done
"$bin" fit --from "$tmp/h200.json" "${args[@]}" --out configs/profiles/h200.json

"$bin" fit --derive --from configs/profiles/h100.json --hardware p4de --out configs/profiles/a100-extrapolated.json
echo "refit_profiles.sh: wrote configs/profiles/{h100,h200,a100-extrapolated}.json; rebuild to embed them"
