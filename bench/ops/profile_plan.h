// What `fdcsim profile` measures: the grid of benchmark cases the cost model needs, built from the
// model configs (configs/models, embedded) and the FDC ranks, each case with its shape counters,
// FLOPs and bytes (costmodel/ops.h) and an estimate of its run time, then cut to a time budget in
// priority order. Plain C++: planned and tested without a GPU; the CUDA runner executes it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "costmodel/attention_dims.h"
#include "costmodel/model_spec.h"

namespace fdc::profile {

struct GridOptions {
  std::vector<std::string> models;        // embedded names or JSON paths; empty = every embedded model
  std::vector<double> rank_fractions{1.0, 0.75, 0.5, 0.25};  // kept share of head_dim (1 = no FDC)
  std::vector<int64_t> tokens{1, 16, 64, 256, 1024, 4096, 16384};  // rows per GPU for projections
  std::vector<int> tp{1, 2, 4, 8};        // tensor-parallel degrees (GEMM shards; all-reduce GPU counts)
  int max_gpus = 1;                       // GPUs of the server usable for collectives (1..N)
  int rank_multiple = 16;                 // ranks round to this (as the FDC policies do)
  double budget_s = 600;                  // wall-clock budget of the whole profile
  double min_time_s = 0.05;               // Google Benchmark min time per case
  // Runs of every case (Google Benchmark repetitions; the single-GPU cases interleaved at random):
  // `fdcsim fit` takes each case's median and reports how far its repetitions spread.
  int repetitions = 1;
  // Texts of which a case name must contain one (none = all); a leading '/' also matches at the
  // name's start, so "/kv_" selects kv_append/... and kv_classify/... but not gemm/qkv_proj/....
  std::vector<std::string> filters;
  int64_t sweep_min_bytes = 1024;         // collective bandwidth sweeps: 1 KiB ..
  int64_t sweep_max_bytes = int64_t{1} << 30;  // .. 1 GiB, x2 steps
  // Attention (attention.json), tp 1, per model head shape (q heads, KV heads, head_dim, group).
  bool attention = true;
  std::vector<int> attn_prefill_seqs{1, 4, 8};            // sequences per prefill batch
  std::vector<int> attn_prefill_tokens{128, 512, 2048, 8192};  // new tokens per sequence
  std::vector<int> attn_prefill_prefix{0, 1024, 4096};    // cached tokens before them (chunked prefill)
  int64_t attn_prefill_max_tokens = 8192;                 // new tokens per batch at most
  // Up to the schedulers' usual max_num_seqs (256): serving runs decode steps that large.
  std::vector<int> attn_decode_batches{1, 8, 32, 128, 256};
  std::vector<int> attn_decode_contexts{512, 2048, 8192};  // mean cached tokens per sequence
  std::vector<int> attn_decode_spreads{0, 1, 2};           // ContextSpread (attention_grid.h); batches > 1
  // Token classes of decode: shares of the cached tokens in the lo class (0: no classes), each run
  // on shared pages as the engine lays them out (HeadLayout::shared, shared_hi_slots of every
  // block hi): 0.4 and 0.7 span the important shares 0.3-0.6 of the shipped token-class policies,
  // and both split a 16-token page unevenly (10 + 6, 5 + 11), as most of their layers do.
  std::vector<double> attn_lo_fractions{0.0, 0.4, 0.7};
  double attn_lo_rank_share = 0.5;  // share of each head's ranks a lo token keeps (as the shipped policies)
  int attn_block_size = 16;         // tokens per KV page (the engine's default block size)
  int64_t attn_max_kv_tokens = 524288;                    // decode batch x mean context at most
  // FDC policies (embedded names or JSON paths) whose per-head rank tables decode attention is also
  // measured at, over the decode grid above: one table per set of layers whose KV heads keep the
  // same ranks (in any order), on each model the policy fits; with token classes also on shared
  // pages at the lo fractions above. Empty: none.
  std::vector<std::string> attn_policies;
};

// One benchmark case. `kind` selects the runner; `shape` holds its sizes, which are also written as
// Google Benchmark counters (so fits read shapes from the JSON).
struct BenchCase {
  std::string name;   // unique Google Benchmark name, e.g. "gemm/qkv_proj/llama-2-13b/tp1/r64/m4096"
  std::string kind;   // gemm, rope_rotate, rope, norm, residual, mlp_act, peak_gemm, peak_copy,
                      // kv_append, kv_classify, attn_prefill, attn_decode, ulysses_a2a, all_to_all,
                      // all_reduce, all_gather
  std::string op;     // cost-model op (costmodel::op_name), or "peak"
  std::string model;  // "" for model-independent cases
  int gpus = 1;       // processes / GPUs the case needs
  int priority = 0;   // 0 first; the budget drops the highest numbers first
  std::map<std::string, double> shape;
  double flops = 0, bytes = 0, comm_bytes = 0;  // per run of the op, on one GPU
  double op_est_s = 0;  // estimated time of one run of the op (sets collectives' fixed iteration counts)
  double est_s = 0;     // estimated wall time of the case (setup + timed runs)
};

struct ProfilePlan {
  std::vector<BenchCase> run;      // in execution order
  std::vector<BenchCase> skipped;  // cut by the budget or unsupported, with reasons in notes
  std::vector<std::string> notes;  // what was skipped and why, one line each
  double budget_s = 0, est_s = 0;
  int repetitions = 1;  // GridOptions::repetitions: est_s counts every run
  std::vector<costmodel::ModelSpec> models;
  nlohmann::json to_json() const;
};

// Loads a model by embedded name or JSON path (fdc::InputError naming it when unknown or invalid).
costmodel::ModelSpec load_model(const std::string& name_or_path);
// A rank table of a policy's layers for a model: the per-KV-head ranks of its first layer with
// those ranks, and which layers share them (in any head order).
struct PolicyTable {
  std::string policy;  // the policy's name
  std::vector<int> layers;
  std::vector<costmodel::KvHeadDims> heads;
  bool token_classes() const;
};
// The distinct rank tables of the policy `name_or_path` (embedded name or JSON path) on `model`
// with KV pages of `block_size` tokens. fdc::InputError when the policy is unknown, invalid or does
// not fit the model (the message says why).
std::vector<PolicyTable> policy_tables(const std::string& name_or_path, const costmodel::ModelSpec& model,
                                       int block_size);

// FDC rank kept for a fraction of head_dim: rounded to rank_multiple, within [rank_multiple, d].
int rank_for(double fraction, int head_dim, int rank_multiple);

ProfilePlan make_profile_plan(const GridOptions& o);

// Attention cases run in their own worker and go to attention.json.
inline bool is_attention_case(const BenchCase& c) { return c.kind == "attn_prefill" || c.kind == "attn_decode"; }

}  // namespace fdc::profile
