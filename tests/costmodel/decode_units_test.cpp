// The estimate of the balanced decode plan's units (costmodel/decode_units.h) against the planner
// itself (kernels/attention/plan.cpp): exact when every sequence has the same keys, or one is long
// and the rest equal; close on skewed batches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "costmodel/decode_units.h"
#include "kernels/attention/plan.h"

using namespace fdc;
namespace attn = fdc::kernels::attn;

namespace {

struct Layout {
  int q_heads, kv_heads;
  std::vector<attn::HeadRanks> ranks;
};

// Uniform rank 128 (Llama-2-13B shard), the benchmarks' mixed table 32..128 with and without lo
// ranks, and a GQA layout of 8 q heads over 2 KV heads with odd ranks.
std::vector<Layout> layouts() {
  std::vector<Layout> out;
  out.push_back({40, 40, std::vector<attn::HeadRanks>(40, {128, 128, 128, 128})});
  for (bool lo : {false, true}) {
    std::vector<attn::HeadRanks> r;
    for (int h = 0; h < 40; ++h) {
      const int rk = 32 + 16 * ((h * 5) % 7), rv = 32 + 16 * ((h * 3 + 2) % 7);
      auto low = [&](int x) { return lo ? std::min(x, std::max(16, x / 4 / 8 * 8)) : x; };
      r.push_back({rk, rv, low(rk), low(rv)});
    }
    out.push_back({40, 40, r});
  }
  out.push_back({8, 2, {{96, 48, 32, 16}, {64, 128, 16, 32}}});
  return out;
}

std::vector<costmodel::DecodeHeadBytes> head_bytes(const Layout& l) {
  std::vector<costmodel::DecodeHeadBytes> b;
  for (const attn::HeadRanks& r : l.ranks) b.push_back({2 * (r.rk + r.rv), 2 * (r.rk_lo + r.rv_lo)});
  return b;
}

attn::DecodePlanOptions plan_options(const costmodel::DecodePlanConstants& c) {
  attn::DecodePlanOptions o;
  o.num_sms = c.num_sms, o.ctas_per_sm = c.ctas_per_sm, o.waves = c.waves, o.tile_tokens = c.tile_tokens;
  o.min_unit_bytes = c.min_unit_bytes;
  return o;
}

// Keys per sequence split as the estimate splits them: round(lo_share x keys) lo, the rest hi.
void split(const std::vector<int>& keys, double lo_share, std::vector<int>* hi, std::vector<int>* lo) {
  hi->clear(), lo->clear();
  for (int k : keys) {
    const int l = static_cast<int>(std::llround(lo_share * k));
    lo->push_back(l), hi->push_back(k - l);
  }
}

struct Compared {
  double estimate, exact, hi_estimate, hi_exact;
};

Compared compare(const Layout& l, const std::vector<int>& keys, double lo_share,
                 const costmodel::DecodePlanConstants& c) {
  const bool lo = lo_share > 0;
  std::vector<attn::HeadRanks> ranks = l.ranks;
  if (!lo)
    for (attn::HeadRanks& r : ranks) r.rk_lo = r.rk, r.rv_lo = r.rv;
  const attn::HeadLayout L(l.q_heads, l.kv_heads, ranks, 16);
  std::vector<int> hi, lo_n;
  split(keys, lo_share, &hi, &lo_n);
  const attn::DecodePlan plan = attn::plan_decode_balanced(L, hi, lo_n, plan_options(c));
  const double n = static_cast<double>(keys.size());
  const double mean = std::accumulate(keys.begin(), keys.end(), 0.0) / n;
  const double max = *std::max_element(keys.begin(), keys.end());
  const costmodel::DecodeUnitEstimate e = costmodel::estimate_decode_units(n, mean, max, lo_share, head_bytes(l), c);
  const double hi_units = static_cast<double>(std::count_if(
      plan.units.begin(), plan.units.end(), [](const attn::DecodeUnit& u) { return u.head_cls % 2 == 0; }));
  return {e.total(), static_cast<double>(plan.units.size()), e.hi, hi_units};
}

}  // namespace

TEST_CASE("decode units: the CUDA-core kernel's plan constants are the planner's defaults but its 4 blocks per SM") {
  const costmodel::DecodePlanConstants c = costmodel::cuda_core_decode_plan(132);
  const attn::DecodePlanOptions d;
  CHECK(c.num_sms == 132);
  CHECK(c.ctas_per_sm == 4);  // launch.cu: 128 threads, <= 48 KiB shared memory per block
  CHECK(c.waves == d.waves);
  CHECK(c.tile_tokens == d.tile_tokens);
  CHECK(c.min_unit_bytes == d.min_unit_bytes);
}

TEST_CASE("decode units: equal sequences give exactly the planner's unit count") {
  for (const costmodel::DecodePlanConstants& c :
       {costmodel::cuda_core_decode_plan(132), costmodel::cuda_core_decode_plan(108),
        costmodel::DecodePlanConstants{132, 3, 4, 64, 32 * 1024}, costmodel::DecodePlanConstants{16, 2, 1, 16, 4096}})
    for (const Layout& l : layouts())
      for (int n : {1, 3, 8, 32, 128, 256})
        for (int k : {1, 17, 100, 513, 2048, 4097})
          for (double lo_share : {0.0, 0.5, 0.25}) {
            if (lo_share > 0 && l.ranks[0].rk_lo == l.ranks[0].rk) continue;  // no lo ranks in this layout
            CAPTURE(c.num_sms);
            CAPTURE(c.tile_tokens);
            CAPTURE(l.kv_heads);
            CAPTURE(n);
            CAPTURE(k);
            CAPTURE(lo_share);
            const Compared r = compare(l, std::vector<int>(static_cast<size_t>(n), k), lo_share, c);
            CHECK(r.estimate == r.exact);
            CHECK(r.hi_estimate == r.hi_exact);
          }
}

TEST_CASE("decode units: one long sequence and the rest equal, exact too; skewed batches close") {
  const costmodel::DecodePlanConstants c = costmodel::cuda_core_decode_plan(132);
  for (const Layout& l : layouts())
    for (int n : {2, 8, 64, 256}) {
      CAPTURE(n);
      CAPTURE(l.kv_heads);
      // One sequence holds half of the keys (the profile's one_half spread), the rest share the other half.
      std::vector<int> keys(static_cast<size_t>(n), 512);
      keys[0] = 512 * n / 2 + 1;
      for (size_t i = 1; i < keys.size(); ++i) keys[i] = 1 + (512 * n / 2) / (n - 1);
      const Compared r = compare(l, keys, 0.0, c);
      CHECK(r.estimate == r.exact);
    }
  // A quarter of the sequences 5x longer than the rest (the profile's quarter_long spread, whose
  // count/mean/max the estimate does not see whole), and lengths spread at random.
  std::vector<double> errors;
  uint64_t seed = 7;
  auto next = [&] { return seed = seed * 6364136223846793005ULL + 1442695040888963407ULL, (seed >> 33) % 4096 + 1; };
  for (const Layout& l : layouts())
    for (int n : {4, 16, 64, 200})
      for (int k : {256, 1024, 4096}) {
        std::vector<int> quarter(static_cast<size_t>(n), k / 2);
        for (int i = 0; i < std::max(1, n / 4); ++i) quarter[static_cast<size_t>(i)] = k * 5 / 2;
        std::vector<int> random(static_cast<size_t>(n));
        for (int& x : random) x = static_cast<int>(next());
        for (const auto& keys : {quarter, random}) {
          const Compared r = compare(l, keys, l.ranks[0].rk_lo < l.ranks[0].rk ? 0.5 : 0.0, c);
          errors.push_back(std::abs(r.estimate - r.exact) / r.exact);
        }
      }
  std::sort(errors.begin(), errors.end());
  const double median = errors[errors.size() / 2], worst = errors.back();
  MESSAGE("skewed batches: estimate vs planner, median error " << median << ", worst " << worst << " over "
                                                               << errors.size());
  CHECK(median < 0.10);
  CHECK(worst < 0.35);
}

TEST_CASE("decode units: no plan, no sequences or no heads give none; the longest is kept within the batch") {
  const std::vector<costmodel::DecodeHeadBytes> heads{{256, 64}};
  CHECK(costmodel::estimate_decode_units(4, 100, 100, 0, heads, {}).total() == 0);
  CHECK(costmodel::estimate_decode_units(0, 100, 100, 0, heads, costmodel::cuda_core_decode_plan(132)).total() == 0);
  CHECK(costmodel::estimate_decode_units(4, 100, 100, 0, {}, costmodel::cuda_core_decode_plan(132)).total() == 0);
  // A longest below the mean is taken as the mean (all equal): 4 x 100 keys of 256 B, one unit each.
  CHECK(costmodel::estimate_decode_units(4, 100, 50, 0, heads, costmodel::cuda_core_decode_plan(132)).total() == 4);
}
