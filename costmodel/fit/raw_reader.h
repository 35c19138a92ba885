// Reads raw `fdcsim profile` folders (Google Benchmark JSON + provenance.json, docs/profile.md)
// into samples grouped by op. Cases skipped or failed at run time (error_occurred) are counted and
// left out; a malformed or partial entry is an InputError naming the file and the benchmark.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/decode_units.h"

namespace fdc::fit {

// Attention cases (attn_prefill/..., attn_decode/...): the batch and the FDC shape of the kernel.
// Keys of a sequence = its cached context + its new tokens (tokens / num_seqs per sequence).
struct AttnFeatures {
  double num_seqs = 0, tokens = 0;
  double ctx_mean = 0, ctx_max = 0, ctx_cv = 0;  // cached context per sequence
  double keys_mean = 0, keys_max = 0;            // context + new tokens per sequence
  double balanced = 1;                           // decode: the balanced work split (1) or one CTA per sequence (0)
  double rank_qk = 0, rank_v = 0, rank_qk_lo = 0, rank_v_lo = 0, lo_fraction = 0;
  // Token classes: the share of each head's ranks a lo token keeps (counter `lo_rank_share`; raw
  // files before 2026-12-05 wrote none and kept a quarter), and the tokens of each class per page
  // (counters `slots_hi`, `slots_lo`: shared pages as the engine lays them out; 0 = a pool per class).
  double lo_rank_share = 0.25;
  double slots_hi = 0, slots_lo = 0;
  double group = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  // Prefill: the largest rank of the launch and the kernel's padded tile work from the shape
  // (costmodel/prefill_tiles.h); 0 for decode.
  double max_rank = 0;
  double padded_flops = 0, block_elems = 0, longest_block_flops = 0;
  // Prefill: the SMs of the measured GPU (provenance.json gpus[0].sms), which the blocks' makespan
  // needs (costmodel/prefill_makespan.h); 0 when the folder does not say.
  double num_sms = 0;
  // Decode: K/V bytes as the kernel stages them, every class's rows at decode_stage_width
  // (costmodel/attention_dims.h) of its larger rank; 0 for prefill.
  double stage_bytes = 0;
  // Decode: the balanced plan's units estimated from the case's own sequences, mean and longest
  // keys, lo share and ranks (costmodel/decode_units.h, as the simulator estimates them), or the
  // naive plan's one unit per (sequence, KV head, class) when unbalanced; 0 for prefill; -1 when
  // the GPU's SM count is unknown (RawProfile::decode_plan). And the benchmark's exact count
  // (counter `units`), -1 when the raw file has none.
  double units = 0;
  double units_exact = -1;
  // A case measured on a rank table (counter `rank_table`, rank_counters.h): every KV head's
  // {r_qk, r_v, r_qk_lo, r_v_lo}; empty for uniform ranks and the mixed table.
  std::vector<std::array<int, 4>> head_ranks;
};

// Per-KV-head ranks {r_qk, r_v, r_qk_lo, r_v_lo} of an attention case: its rank table
// (AttnFeatures::head_ranks), its counters' uniform ranks, or (mixed) the per-head table of the
// attention benchmarks (bench/ops/attention_grid.h
// attention_head_ranks; tests/ops check that the two agree), with lo ranks (lo_rank_share of each
// rank) when lo_fraction > 0.
std::vector<std::array<int, 4>> attention_case_ranks(const AttnFeatures& a, bool mixed);

// One measured case. `group` is the fitted op: "gemm/<op>/<library>", "rope_rotate/{rope_only,rotate}",
// "norm/<variant>", "residual", "mlp_act/<variant>", "kv_append", "kv_classify", "<collective>/g<gpus>",
// "ulysses/{pack,unpack_qkv,unpack_out,a2a_qkv,a2a_out}/sp<gpus>", "attn_prefill", "attn_decode",
// "attn_decode/tensor_cores" (cases the tensor-core kernel ran), "attn_decode/shared_pages" (token
// classes on shared pages), "iteration_overhead"; from Vidur CSVs (vidur_reader.h) also "gemm/<op>/vidur",
// "send_recv/...".
struct Sample {
  std::string group;
  std::string where;  // "<file>: <benchmark name>"
  double time_us = 0;
  double bytes = 0;  // bytes moved (ops.h formulas) or the per-GPU buffer size (collectives)
  double flops = 0;
  double m = 0, n = 0, k = 0;  // GEMMs only
  std::optional<AttnFeatures> attn;
  // Raw folders: the benchmark's case name, its `name` without Google Benchmark's run options
  // ("/iterations:...", "/min_time:...", "/manual_time"); a later input folder's case of the same
  // name replaces it. Empty for Vidur CSVs.
  std::string case_name;
  // A case run several times (`fdcsim profile --repetitions N`: Google Benchmark's repetitions,
  // entries with `repetitions` > 1): time_us is the median of its repetitions, repeat_spread their
  // (max - min) / median; 1 and 0 for a case run once.
  int repeats = 1;
  double repeat_spread = 0;
};

struct RawSource {
  std::string folder;
  Json provenance;  // provenance.json as written by `fdcsim profile`
  // Cases measured and kept (peak cases included), failed or skipped at run time (error_occurred),
  // and measured but replaced by the same case of a later input folder (read_raw_profiles);
  // used + replaced = the folder's measured cases.
  int used = 0, excluded = 0, replaced = 0;
  bool whole_ops = false;   // given with `fit --whole-ops-from`: its ops taken from it alone
  int peaks_not_taken = 0;  // its peak cases, when whole_ops (the earlier folders' peaks stand)
};

struct RawProfile {
  std::vector<RawSource> sources;
  std::vector<Sample> samples;
  double peak_tflops = 0;  // peak/gemm_bf16 (0 when absent)
  double peak_gbps = 0;    // peak/device_copy (0 when absent)
  // Where the peaks came from; it names the folder(s) when more than one input folder had a peak
  // case (the last one's stand) or the two peaks came from different folders.
  std::string peaks_source = "peak/gemm_bf16 and peak/device_copy";
  std::string gpu_name;
  // The decode kernel's plan constants on the measured GPU (its SM count from provenance.json
  // gpus[0].sms): decode cases need them to estimate their plan's units, prefill cases the SM count
  // for their blocks' makespan.
  std::optional<costmodel::DecodePlanConstants> decode_plan;
  std::string decode_plan_source;  // the provenance.json it came from
  // Whether the tensor-core decode cases being read ran the kernels of one width (48, 96) where a
  // launch's units allow (kernels::attn::decode_mma_one_width): those kernels exist since
  // kMmaOneWidthSince; a raw folder measured before it (provenance.json `date_utc`) ran the general
  // kernel at every width. Cases with the counter `mma_width` say it themselves.
  bool mma_one_width = true;
};

// The first raw profiles measured with the tensor-core decode kernels of one width.
inline constexpr const char* kMmaOneWidthSince = "2026-12-05T03:00:00Z";

// Reads one raw benchmark file (ops.json, comm-<g>gpu.json or attention.json) and appends its samples.
// Decode attention cases estimate their plan's units with out.decode_plan (units -1 without it).
void read_raw_benchmark_file(const std::string& path, RawProfile& out, RawSource& source);
// Reads every input: raw folders (provenance.json + ops.json / comm-*gpu.json / attention.json) and
// Vidur profiling CSVs (a file, or a folder of them without provenance.json); all of one GPU model.
// `gpu_name` names the GPU when no input says which (Vidur CSVs carry no GPU name).
// A case measured in more than one raw folder (the same case name, Sample::case_name; for the peaks
// peak/gemm_bf16 and peak/device_copy whatever their size) is taken from the folder given last: the
// earlier folders' samples of it are dropped and counted in their RawSource::replaced. A case that
// failed or was skipped (error_occurred) replaces nothing. The same name twice within one folder
// keeps both.
// `whole_op_inputs` (each also one of `inputs`, a raw folder): folders whose ops are taken from them
// alone: every earlier folder's case of an op such a folder measured is dropped (counted as
// replaced), not only the same cases, so that the op's cases all come from one run (a
// re-measurement on another unit or day, whose launch floor differs); its peak cases are not taken
// (the peaks scale the GEMM laws of the folders that measured the GEMMs).
RawProfile read_raw_profiles(const std::vector<std::string>& inputs, const std::string& gpu_name = "",
                             const std::vector<std::string>& whole_op_inputs = {});

}  // namespace fdc::fit
