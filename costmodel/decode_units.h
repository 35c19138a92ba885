// How many work units the balanced decode planner (kernels/attention/plan.cpp plan_decode_balanced)
// cuts a batch into, estimated from what both the fit and the simulator know of a batch: its number
// of decode sequences, their mean and longest keys, the share of keys in the lo token class, and the
// per-token bytes of every KV head's classes. Every unit pays a fixed cost (q read, pipeline fill,
// merge, partial write, its share of the combine), which the decode law prices per unit.
//
// The planner's arithmetic is mirrored exactly: target = max(min_unit_bytes, ceil(total / slots))
// with slots = num_sms x ctas_per_sm x waves; per (sequence, KV head, class) of len tokens and
// bytes = len x bytes per token: chunks = max(1, ceil(bytes / target)), chunk = ceil(len / chunks)
// rounded up to tile_tokens, units = ceil(len / chunk). The sequences are the one assumption: one
// at the longest keys and the other n - 1 sharing the rest as evenly as integers allow (exact when
// all are equal, or when one sequence is long and the rest equal). A sequence of k keys keeps
// round(lo_share x k) of them in the lo class and the rest hi.
// Header-only: the fit (fdc_fit) and the cost model both use it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace fdc::costmodel {

// The balanced planner's options that set the unit count (kernels/attention/plan.h
// DecodePlanOptions), stored with the decode law in a fitted profile.
struct DecodePlanConstants {
  int num_sms = 0;                     // streaming multiprocessors of the measured GPU
  int ctas_per_sm = 4;                 // resident decode blocks per SM
  int waves = 4;                       // units aimed at per resident block
  int tile_tokens = 32;                // chunk lengths are multiples of this
  int64_t min_unit_bytes = 32 * 1024;  // no unit is cut smaller than this
  friend bool operator==(const DecodePlanConstants&, const DecodePlanConstants&) = default;
};

// The plan options of the CUDA-core decode kernel, the default decode path the profiles time
// (kernels/attention/launch.cu decode_plan_options_for_device, DecodePath::kCudaCores: 4 blocks of
// 128 threads per SM, 32-token tiles; the planner's default 4 waves and 32 KiB smallest unit).
inline DecodePlanConstants cuda_core_decode_plan(int num_sms) {
  DecodePlanConstants c;
  c.num_sms = num_sms;
  return c;
}

// Bytes per cached token of one KV head in each class: (r_qk + r_v) x element bytes.
struct DecodeHeadBytes {
  int64_t hi = 0, lo = 0;
};

// Units of the plan in each class (a hi and a lo pass are priced apart by the cost model).
struct DecodeUnitEstimate {
  double hi = 0, lo = 0;
  double total() const { return hi + lo; }
};

namespace decode_units_detail {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Units of one (sequence, KV head, class) segment of len tokens: plan_decode_balanced's chunking.
inline int64_t segment_units(int64_t len, int64_t bytes_per_token, int64_t target, int64_t tile) {
  if (len <= 0) return 0;
  const int64_t chunks = std::max<int64_t>(1, ceil_div(len * bytes_per_token, target));
  int64_t chunk = ceil_div(len, chunks);
  chunk = ceil_div(chunk, tile) * tile;
  return ceil_div(len, chunk);
}

}  // namespace decode_units_detail

// The balanced plan's units of a decode batch of `seqs` sequences with `keys_mean` keys on average
// and `keys_max` in the longest (keys: cached tokens plus the step's new one), `lo_share` of each
// sequence's keys in the lo class (0 without token classes), over the KV heads `heads`. Zero for an
// empty batch or when plan.num_sms is 0 (no plan known).
inline DecodeUnitEstimate estimate_decode_units(double seqs, double keys_mean, double keys_max, double lo_share,
                                                const std::vector<DecodeHeadBytes>& heads,
                                                const DecodePlanConstants& plan) {
  using decode_units_detail::ceil_div;
  using decode_units_detail::segment_units;
  DecodeUnitEstimate out;
  const int64_t n = std::llround(seqs);
  if (n <= 0 || heads.empty() || plan.num_sms <= 0) return out;
  // The batch's keys in whole tokens: every sequence at least one, the longest at least the mean.
  const int64_t total_keys = std::max<int64_t>(n, std::llround(seqs * keys_mean));
  const int64_t longest = std::clamp<int64_t>(std::llround(keys_max), ceil_div(total_keys, n), total_keys - (n - 1));
  // Sequences by length: the longest, then the rest spread evenly (r of them one key longer).
  struct Group {
    int64_t keys, count;
  };
  std::vector<Group> groups{{longest, 1}};
  if (n > 1) {
    const int64_t rest = total_keys - longest, q = rest / (n - 1), r = rest % (n - 1);
    if (r > 0) groups.push_back({q + 1, r});
    if (n - 1 - r > 0) groups.push_back({q, n - 1 - r});
  }
  const double share = std::clamp(lo_share, 0.0, 1.0);
  auto lo_keys = [&](int64_t k) { return std::min<int64_t>(k, std::llround(share * static_cast<double>(k))); };
  int64_t total_bytes = 0;
  for (const Group& g : groups)
    for (const DecodeHeadBytes& h : heads)
      total_bytes += g.count * ((g.keys - lo_keys(g.keys)) * h.hi + lo_keys(g.keys) * h.lo);
  const int64_t slots = static_cast<int64_t>(plan.num_sms) * plan.ctas_per_sm * plan.waves;
  const int64_t target = std::max(plan.min_unit_bytes, ceil_div(total_bytes, slots));
  const int64_t tile = std::max(1, plan.tile_tokens);
  for (const Group& g : groups) {
    const int64_t lo = lo_keys(g.keys), hi = g.keys - lo;
    for (const DecodeHeadBytes& h : heads) {
      out.hi += static_cast<double>(g.count * segment_units(hi, h.hi, target, tile));
      out.lo += static_cast<double>(g.count * segment_units(lo, h.lo, target, tile));
    }
  }
  return out;
}

}  // namespace fdc::costmodel
