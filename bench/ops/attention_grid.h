// The attention part of the profile grid (CPU): per-sequence context lengths of skewed batches,
// per-head rank tables, and the attention cases of one model. The plan and the CUDA runner both
// rebuild a case's inputs from its shape counters through these functions, so what is measured is
// exactly what the counters say.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kernels/attention/layout.h"

namespace fdc::profile {

// How a decode batch's context lengths spread around their mean (the mean is exact in all three).
enum class ContextSpread : int {
  kUniform = 0,      // every sequence at the mean (cv 0)
  kQuarterLong = 1,  // a quarter of the sequences at 2.5x the mean, the rest at 0.5x (cv ~0.87)
  kOneHalf = 2,      // one sequence holds half of the batch's tokens, the rest share the other half
};

// Context lengths (cached tokens attended per sequence) of `num_seqs` sequences with mean
// `ctx_mean` (num_seqs * ctx_mean tokens in all) spread as `spread`; every length >= 1.
std::vector<int> context_lengths(int num_seqs, int ctx_mean, ContextSpread spread);

struct LengthStats {
  double mean = 0, max = 0, cv = 0;  // cv = population standard deviation / mean
};
LengthStats length_stats(const std::vector<int>& lengths);

// Per-KV-head ranks: uniform `rank` (mixed = false) or the spread 32..128 of the attention
// benchmark (mixed = true, mean 80; rank ignored). With lo_share > 0 the unimportant class keeps
// that share of each rank (rounded down to a multiple of 8, at least 16, at most the rank); with
// lo_share = 0 the lo ranks equal the hi ranks (no token classes). The kv_classify cases keep a
// quarter (kQuarterLoRankShare), as the decode cases of raw profiles before 2026-12-05 did.
inline constexpr double kQuarterLoRankShare = 0.25;
std::vector<kernels::attn::HeadRanks> attention_head_ranks(int num_kv_heads, int rank, bool mixed, double lo_share);

// Per-head rank counters of a case measured on a rank table (costmodel/fit/rank_counters.h):
// `rank_table` = 1 and the four ranks of every KV head.
void set_rank_table_counters(std::map<std::string, double>& shape, const std::vector<kernels::attn::HeadRanks>& ranks);

// The per-KV-head ranks a case's counters describe: its rank table (`rank_table` = 1), the mixed
// table (`ranks_mixed` = 1) or uniform `rank_qk`, with lo ranks (`lo_rank_share` of each rank) when
// it has lo tokens (`lo_fraction` > 0). fdc::InputError naming the missing or invalid counter.
std::vector<kernels::attn::HeadRanks> case_head_ranks(const std::map<std::string, double>& shape);

// Tokens of the important class per shared page (HeadLayout::shared) of `block_size` tokens when
// a share `lo_fraction` of the cache is unimportant: the engine's rule (costmodel::important_slots
// of the important share 1 - lo_fraction).
int shared_hi_slots(double lo_fraction, int block_size);

// Token-class rank table of the kv_classify cases: the mixed table with lo ranks (as above) when
// head_dim >= 128, else a uniform rank of head_dim (a multiple of 8, within the kernels' 16..128)
// with its lo ranks.
std::vector<kernels::attn::HeadRanks> kv_classify_ranks(int num_kv_heads, int head_dim);

// Cache contents of a decode step over sequences with `ctx` cached tokens each (the context before
// the step): lo tokens = round(lo_fraction * ctx); hi tokens = the rest plus the step's new token,
// appended (hi) before attention runs, so every sequence attends ctx + 1 keys.
void decode_classes(const std::vector<int>& ctx, double lo_fraction, std::vector<int>* num_hi,
                    std::vector<int>* num_lo);

}  // namespace fdc::profile
