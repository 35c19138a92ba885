// The decode planner: units cover every cached token exactly once, are grouped per pair for the
// combine step, and the balanced plan's list-scheduling makespan is near the ideal while the
// naive plan's is not. The prefill planner covers every tile once.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/attention/cost.h"
#include "kernels/attention/plan.h"

using namespace fdc::kernels::attn;

namespace {

// Ranks spread over 32..128 (multiples of 16), as an adaptive policy would give.
HeadLayout spread_layout(int heads, int block_size) {
  std::vector<HeadRanks> r;
  for (int h = 0; h < heads; ++h) {
    const int rk = 32 + 16 * ((h * 5) % 7);
    const int rv = 32 + 16 * ((h * 3 + 2) % 7);
    r.push_back({rk, rv, rk, rv});
  }
  return HeadLayout(heads, heads, r, block_size);
}

void check_coverage(const HeadLayout& L, const DecodePlan& p, const std::vector<int>& hi, const std::vector<int>& lo,
                    int tile) {
  std::map<std::tuple<int, int>, std::vector<std::pair<int, int>>> seg;  // (seq, head_cls) -> ranges
  for (const DecodeUnit& u : p.units) {
    REQUIRE(u.begin < u.end);
    seg[{u.seq, u.head_cls}].push_back({u.begin, u.end});
  }
  for (int s = 0; s < static_cast<int>(hi.size()); ++s)
    for (int h = 0; h < L.num_kv_heads(); ++h)
      for (int cls = 0; cls < 2; ++cls) {
        const int len = cls == 0 ? hi[s] : lo[s];
        auto it = seg.find({s, 2 * h + cls});
        if (len == 0) {
          CHECK(it == seg.end());
          continue;
        }
        REQUIRE(it != seg.end());
        auto r = it->second;
        std::sort(r.begin(), r.end());
        int at = 0;
        for (auto [b, e] : r) {
          CHECK(b == at);
          if (e != len && tile > 0) CHECK((e - b) % tile == 0);
          at = e;
        }
        CHECK(at == len);
      }
  // pair grouping
  REQUIRE(p.pair_indptr.size() == hi.size() * static_cast<size_t>(L.num_kv_heads()) + 1);
  REQUIRE(p.pair_indptr.back() == static_cast<int>(p.units.size()));
  std::vector<int> seen(p.units.size(), 0);
  for (size_t pair = 0; pair + 1 < p.pair_indptr.size(); ++pair)
    for (int i = p.pair_indptr[pair]; i < p.pair_indptr[pair + 1]; ++i) {
      const DecodeUnit& u = p.units[static_cast<size_t>(p.pair_units[static_cast<size_t>(i)])];
      CHECK(static_cast<size_t>(u.seq * L.num_kv_heads() + u.head_cls / 2) == pair);
      ++seen[static_cast<size_t>(p.pair_units[static_cast<size_t>(i)])];
    }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int x) { return x == 1; }));
}

}  // namespace

TEST_CASE("decode plans cover every token once, for awkward lengths and classes") {
  const HeadLayout L(16, 4, {{64, 64, 16, 32}, {128, 32, 32, 32}, {16, 128, 8, 8}, {32, 32, 32, 32}}, 16);
  const std::vector<int> hi{1, 3, 17, 129, 1000, 4097, 0}, lo{0, 5, 0, 300, 1, 2000, 9};
  DecodePlanOptions opt;
  check_coverage(L, plan_decode_balanced(L, hi, lo, opt), hi, lo, opt.tile_tokens);
  check_coverage(L, plan_decode_naive(L, hi, lo, opt), hi, lo, 0);
  const DecodePlan naive = plan_decode_naive(L, hi, lo, opt);
  CHECK(naive.units.size() == static_cast<size_t>(4 * (6 + 5)));
  CHECK(naive.max_units_per_pair == 2);
  // The tensor-core kernel's options (64-token chunks, 3 blocks per SM): every unit starts on a
  // 16-token slice, so whole slices of pages of 16 or more slots are contiguous (its copy fast path).
  DecodePlanOptions mma;
  mma.ctas_per_sm = 3;
  mma.tile_tokens = 64;
  mma.min_unit_bytes = 4096;  // small units, so long segments are cut
  const DecodePlan cut = plan_decode_balanced(L, hi, lo, mma);
  check_coverage(L, cut, hi, lo, mma.tile_tokens);
  CHECK(cut.max_units_per_pair > 1);
  for (const DecodeUnit& u : cut.units) CHECK(u.begin % 16 == 0);
}

TEST_CASE("decode planner refuses empty sequences and mismatched inputs") {
  const HeadLayout L = HeadLayout::uniform(4, 4, 64, 64, 16);
  DecodePlanOptions opt;
  CHECK_THROWS_AS(plan_decode_balanced(L, {3, 0}, {0, 0}, opt), fdc::InputError);
  CHECK_THROWS_AS(plan_decode_balanced(L, {3}, {0, 0}, opt), fdc::InputError);
  CHECK_THROWS_AS(plan_decode_naive(L, {}, {}, opt), fdc::InputError);
}

TEST_CASE("balanced decode plan is within 10% of the ideal; the naive plan is not") {
  // Llama-2-13B decode shapes: 40 heads, batch 32 x 4096, ranks spread 32..128.
  const HeadLayout L = spread_layout(40, 16);
  const std::vector<int> hi(32, 4096), lo(32, 0);
  DecodePlanOptions opt;  // H100: 132 SMs
  const DecodePlan bal = plan_decode_balanced(L, hi, lo, opt);
  const DecodePlan nai = plan_decode_naive(L, hi, lo, opt);
  const int slots = opt.num_sms * opt.ctas_per_sm;
  int64_t total = 0;
  for (const DecodeUnit& u : bal.units) total += unit_cost_bytes(L, u, opt);
  const double ideal = static_cast<double>(total) / slots;
  const double bal_ratio = static_cast<double>(plan_makespan(L, bal, opt)) / ideal;
  const double nai_ratio = static_cast<double>(plan_makespan(L, nai, opt)) / ideal;
  MESSAGE("balanced makespan / ideal = " << bal_ratio << ", naive = " << nai_ratio << ", units " << bal.units.size());
  CHECK(bal_ratio <= 1.10);
  CHECK(nai_ratio > 1.2);
  CHECK(total - static_cast<int64_t>(bal.units.size()) * opt.unit_overhead_bytes == decode_kv_bytes(L, hi, lo, 2));
  // Small batches are split further so every SM gets work.
  const DecodePlan one = plan_decode_balanced(L, {4096}, {0}, opt);
  CHECK(one.units.size() >= 200);
  CHECK(one.max_units_per_pair > 1);
}

TEST_CASE("list scheduling makespan by hand") {
  CHECK(list_schedule_makespan({4, 3, 3, 2}, 2) == 6);  // 4 | 3 -> (4,3) -> (4,6) -> (6,6)
  CHECK(list_schedule_makespan({5}, 3) == 5);
  CHECK(list_schedule_makespan({}, 3) == 0);
}

TEST_CASE("prefill plan covers every (sequence, tile, head) once; balanced puts the costliest first") {
  const HeadLayout L(8, 4, {{128, 128, 128, 128}, {32, 32, 32, 32}, {64, 16, 64, 16}, {16, 16, 16, 16}}, 16);
  const std::vector<int> cu{0, 1, 4, 4 + 129, 4 + 129 + 1000}, kv{1, 3, 129, 1200};
  for (bool balanced : {false, true}) {
    const PrefillPlan p = plan_prefill(L, cu, kv, 64, balanced);
    std::map<std::tuple<int, int, int>, int> count;
    for (const PrefillTile& t : p.tiles) ++count[{t.seq, t.q_head, t.q_begin}];
    const int tiles = (1 + 1 + 3 + 16) * 8;
    CHECK(static_cast<int>(p.tiles.size()) == tiles);
    CHECK(static_cast<int>(count.size()) == tiles);
    if (balanced) {
      CHECK(p.tiles.front().seq == 3);
      CHECK(p.tiles.front().q_begin == 960);
    } else {
      CHECK(p.tiles.front().seq == 0);
    }
  }
  CHECK_THROWS_AS(plan_prefill(L, {0, 5}, {4}, 64, true), fdc::InputError);
}

TEST_CASE("the decode kernel for a layout: tensor cores for widths other than 64 and 128, CUDA cores with classes") {
  auto layout = [](std::vector<HeadRanks> r) {
    const int n = static_cast<int>(r.size());
    return HeadLayout(n * 4, n, std::move(r), 16);
  };
  // Uniform full-lane widths: the CUDA-core kernel.
  CHECK(choose_decode_path(HeadLayout::uniform(32, 8, 128, 128, 16)) == DecodePath::kCudaCores);
  CHECK(choose_decode_path(HeadLayout::uniform(32, 8, 64, 64, 16)) == DecodePath::kCudaCores);
  CHECK(choose_decode_path(layout({{128, 128, 128, 128}, {64, 64, 64, 64}})) == DecodePath::kCudaCores);
  // Widths the CUDA-core kernel rounds up (idle lanes): the tensor-core kernel.
  for (int r : {16, 32, 48, 80, 96, 112})
    CHECK_MESSAGE(choose_decode_path(HeadLayout::uniform(32, 8, r, r, 16)) == DecodePath::kMma, "rank ", r);
  CHECK(choose_decode_path(HeadLayout::uniform(32, 8, 64, 32, 16)) == DecodePath::kMma);   // r_v < r_qk
  CHECK(choose_decode_path(HeadLayout::uniform(32, 8, 64, 128, 16)) == DecodePath::kMma);  // r_v > r_qk
  CHECK(choose_decode_path(layout({{128, 128, 128, 128}, {96, 96, 96, 96}})) == DecodePath::kMma);  // one head
  // Token classes, in separate pools or shared pages: the CUDA-core kernel, whatever the widths.
  CHECK(choose_decode_path(layout({{128, 128, 32, 32}, {128, 128, 32, 32}})) == DecodePath::kCudaCores);
  CHECK(choose_decode_path(layout({{96, 96, 48, 48}, {40, 48, 16, 24}})) == DecodePath::kCudaCores);
  CHECK(choose_decode_path(HeadLayout::shared(8, 2, {{128, 128, 64, 64}, {64, 64, 64, 64}}, 16, 4)) ==
        DecodePath::kCudaCores);
  CHECK(choose_decode_path(HeadLayout::shared(8, 2, {{96, 96, 48, 48}, {64, 64, 32, 32}}, 16, 4)) ==
        DecodePath::kCudaCores);
  // A pinned kernel is kept; an unknown one is refused.
  CHECK(choose_decode_path(HeadLayout::uniform(32, 8, 96, 96, 16), DecodePath::kCudaCores) == DecodePath::kCudaCores);
  CHECK(choose_decode_path(HeadLayout::uniform(32, 8, 128, 128, 16), DecodePath::kMma) == DecodePath::kMma);
  CHECK(choose_decode_path(layout({{96, 96, 48, 48}, {64, 64, 32, 32}}), DecodePath::kMma) == DecodePath::kMma);
  CHECK_THROWS_AS(choose_decode_path(HeadLayout::uniform(32, 8, 128, 128, 16), static_cast<DecodePath>(5)),
                  fdc::InputError);
}

TEST_CASE("a decode plan records the width classes of its units") {
  const DecodePlanOptions opt;
  const std::vector<int> hi{100, 3000}, lo{0, 0};
  auto classes = [&](const HeadLayout& L, const std::vector<int>& h, const std::vector<int>& l) {
    const unsigned a = plan_decode_balanced(L, h, l, opt).width_classes;
    CHECK(plan_decode_naive(L, h, l, opt).width_classes == a);
    return a;
  };
  CHECK(decode_width_class(16) == kDecodeWidth32);
  CHECK(decode_width_class(32) == kDecodeWidth32);
  CHECK(decode_width_class(40) == kDecodeWidth48);
  CHECK(decode_width_class(48) == kDecodeWidth48);
  CHECK(decode_width_class(56) == kDecodeWidth64);
  CHECK(decode_width_class(64) == kDecodeWidth64);
  CHECK(decode_width_class(72) == kDecodeWidth96);
  CHECK(decode_width_class(96) == kDecodeWidth96);
  CHECK(decode_width_class(104) == kDecodeWidth128);
  CHECK(decode_width_class(128) == kDecodeWidth128);
  // A unit's width is the larger of its two ranks, per class (the rule the kernels dispatch on).
  const HeadInfo wide{40, 96, 24, 16, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(head_width(wide, 0) == 96);
  CHECK(head_width(wide, 1) == 24);
  CHECK(classes(HeadLayout::uniform(8, 8, 48, 48, 16), hi, lo) == kDecodeWidth48);
  CHECK(classes(HeadLayout::uniform(8, 8, 32, 48, 16), hi, lo) == kDecodeWidth48);
  CHECK(classes(HeadLayout::uniform(8, 8, 48, 64, 16), hi, lo) == kDecodeWidth64);
  CHECK(classes(HeadLayout(16, 2, {{48, 40, 48, 40}, {128, 96, 128, 96}}, 16), hi, lo) ==
        (kDecodeWidth48 | kDecodeWidth128));
  // Lo units count at their lo ranks, and only where the plan has lo tokens.
  const HeadLayout classes_layout(8, 2, {{96, 96, 48, 48}, {48, 48, 24, 24}}, 16);
  CHECK(classes(classes_layout, hi, lo) == (kDecodeWidth96 | kDecodeWidth48));
  CHECK(classes(classes_layout, hi, {5, 0}) == (kDecodeWidth96 | kDecodeWidth48 | kDecodeWidth32));
}

TEST_CASE("slot_page divides by any slot count without a division, for every token index an int holds") {
  // Every slot count a page can have (block sizes up to 64) and a few far larger, at every token
  // index up to 2^18 and around the multiples of the count near 2^31.
  std::vector<int> counts;
  for (int d = 1; d <= 64; ++d) counts.push_back(d);
  for (int d : {100, 127, 255, 1000, 4095, 65535, 65536}) counts.push_back(d);
  for (int d : counts) {
    CAPTURE(d);
    const SlotDivisor div = slot_divisor(d);
    int wrong = 0;
    for (int t = 0; t < (1 << 18); ++t) wrong += slot_page(t, div) != t / d;
    CHECK(wrong == 0);
    const int64_t top = (int64_t{1} << 31) - 1;
    for (int64_t m = top / d - 3; m <= top / d + 1; ++m)
      for (int64_t t = m * d - 2; t <= m * d + 2; ++t)
        if (t >= 0 && t <= top) CHECK(slot_page(static_cast<int>(t), div) == static_cast<int>(t / d));
  }
  // Powers of two are what the shift and mask serve; the divisor agrees with them.
  CHECK(slot_divisor(16).mul == (1u << 31));
  CHECK(slot_divisor(16).shift == 4);
  CHECK(slot_page(47, slot_divisor(16)) == 2);
}
