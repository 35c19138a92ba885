#include "kernels/attention/plan.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <queue>

#include "core/error.h"

namespace fdc::kernels::attn {

namespace {

void check_lengths(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo) {
  (void)layout;
  FDC_INPUT_CHECK(!num_hi.empty(), "decode plan: empty batch");
  FDC_INPUT_CHECK(num_hi.size() == num_lo.size(),
                  "decode plan: num_hi has " << num_hi.size() << " sequences, num_lo " << num_lo.size());
  for (size_t s = 0; s < num_hi.size(); ++s) {
    FDC_INPUT_CHECK(num_hi[s] >= 0 && num_lo[s] >= 0 && num_hi[s] + num_lo[s] >= 1,
                    "decode plan: sequence " << s << " has " << num_hi[s] << " hi and " << num_lo[s]
                                             << " lo tokens; expected at least one token");
  }
}

int64_t token_bytes(const HeadInfo& h, int cls, int dtype_bytes) {
  return static_cast<int64_t>(head_rank_k(h, cls) + head_rank_v(h, cls)) * dtype_bytes;
}

DecodePlan finish(const HeadLayout& layout, int num_seqs, std::vector<DecodeUnit> units) {
  DecodePlan plan;
  plan.num_seqs = num_seqs;
  plan.num_kv_heads = layout.num_kv_heads();
  const int pairs = num_seqs * layout.num_kv_heads();
  plan.pair_indptr.assign(static_cast<size_t>(pairs) + 1, 0);
  for (const DecodeUnit& u : units) ++plan.pair_indptr[static_cast<size_t>(u.seq * layout.num_kv_heads() + u.head_cls / 2) + 1];
  for (int p = 0; p < pairs; ++p) {
    plan.max_units_per_pair = std::max(plan.max_units_per_pair, plan.pair_indptr[static_cast<size_t>(p) + 1]);
    plan.pair_indptr[static_cast<size_t>(p) + 1] += plan.pair_indptr[static_cast<size_t>(p)];
  }
  plan.pair_units.assign(units.size(), 0);
  std::vector<int> fill(plan.pair_indptr.begin(), plan.pair_indptr.end() - 1);
  for (size_t i = 0; i < units.size(); ++i) {
    const int p = units[i].seq * layout.num_kv_heads() + units[i].head_cls / 2;
    plan.pair_units[static_cast<size_t>(fill[static_cast<size_t>(p)]++)] = static_cast<int>(i);
  }
  for (const DecodeUnit& u : units) {
    plan.width_classes |= decode_width_class(head_width(layout.info(u.head_cls / 2), u.head_cls % 2));
  }
  plan.units = std::move(units);
  return plan;
}

}  // namespace

int64_t unit_cost_bytes(const HeadLayout& layout, const DecodeUnit& u, const DecodePlanOptions& opt) {
  const HeadInfo& h = layout.info(u.head_cls / 2);
  return static_cast<int64_t>(u.end - u.begin) * token_bytes(h, u.head_cls % 2, opt.dtype_bytes) + opt.unit_overhead_bytes;
}

DecodePlan plan_decode_naive(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo,
                             const DecodePlanOptions& opt) {
  (void)opt;
  check_lengths(layout, num_hi, num_lo);
  std::vector<DecodeUnit> units;
  const int n = static_cast<int>(num_hi.size());
  for (int s = 0; s < n; ++s) {
    for (int h = 0; h < layout.num_kv_heads(); ++h) {
      if (num_hi[static_cast<size_t>(s)] > 0) units.push_back({s, 2 * h, 0, num_hi[static_cast<size_t>(s)]});
      if (num_lo[static_cast<size_t>(s)] > 0) units.push_back({s, 2 * h + 1, 0, num_lo[static_cast<size_t>(s)]});
    }
  }
  return finish(layout, n, std::move(units));
}

DecodePlan plan_decode_balanced(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo,
                                const DecodePlanOptions& opt) {
  check_lengths(layout, num_hi, num_lo);
  FDC_INPUT_CHECK(opt.num_sms >= 1 && opt.ctas_per_sm >= 1 && opt.waves >= 1 && opt.tile_tokens >= 1,
                  "decode plan: options need num_sms, ctas_per_sm, waves and tile_tokens >= 1");
  const int n = static_cast<int>(num_hi.size());
  int64_t total = 0;
  for (int s = 0; s < n; ++s)
    for (const HeadInfo& h : layout.head_info())
      total += num_hi[static_cast<size_t>(s)] * token_bytes(h, 0, opt.dtype_bytes) +
               num_lo[static_cast<size_t>(s)] * token_bytes(h, 1, opt.dtype_bytes);
  const int64_t slots = static_cast<int64_t>(opt.num_sms) * opt.ctas_per_sm * opt.waves;
  const int64_t target = std::max(opt.min_unit_bytes, (total + slots - 1) / slots);

  std::vector<DecodeUnit> units;
  for (int s = 0; s < n; ++s) {
    for (int h = 0; h < layout.num_kv_heads(); ++h) {
      for (int cls = 0; cls < 2; ++cls) {
        const int len = cls == 0 ? num_hi[static_cast<size_t>(s)] : num_lo[static_cast<size_t>(s)];
        if (len == 0) continue;
        const int64_t bytes = len * token_bytes(layout.info(h), cls, opt.dtype_bytes);
        const int64_t chunks = std::max<int64_t>(1, (bytes + target - 1) / target);
        int64_t chunk = (len + chunks - 1) / chunks;
        chunk = (chunk + opt.tile_tokens - 1) / opt.tile_tokens * opt.tile_tokens;
        for (int64_t b = 0; b < len; b += chunk)
          units.push_back({s, 2 * h + cls, static_cast<int>(b), static_cast<int>(std::min<int64_t>(len, b + chunk))});
      }
    }
  }
  // Costliest first: the GPU hands blocks out in launch order, so this is longest-processing-time
  // list scheduling, whose makespan is within 4/3 of optimal and near-perfect for equal units.
  std::stable_sort(units.begin(), units.end(), [&](const DecodeUnit& a, const DecodeUnit& b) {
    return unit_cost_bytes(layout, a, opt) > unit_cost_bytes(layout, b, opt);
  });
  return finish(layout, n, std::move(units));
}

int64_t list_schedule_makespan(const std::vector<int64_t>& costs, int slots) {
  FDC_INPUT_CHECK(slots >= 1, "list schedule: slots = " << slots);
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> free_at;
  for (int i = 0; i < slots; ++i) free_at.push(0);
  int64_t makespan = 0;
  for (int64_t c : costs) {
    const int64_t start = free_at.top();
    free_at.pop();
    free_at.push(start + c);
    makespan = std::max(makespan, start + c);
  }
  return makespan;
}

int64_t plan_makespan(const HeadLayout& layout, const DecodePlan& plan, const DecodePlanOptions& opt) {
  std::vector<int64_t> costs;
  costs.reserve(plan.units.size());
  for (const DecodeUnit& u : plan.units) costs.push_back(unit_cost_bytes(layout, u, opt));
  return list_schedule_makespan(costs, opt.num_sms * opt.ctas_per_sm);
}

PrefillPlan plan_prefill(const HeadLayout& layout, const std::vector<int>& cu_q, const std::vector<int>& kv_len,
                         int tile_q, bool balanced) {
  FDC_INPUT_CHECK(cu_q.size() >= 2 && kv_len.size() + 1 == cu_q.size(),
                  "prefill plan: cu_q has " << cu_q.size() << " entries and kv_len " << kv_len.size()
                                            << "; expected num_seqs + 1 and num_seqs");
  FDC_INPUT_CHECK(tile_q >= 1, "prefill plan: tile_q = " << tile_q);
  PrefillPlan plan;
  std::vector<int64_t> cost;
  const int n = static_cast<int>(kv_len.size());
  for (int s = 0; s < n; ++s) {
    const int q_len = cu_q[static_cast<size_t>(s) + 1] - cu_q[static_cast<size_t>(s)];
    FDC_INPUT_CHECK(q_len >= 0 && q_len <= kv_len[static_cast<size_t>(s)],
                    "prefill plan: sequence " << s << " has " << q_len << " new tokens and " << kv_len[static_cast<size_t>(s)]
                                              << " cached; expected 0 <= new <= cached");
    for (int b = 0; b < q_len; b += tile_q) {
      const int64_t visible = kv_len[static_cast<size_t>(s)] - q_len + std::min(q_len, b + tile_q);
      for (int qh = 0; qh < layout.num_q_heads(); ++qh) {
        const HeadInfo& h = layout.info(layout.kv_head_of(qh));
        plan.tiles.push_back({s, qh, b, 0});
        cost.push_back(visible * (h.rk + h.rv));
      }
    }
  }
  if (balanced) {
    std::vector<size_t> order(plan.tiles.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cost[a] > cost[b]; });
    std::vector<PrefillTile> sorted;
    sorted.reserve(order.size());
    for (size_t i : order) sorted.push_back(plan.tiles[i]);
    plan.tiles = std::move(sorted);
  }
  return plan;
}

bool decode_auto_uses_tensor_cores(const std::vector<HeadRanks>& heads) {
  // Token classes: the engine keeps both classes in shared pages, where the tensor-core kernel ran
  // the token-class policy's decode layers slower (docs/kernels.md).
  for (const HeadRanks& r : heads)
    if (r.rk_lo != r.rk || r.rv_lo != r.rv) return false;
  for (const HeadRanks& r : heads)
    if (r.rk != r.rv || (r.rk != 64 && r.rk != 128)) return true;
  return false;
}

DecodePath choose_decode_path(const HeadLayout& layout, DecodePath requested) {
  FDC_INPUT_CHECK(requested == DecodePath::kAuto || requested == DecodePath::kCudaCores || requested == DecodePath::kMma,
                  "decode: unknown kernel path " << static_cast<int>(requested));
  if (requested != DecodePath::kAuto) return requested;
  std::vector<HeadRanks> heads;
  for (int h = 0; h < layout.num_kv_heads(); ++h) heads.push_back(layout.ranks(h));
  return decode_auto_uses_tensor_cores(heads) ? DecodePath::kMma : DecodePath::kCudaCores;
}

}  // namespace fdc::kernels::attn
