// Single-GPU cases: measured peaks, projections (cuBLASLt, with cublasGemmEx beside it), fused RoPE
// + rotation and RoPE alone, norms, residual add, MLP activation; the KV cache's append and prompt
// classification register from attention_benchmarks.cpp. Each iteration times a burst of launches
// with CUDA events (manual time = GPU time per launch), long enough (>= 200 us) that launch gaps and
// timer resolution do not count. Counters: the shape, TFLOP/s, GB/s and % of the peaks measured in
// this run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "bench/ops/bench_util.h"
#include "bench/ops/benchmarks.h"
#include "kernels/attention/layout.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/ops/reference.h"

namespace fdc::profile {

using kernels::DeviceBuffer;
namespace ops = kernels::ops;

bool budget_spent(const RunOptions& o, benchmark::State& st) {
  if (std::chrono::steady_clock::now() < o.deadline) return false;
  st.SkipWithError("skipped: the time budget (--budget-s) was spent before this case");
  return true;
}

constexpr double kBurstSeconds = 200e-6;

double time_op(benchmark::State& st, OpContext& ctx, const BenchCase& c, const std::function<void()>& op) {
  op();  // warm-up (and cuBLASLt's algorithm choice)
  EventTimer ev;
  ev.start(ctx.stream);
  op();
  const double once = std::max(ev.stop(ctx.stream), 1e-7);
  const int burst = static_cast<int>(std::clamp(std::ceil(kBurstSeconds / once), 1.0, 1000.0));
  double best = 0;
  for (auto _ : st) {
    ev.start(ctx.stream);
    for (int i = 0; i < burst; ++i) op();
    const double t = ev.stop(ctx.stream) / burst;
    best = best == 0 ? t : std::min(best, t);
    st.SetIterationTime(t);
  }
  for (const auto& [k, v] : c.shape) st.counters[k] = v;
  st.counters["burst"] = burst;
  using C = benchmark::Counter;
  if (c.flops > 0) st.counters["TFLOP/s"] = C(c.flops / 1e12, C::kIsIterationInvariantRate);
  if (c.bytes > 0) st.counters["GB/s"] = C(c.bytes / 1e9, C::kIsIterationInvariantRate);
  if (c.flops > 0 && ctx.peaks.gemm_flop_per_s > 0)
    st.counters["%peak_flops"] = C(100.0 * c.flops / ctx.peaks.gemm_flop_per_s, C::kIsIterationInvariantRate);
  if (c.bytes > 0 && ctx.peaks.copy_byte_per_s > 0)
    st.counters["%peak_bw"] = C(100.0 * c.bytes / ctx.peaks.copy_byte_per_s, C::kIsIterationInvariantRate);
  return best;
}

int64_t timed_iterations(const BenchCase& c, double min_time_s) {
  const double per_iteration = std::max(c.op_est_s, kBurstSeconds);
  return static_cast<int64_t>(std::clamp(std::ceil(min_time_s / per_iteration), 5.0, 1000.0));
}

namespace {

int64_t shape_int(const BenchCase& c, const char* key) { return static_cast<int64_t>(c.shape.at(key)); }

// Copies of a weight matrix of `weight_bytes` that a burst cycles through so that no launch finds
// its weights in the L2 cache: together at least three times the L2 (1 when one copy already is).
int cold_weight_copies(size_t weight_bytes) {
  int l2 = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  const double copies = std::ceil(3.0 * l2 / static_cast<double>(std::max<size_t>(weight_bytes, 1)));
  return static_cast<int>(std::clamp(copies, 1.0, 64.0));
}

// Sets up a GEMM of the case's shape and times it; returns the fastest time per launch. With
// cold weights (the default of `fdcsim profile`, as in a forward pass, where every layer brings its
// own weights) each launch of a burst reads another copy of w, so that a weight matrix smaller than
// the L2 (Llama-2-13B's output projection at rank 64: 26 MB) is not served from it.
double gemm_case(benchmark::State& st, OpContext& ctx, const BenchCase& c, ops::GemmBackend backend, bool cold) {
  if (budget_spent(ctx.opts, st)) return 0;
  const int64_t m = shape_int(c, "m"), n = shape_int(c, "n"), k = shape_int(c, "k");
  const size_t w_elems = static_cast<size_t>(n * k);
  const int copies = cold ? cold_weight_copies(w_elems * 2) : 1;
  DeviceBuffer<uint16_t> x(static_cast<size_t>(m * k)), w(w_elems * static_cast<size_t>(copies)),
      out(static_cast<size_t>(m * n));
  fill_random_bf16(x.data(), x.size(), 1);
  fill_random_bf16(w.data(), w_elems, 2);
  for (int i = 1; i < copies; ++i)
    CUDA_CHECK(cudaMemcpy(w.data() + i * w_elems, w.data(), w_elems * 2, cudaMemcpyDeviceToDevice));
  std::vector<ops::GemmParams> p;
  for (int i = 0; i < copies; ++i)
    p.push_back({kernels::DType::kBF16, m, n, k, x.data(), w.data() + i * w_elems, out.data()});
  size_t next = 0;
  const double best = time_op(st, ctx, c, [&] {
    ctx.gemm->run(p[next], backend, ctx.stream);
    next = (next + 1) % p.size();
  });
  st.counters["cold_weights"] = cold ? 1 : 0;
  st.counters["weight_copies"] = copies;
  return best;
}

// The peaks are the fastest burst of their case: the rate every later "% of peak" divides by.
void peak_gemm_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  const double best = gemm_case(st, ctx, c, ops::GemmBackend::kCublasLt, /*cold=*/false);
  if (best <= 0) return;
  ctx.peaks.gemm_flop_per_s = c.flops / best;
  st.counters["peak_TFLOP/s"] = ctx.peaks.gemm_flop_per_s / 1e12;
}

void peak_copy_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const auto bytes = static_cast<size_t>(c.shape.at("bytes"));
  DeviceBuffer<uint8_t> src(bytes), dst(bytes);
  CUDA_CHECK(cudaMemset(src.data(), 1, bytes));
  const double best = time_op(st, ctx, c, [&] {
    CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, ctx.stream));
  });
  if (best <= 0) return;
  ctx.peaks.copy_byte_per_s = c.bytes / best;
  st.counters["peak_GB/s"] = ctx.peaks.copy_byte_per_s / 1e9;
}

void rope_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int T = static_cast<int>(shape_int(c, "tokens")), H = static_cast<int>(shape_int(c, "q_heads"));
  const int Hk = static_cast<int>(shape_int(c, "kv_heads")), d = static_cast<int>(shape_int(c, "head_dim"));
  const int r = static_cast<int>(shape_int(c, "rank"));
  const bool rotate = c.kind == "rope_rotate";
  constexpr int kBlock = 16, kMaxPos = 4096;
  // Compressed k goes straight into the paged cache (one sequence, pages in order), as in serving;
  // RoPE alone writes full-width q and k the same way.
  const kernels::attn::HeadLayout L = kernels::attn::HeadLayout::uniform(H, Hk, r, r, kBlock);
  const int64_t qkv_row = static_cast<int64_t>(H + Hk) * d + L.v_row();
  const int pages = (T + kBlock - 1) / kBlock;
  DeviceBuffer<uint16_t> qkv(static_cast<size_t>(T * qkv_row)), rot(static_cast<size_t>(d) * L.k_row());
  DeviceBuffer<uint16_t> q(static_cast<size_t>(T) * L.q_row());
  DeviceBuffer<uint16_t> cache(static_cast<size_t>(pages * L.page_elems(kernels::attn::TokenClass::kHi)));
  fill_random_bf16(qkv.data(), qkv.size(), 3);
  fill_random_bf16(rot.data(), rot.size(), 4);
  std::vector<int> pos(static_cast<size_t>(T)), seq(static_cast<size_t>(T), 0), indices(static_cast<size_t>(pages));
  for (int t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = t;
  for (int p = 0; p < pages; ++p) indices[static_cast<size_t>(p)] = p;
  std::vector<int> positions(pos);
  for (auto& x : positions) x %= kMaxPos;
  DeviceBuffer<int> d_positions(positions), d_seq(seq), d_pos(pos), d_indptr(std::vector<int>{0, pages}),
      d_indices(indices);
  DeviceBuffer<float> cos_sin(ops::make_cos_sin_cache(kMaxPos, d, 10000.0));
  DeviceBuffer<kernels::attn::HeadInfo> heads(L.head_info());
  ops::RopeRotateParams p;
  p.dtype = kernels::DType::kBF16;
  p.num_tokens = T;
  p.num_q_heads = H;
  p.num_kv_heads = Hk;
  p.head_dim = d;
  p.max_rank = r;
  p.qkv = qkv.data();
  p.qkv_row = qkv_row;
  p.positions = d_positions.data();
  p.cos_sin = cos_sin.data();
  p.max_position = kMaxPos;
  p.rotation = rotate ? rot.data() : nullptr;
  p.heads = heads.data();
  p.q_row = L.q_row();
  p.k_row = L.k_row();
  p.q_out = q.data();
  p.hi_pool = cache.data();
  p.page_elems_hi = L.page_elems(kernels::attn::TokenClass::kHi);
  p.block_size = kBlock;
  p.seq_of = d_seq.data();
  p.pos_of = d_pos.data();
  p.hi_page_indptr = d_indptr.data();
  p.hi_page_indices = d_indices.data();
  (void)time_op(st, ctx, c, [&] { ops::launch_rope_rotate(p, ctx.stream); });
}

void norm_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int64_t rows = shape_int(c, "rows");
  const int dim = static_cast<int>(shape_int(c, "dim"));
  const bool ln = c.shape.at("layernorm") > 0;
  DeviceBuffer<uint16_t> x(static_cast<size_t>(rows * dim)), out(x.size()), w(static_cast<size_t>(dim)), b(w.size());
  fill_random_bf16(x.data(), x.size(), 5);
  fill_random_bf16(w.data(), w.size(), 6);
  fill_random_bf16(b.data(), b.size(), 7);
  const ops::NormParams p{kernels::DType::kBF16,
                          ln ? ops::NormKind::kLayerNorm : ops::NormKind::kRmsNorm,
                          rows,
                          dim,
                          1e-5f,
                          x.data(),
                          w.data(),
                          ln ? b.data() : nullptr,
                          out.data()};
  (void)time_op(st, ctx, c, [&] { ops::launch_norm(p, ctx.stream); });
}

void residual_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int64_t n = shape_int(c, "count");
  DeviceBuffer<uint16_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  fill_random_bf16(a.data(), a.size(), 8);
  fill_random_bf16(b.data(), b.size(), 9);
  // In place, as the layer does (hidden += branch output).
  const ops::ResidualParams p{kernels::DType::kBF16, n, a.data(), b.data(), a.data()};
  (void)time_op(st, ctx, c, [&] { ops::launch_residual(p, ctx.stream); });
}

void act_case(benchmark::State& st, OpContext& ctx, const BenchCase& c) {
  if (budget_spent(ctx.opts, st)) return;
  const int64_t rows = shape_int(c, "rows");
  const int f = static_cast<int>(shape_int(c, "ffn"));
  const bool gated = c.shape.at("gated") > 0;
  DeviceBuffer<uint16_t> in(static_cast<size_t>(rows * f * (gated ? 2 : 1))), out(static_cast<size_t>(rows * f));
  fill_random_bf16(in.data(), in.size(), 10);
  const ops::ActParams p{
      kernels::DType::kBF16, gated ? ops::ActKind::kSwiGlu : ops::ActKind::kRelu, rows, f, in.data(), out.data()};
  (void)time_op(st, ctx, c, [&] { ops::launch_act(p, ctx.stream); });
}

benchmark::internal::Benchmark* reg(const std::string& name, std::function<void(benchmark::State&)> fn,
                                    const OpContext& ctx, const BenchCase& c) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& st) { fn(st); });
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(timed_iterations(c, ctx.opts.min_time_s));
  return b;
}

}  // namespace

void register_op_case(const BenchCase& c, OpContext& ctx) {
  OpContext* x = &ctx;
  if (c.kind == "peak_gemm") {
    reg(
        c.name, [x, c](benchmark::State& st) { peak_gemm_case(st, *x, c); }, ctx, c);
  } else if (c.kind == "peak_copy") {
    reg(
        c.name, [x, c](benchmark::State& st) { peak_copy_case(st, *x, c); }, ctx, c);
  } else if (c.kind == "gemm") {
    reg(
        c.name + "/cublaslt",
        [x, c](benchmark::State& st) {
          (void)gemm_case(st, *x, c, ops::GemmBackend::kCublasLt, x->opts.gemm_cold_weights);
        },
        ctx, c);
    reg(
        c.name + "/cublas",
        [x, c](benchmark::State& st) {
          (void)gemm_case(st, *x, c, ops::GemmBackend::kCublas, x->opts.gemm_cold_weights);
        },
        ctx, c);
  } else if (c.kind == "rope" || c.kind == "rope_rotate") {
    reg(
        c.name, [x, c](benchmark::State& st) { rope_case(st, *x, c); }, ctx, c);
  } else if (c.kind == "norm") {
    reg(
        c.name, [x, c](benchmark::State& st) { norm_case(st, *x, c); }, ctx, c);
  } else if (c.kind == "residual") {
    reg(
        c.name, [x, c](benchmark::State& st) { residual_case(st, *x, c); }, ctx, c);
  } else if (c.kind == "mlp_act") {
    reg(
        c.name, [x, c](benchmark::State& st) { act_case(st, *x, c); }, ctx, c);
  } else if (c.kind == "kv_append" || c.kind == "kv_classify") {
    register_kv_cache_case(c, ctx);
  } else {
    throw InternalError("register_op_case: case " + c.name + " of kind " + c.kind + " is not a single-GPU case");
  }
}

}  // namespace fdc::profile
