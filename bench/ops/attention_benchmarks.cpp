// Attention cases of the profile: the FDC kernels of kernels/attention (prefill over cached
// prefixes, paged decode with per-head ranks, token classes and the balanced split) on a paged
// cache of random pages, at the shapes the case's counters give (attention_grid.h rebuilds the
// per-sequence lengths and rank tables); and the KV cache's other kernels, the append of new rows
// (kv_append) and the prompt classification of token classes (kv_classify). Timed like the other
// ops: bursts of back-to-back launches between CUDA events. Counters: the shape (docs/profile.md),
// bytes, flops, GB/s, TFLOP/s.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "bench/ops/attention_grid.h"
#include "bench/ops/bench_util.h"
#include "bench/ops/benchmarks.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/classify.h"
#include "kernels/attention/device_cache.h"
#include "kernels/attention/plan.h"
#include "kernels/attention/reference.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"

namespace fdc::profile {
namespace {

namespace attn = kernels::attn;
using kernels::DeviceBuffer;

constexpr int kBlock = 16;

int shape_int(const BenchCase& c, const char* key) { return static_cast<int>(std::lround(c.shape.at(key))); }

// Rank table of the case (a policy's layer, uniform rank or the mixed table; lo ranks when it has
// lo tokens), as its counters say.
std::vector<attn::HeadRanks> case_ranks(const BenchCase& c) { return case_head_ranks(c.shape); }

// Pools of a page table, filled with a constant bf16 pattern (cudaMemset: a random fill of
// gigabytes would cost more than the case; attention's time does not depend on the values).
struct CaseCache {
  attn::HeadLayout L;
  int64_t hi_pages = 0, lo_pages = 0;  // before pt: make_page_table writes them
  attn::PageTable pt;
  attn::DevicePagedCache dev;
  // Separate pools of each class's pages, or one pool of shared pages (L.shared_pages(): both
  // classes in every page, as the engine lays out token classes).
  CaseCache(attn::HeadLayout layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo)
      : L(std::move(layout)),
        pt(L.shared_pages() ? attn::make_shared_page_table(L, num_hi, num_lo, 42, &hi_pages)
                            : attn::make_page_table(num_hi, num_lo, L.block_size(), 42, &hi_pages, &lo_pages)),
        dev(L, pt, DeviceBuffer<uint16_t>(static_cast<size_t>(hi_pages * L.page_elems(attn::TokenClass::kHi))),
            DeviceBuffer<uint16_t>(static_cast<size_t>(lo_pages * L.page_elems(attn::TokenClass::kLo)))) {
    // 0x3C3C is bf16 0.0115: small, finite, the same in every slot.
    if (dev.hi.size()) CUDA_CHECK(cudaMemset(dev.hi.data(), 0x3C, dev.hi.size() * 2));
    if (dev.lo.size()) CUDA_CHECK(cudaMemset(dev.lo.data(), 0x3C, dev.lo.size() * 2));
  }
};

void set_attention_counters(benchmark::State& st, const BenchCase& c) {
  st.counters["bytes"] = c.bytes;
  st.counters["flops"] = c.flops;
}

void prefill_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  // ctx = the cached prefix; the new tokens follow it, so each sequence holds prefix + q keys.
  const int seqs = shape_int(c, "num_seqs"), tokens = shape_int(c, "tokens");
  const int kv_len = shape_int(c, "ctx_mean") + tokens / seqs;
  const int H = shape_int(c, "q_heads"), Hk = shape_int(c, "kv_heads");
  const int q = tokens / seqs;
  std::vector<int> cu{0}, kv(static_cast<size_t>(seqs), kv_len), none(static_cast<size_t>(seqs), 0);
  for (int s = 0; s < seqs; ++s) cu.push_back(cu.back() + q);
  CaseCache cache(attn::HeadLayout(H, Hk, case_ranks(c), kBlock), kv, none);
  const attn::HeadLayout& L = cache.L;
  const attn::PrefillPlan plan = attn::plan_prefill(L, cu, kv, attn::kPrefillTileQ, true);
  DeviceBuffer<attn::PrefillTile> tiles(plan.tiles);
  DeviceBuffer<int> dcu(cu), dkv(kv);
  DeviceBuffer<uint16_t> dq(static_cast<size_t>(tokens) * L.q_row()), out(static_cast<size_t>(tokens) * L.o_row());
  fill_random_bf16(dq.data(), dq.size(), 11);
  attn::PrefillParams p;
  p.dtype = kernels::DType::kBF16;
  p.num_seqs = seqs;
  p.num_q_heads = H;
  p.num_kv_heads = Hk;
  p.q_row = L.q_row();
  p.o_row = L.o_row();
  p.max_rank = std::max(L.max_rk(), L.max_rv());
  p.sm_scale = static_cast<float>(1.0 / std::sqrt(c.shape.at("head_dim")));
  p.cu_q = dcu.data();
  p.kv_len = dkv.data();
  p.q = dq.data();
  p.out = out.data();
  p.cache = cache.dev.params(L);
  p.heads = cache.dev.heads.data();
  p.tiles = tiles.data();
  p.num_tiles = static_cast<int>(plan.tiles.size());
  // As the engine runs it: the Hopper kernel copies K/V by TMA.
  const attn::PrefillPath path = attn::resolve_prefill_path(attn::PrefillPath::kAuto);
  std::unique_ptr<attn::PrefillTensorMaps> maps;
  if (path == attn::PrefillPath::kWgmma) {
    maps = std::make_unique<attn::PrefillTensorMaps>(L, cache.dev.hi.data(), cache.hi_pages);
    p.kv_maps = maps->data();
  }
  (void)time_op(st, ctx, c, [&] { attn::launch_prefill(p, ctx.stream); });
  set_attention_counters(st, c);
  st.counters["kernel"] = static_cast<double>(static_cast<int>(path));  // 1 mma.sync, 2 wgmma
  st.counters["tma"] = maps ? 1.0 : 0.0;
}

void decode_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int batch = shape_int(c, "num_seqs"), ctx_mean = shape_int(c, "ctx_mean");
  const int H = shape_int(c, "q_heads"), Hk = shape_int(c, "kv_heads");
  const bool balanced = c.shape.at("balanced") > 0;
  const std::vector<int> len = context_lengths(batch, ctx_mean, static_cast<ContextSpread>(shape_int(c, "spread")));
  std::vector<int> hi, lo;
  decode_classes(len, c.shape.at("lo_fraction"), &hi, &lo);
  // Token classes on shared pages, as the engine lays them out (the plan gives their slots).
  const int block = shape_int(c, "block_size");
  CaseCache cache(c.shape.count("slots_hi")
                      ? attn::HeadLayout::shared(H, Hk, case_ranks(c), block, shape_int(c, "slots_hi"))
                      : attn::HeadLayout(H, Hk, case_ranks(c), block),
                  hi, lo);
  const attn::HeadLayout& L = cache.L;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  // The kernel the engine runs for this layout (attn::choose_decode_path).
  const attn::DecodePath path = attn::choose_decode_path(L);
  const attn::DecodePlanOptions opt = attn::decode_plan_options_for_device(device, path);
  const attn::DecodePlan plan =
      balanced ? attn::plan_decode_balanced(L, hi, lo, opt) : attn::plan_decode_naive(L, hi, lo, opt);
  attn::DeviceDecodePlan dplan(plan, L.group());
  DeviceBuffer<uint16_t> dq(static_cast<size_t>(batch) * L.q_row()), out(static_cast<size_t>(batch) * L.o_row());
  fill_random_bf16(dq.data(), dq.size(), 12);
  attn::DecodeParams p;
  p.dtype = kernels::DType::kBF16;
  p.num_seqs = batch;
  p.num_q_heads = H;
  p.num_kv_heads = Hk;
  p.q_row = L.q_row();
  p.o_row = L.o_row();
  p.max_rank = std::max(L.max_rk(), L.max_rv());
  p.sm_scale = static_cast<float>(1.0 / std::sqrt(c.shape.at("head_dim")));
  p.q = dq.data();
  p.out = out.data();
  p.cache = cache.dev.params(L);
  p.heads = cache.dev.heads.data();
  p.path = path;
  dplan.fill(p);
  (void)time_op(st, ctx, c, [&] { attn::launch_decode(p, ctx.stream); });
  set_attention_counters(st, c);
  st.counters["units"] = static_cast<double>(plan.units.size());
  st.counters["kernel"] = static_cast<double>(static_cast<int>(path));  // 1 CUDA cores, 2 tensor cores
  // The tensor-core kernel of one width (48 or 96) the launch ran, 0 = the general one.
  st.counters["mma_width"] =
      path == attn::DecodePath::kMma
          ? attn::decode_mma_one_width(plan.width_classes, attn::decode_any_slots(L.slots(attn::TokenClass::kHi),
                                                                                  L.slots(attn::TokenClass::kLo)))
          : 0;
}

// New rows of one sequence's prefill (rows 0..tokens-1 to slots 0..tokens-1 of its pages, page ids
// shuffled) at a uniform rank, all hi. Launching it again rewrites the same slots.
void kv_append_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int tokens = shape_int(c, "tokens"), Hk = shape_int(c, "kv_heads"), r = shape_int(c, "rank");
  CaseCache cache(attn::HeadLayout::uniform(Hk, Hk, r, r, kBlock), {tokens}, {0});
  const attn::HeadLayout& L = cache.L;
  DeviceBuffer<uint16_t> k(static_cast<size_t>(tokens) * L.k_row()), v(static_cast<size_t>(tokens) * L.v_row());
  fill_random_bf16(k.data(), k.size(), 13);
  fill_random_bf16(v.data(), v.size(), 14);
  std::vector<int> pos(static_cast<size_t>(tokens));
  std::iota(pos.begin(), pos.end(), 0);
  DeviceBuffer<int> seq_of(std::vector<int>(static_cast<size_t>(tokens), 0)), pos_of(pos);
  attn::AppendParams p = cache.dev.append_params(L);
  p.dtype = kernels::DType::kBF16;
  p.num_tokens = tokens;
  p.k = k.data();
  p.v = v.data();
  p.seq_of = seq_of.data();
  p.pos_of = pos_of.data();
  (void)time_op(st, ctx, c, [&] { attn::launch_append(p, ctx.stream); });
  set_attention_counters(st, c);
}

// One prompt of `tokens` rows at hi ranks (random packed k/v rows, so the sort orders distinct
// keys), classified with hi_rows of them kept hi. The workspace is reserved before timing.
void kv_classify_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int tokens = shape_int(c, "tokens"), Hk = shape_int(c, "kv_heads"), n_hi = shape_int(c, "hi_rows");
  if (shape_int(c, "seqs") != 1)
    throw InternalError("kv_classify case " + c.name + ": only one prompt (seqs = 1) is supported");
  const attn::HeadLayout L(Hk, Hk, kv_classify_ranks(Hk, shape_int(c, "head_dim")), kBlock);
  DeviceBuffer<uint16_t> k(static_cast<size_t>(tokens) * L.k_row()), v(static_cast<size_t>(tokens) * L.v_row());
  fill_random_bf16(k.data(), k.size(), 15);
  fill_random_bf16(v.data(), v.size(), 16);
  DeviceBuffer<attn::HeadInfo> heads(L.head_info());
  DeviceBuffer<int> cu(std::vector<int>{0, tokens}), seg_of(std::vector<int>(static_cast<size_t>(tokens), 0)),
      num_hi(std::vector<int>{n_hi}), cls_of(static_cast<size_t>(tokens)), pos_of(static_cast<size_t>(tokens));
  attn::TokenClassifier classifier;
  classifier.reserve(tokens, 1, cu.data(), ctx.stream);
  (void)time_op(st, ctx, c, [&] {
    classifier.classify(k.data(), L.k_row(), v.data(), L.v_row(), heads.data(), Hk, tokens, cu.data(), 1, seg_of.data(),
                        num_hi.data(), cls_of.data(), pos_of.data(), ctx.stream);
  });
  set_attention_counters(st, c);
}

}  // namespace

void register_kv_cache_case(const BenchCase& c, OpContext& ctx) {
  OpContext* x = &ctx;
  benchmark::internal::Benchmark* b = nullptr;
  if (c.kind == "kv_append") {
    b = benchmark::RegisterBenchmark(c.name.c_str(), [x, c](benchmark::State& st) { kv_append_case(st, *x, c); });
  } else if (c.kind == "kv_classify") {
    b = benchmark::RegisterBenchmark(c.name.c_str(), [x, c](benchmark::State& st) { kv_classify_case(st, *x, c); });
  } else {
    throw InternalError("register_kv_cache_case: case " + c.name + " of kind " + c.kind + " is not a KV cache case");
  }
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(timed_iterations(c, ctx.opts.min_time_s));
}

void register_attention_case(const BenchCase& c, OpContext& ctx) {
  OpContext* x = &ctx;
  benchmark::internal::Benchmark* b = nullptr;
  if (c.kind == "attn_prefill") {
    b = benchmark::RegisterBenchmark(c.name.c_str(), [x, c](benchmark::State& st) { prefill_case(st, *x, c); });
  } else if (c.kind == "attn_decode") {
    b = benchmark::RegisterBenchmark(c.name.c_str(), [x, c](benchmark::State& st) { decode_case(st, *x, c); });
  } else {
    throw InternalError("register_attention_case: case " + c.name + " of kind " + c.kind + " is not an attention case");
  }
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(timed_iterations(c, ctx.opts.min_time_s));
}

}  // namespace fdc::profile
