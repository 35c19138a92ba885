#include "bench/ops/attention_grid.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "costmodel/attention_dims.h"
#include "costmodel/fit/rank_counters.h"

namespace fdc::profile {
namespace {

// Spreads `tokens` over `n` sequences as evenly as integers allow.
void fill_even(std::vector<int>& out, int begin, int n, int64_t tokens) {
  for (int i = 0; i < n; ++i)
    out[static_cast<size_t>(begin + i)] = static_cast<int>(tokens / n + (i < tokens % n ? 1 : 0));
}

}  // namespace

std::vector<int> context_lengths(int num_seqs, int ctx_mean, ContextSpread spread) {
  FDC_INPUT_CHECK(num_seqs >= 1 && ctx_mean >= 1,
                  "attention grid: num_seqs " << num_seqs << " and ctx_mean " << ctx_mean << " must be positive");
  std::vector<int> len(static_cast<size_t>(num_seqs), ctx_mean);
  const int64_t total = int64_t{num_seqs} * ctx_mean;
  if (num_seqs == 1 || spread == ContextSpread::kUniform) return len;
  if (spread == ContextSpread::kQuarterLong) {
    const int n_long = std::max(1, num_seqs / 4);
    const int64_t long_len = std::llround(2.5 * ctx_mean);
    const int64_t rest = total - n_long * long_len;
    if (rest < num_seqs - n_long) return len;  // too few sequences to skew: stays uniform
    fill_even(len, 0, n_long, n_long * long_len);
    fill_even(len, n_long, num_seqs - n_long, rest);
    return len;
  }
  const int64_t big = total / 2;
  if (total - big < num_seqs - 1) return len;
  len[0] = static_cast<int>(big);
  fill_even(len, 1, num_seqs - 1, total - big);
  return len;
}

LengthStats length_stats(const std::vector<int>& lengths) {
  LengthStats s;
  if (lengths.empty()) return s;
  double sum = 0, sq = 0;
  for (int x : lengths) {
    sum += x;
    s.max = std::max(s.max, double(x));
  }
  s.mean = sum / double(lengths.size());
  for (int x : lengths) sq += (x - s.mean) * (x - s.mean);
  s.cv = s.mean > 0 ? std::sqrt(sq / double(lengths.size())) / s.mean : 0;
  return s;
}

std::vector<kernels::attn::HeadRanks> attention_head_ranks(int num_kv_heads, int rank, bool mixed, double lo_share) {
  FDC_CHECK(lo_share >= 0 && lo_share <= 1, "lo rank share " << lo_share << " is outside [0, 1]");
  std::vector<kernels::attn::HeadRanks> r;
  for (int h = 0; h < num_kv_heads; ++h) {
    const int rk = mixed ? 32 + 16 * ((h * 5) % 7) : rank;
    const int rv = mixed ? 32 + 16 * ((h * 3 + 2) % 7) : rank;
    auto low = [&](int x) { return lo_share > 0 ? costmodel::lo_class_rank(x, lo_share) : x; };
    r.push_back({rk, rv, low(rk), low(rv)});
  }
  return r;
}

void set_rank_table_counters(std::map<std::string, double>& shape, const std::vector<kernels::attn::HeadRanks>& ranks) {
  shape[std::string(fit::kRankTableCounter)] = 1;
  for (size_t h = 0; h < ranks.size(); ++h) {
    const int r[4] = {ranks[h].rk, ranks[h].rv, ranks[h].rk_lo, ranks[h].rv_lo};
    for (int f = 0; f < 4; ++f) shape[fit::head_rank_counter(static_cast<int>(h), f)] = r[f];
  }
}

std::vector<kernels::attn::HeadRanks> case_head_ranks(const std::map<std::string, double>& shape) {
  auto get = [&](const std::string& key) {
    const auto it = shape.find(key);
    FDC_INPUT_CHECK(it != shape.end(), "attention case: counter '" << key << "' is missing");
    return it->second;
  };
  auto whole = [&](const std::string& key, double lo, double hi) {
    const double v = get(key);
    FDC_INPUT_CHECK(v == std::round(v) && v >= lo && v <= hi, "attention case: counter '"
                                                                  << key << "' must be a whole number in [" << lo
                                                                  << ", " << hi << "], found " << v);
    return static_cast<int>(v);
  };
  const int kv_heads = whole("kv_heads", 1, 1 << 16);
  const auto table = shape.find(std::string(fit::kRankTableCounter));
  if (table != shape.end() && table->second > 0) {
    std::vector<kernels::attn::HeadRanks> r;
    for (int h = 0; h < kv_heads; ++h) {
      int v[4];
      for (int f = 0; f < 4; ++f) v[f] = whole(fit::head_rank_counter(h, f), 1, kernels::attn::kMaxRank);
      r.push_back({v[0], v[1], v[2], v[3]});
    }
    return r;
  }
  const bool mixed = shape.count("ranks_mixed") && get("ranks_mixed") > 0;
  const double lo_share = get("lo_fraction") > 0 ? get("lo_rank_share") : 0.0;
  return attention_head_ranks(kv_heads, static_cast<int>(std::lround(get("rank_qk"))), mixed, lo_share);
}

int shared_hi_slots(double lo_fraction, int block_size) {
  return costmodel::important_slots(1.0 - lo_fraction, block_size);
}

std::vector<kernels::attn::HeadRanks> kv_classify_ranks(int num_kv_heads, int head_dim) {
  namespace attn = kernels::attn;
  if (head_dim >= attn::kMaxRank) return attention_head_ranks(num_kv_heads, 0, true, kQuarterLoRankShare);
  const int rank = std::clamp(head_dim / attn::kRankGranule * attn::kRankGranule, attn::kMinRank, attn::kMaxRank);
  return attention_head_ranks(num_kv_heads, rank, false, kQuarterLoRankShare);
}

void decode_classes(const std::vector<int>& ctx, double lo_fraction, std::vector<int>* num_hi,
                    std::vector<int>* num_lo) {
  num_hi->clear();
  num_lo->clear();
  for (int c : ctx) {
    const int lo = static_cast<int>(std::llround(lo_fraction * c));
    num_lo->push_back(lo);
    num_hi->push_back(c - lo + 1);
  }
}

}  // namespace fdc::profile
