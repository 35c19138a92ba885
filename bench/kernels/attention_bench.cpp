// Benchmarks of the FDC attention kernels on Llama-2-13B shapes (40 heads, head dim 128, bf16).
// Each case reports time, GB/s, TFLOP/s and % of its roofline: the device-to-device copy
// bandwidth (bytes read + written) and a cuBLAS bf16 GEMM rate, both measured in the same run.
// PyTorch SDPA, the external reference, is timed by scripts/gpu/sdpa_reference.py in the same
// device call; the full-rank kernel is the in-run reference for the compressed cases.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/device_cache.h"
#include "kernels/attention/cost.h"
#include "kernels/attention/plan.h"
#include "kernels/attention/reference.h"
#include "kernels/common/cuda_check.h"

using namespace fdc::kernels;
using namespace fdc::kernels::attn;

namespace {

constexpr int kHeads = 40;
constexpr float kScale = 0.08838834764f;  // 1/sqrt(128): the original head dim sets the scale

struct Roofline {
  double copy_gbps = 0;    // bytes read + written per second / 1e9
  double gemm_tflops = 0;  // bf16 GEMM, fp32 accumulate
};
Roofline g_roof;

// Fills a device buffer of 16-bit values with random bf16 in [-1, 1] (64 MiB pattern repeated).
void fill_random(uint16_t* dst, size_t count, uint64_t seed) {
  const size_t chunk = std::min<size_t>(count, size_t{32} << 20);
  std::vector<uint16_t> host(chunk);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& x : host) x = float_to_bf16_bits(u(rng));
  for (size_t at = 0; at < count; at += chunk)
    CUDA_CHECK(cudaMemcpy(dst + at, host.data(), std::min(chunk, count - at) * 2, cudaMemcpyHostToDevice));
}

struct Events {
  cudaEvent_t a{}, b{};
  Events() {
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  template <typename F>
  double time_s(F&& f) {
    CUDA_CHECK(cudaEventRecord(a));
    f();
    CUDA_CHECK(cudaEventRecord(b));
    CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms * 1e-3;
  }
};

void measure_rooflines() {
  const size_t bytes = size_t{2} << 30;
  DeviceBuffer<uint8_t> src(bytes), dst(bytes);
  CUDA_CHECK(cudaMemset(src.data(), 1, bytes));
  Events ev;
  std::vector<double> t;
  for (int i = 0; i < 12; ++i)
    t.push_back(ev.time_s([&] { CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice)); }));
  std::sort(t.begin(), t.end());
  g_roof.copy_gbps = 2.0 * bytes / t[t.size() / 2] / 1e9;

  const int n = 8192;
  DeviceBuffer<uint16_t> A(size_t{n} * n), B(size_t{n} * n), C(size_t{n} * n);
  fill_random(A.data(), A.size(), 1);
  fill_random(B.data(), B.size(), 2);
  cublasHandle_t h;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return;
  const float one = 1.f, zero = 0.f;
  auto gemm = [&] {
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, A.data(), CUDA_R_16BF, n, B.data(), CUDA_R_16BF, n, &zero,
                 C.data(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  gemm();
  t.clear();
  for (int i = 0; i < 10; ++i) t.push_back(ev.time_s(gemm));
  std::sort(t.begin(), t.end());
  g_roof.gemm_tflops = 2.0 * n * n * static_cast<double>(n) / t[t.size() / 2] / 1e12;
  cublasDestroy(h);
  std::printf("rooflines: device copy %.0f GB/s (read + write), cuBLAS bf16 GEMM %.0f TFLOP/s\n", g_roof.copy_gbps,
              g_roof.gemm_tflops);
}

// Head ranks spread over 32..128 (multiples of 16): average 80.
std::vector<HeadRanks> spread_ranks() {
  std::vector<HeadRanks> r;
  for (int h = 0; h < kHeads; ++h) {
    const int rk = 32 + 16 * ((h * 5) % 7);
    const int rv = 32 + 16 * ((h * 3 + 2) % 7);
    r.push_back({rk, rv, rk, rv});
  }
  return r;
}

// A paged cache of `batch` sequences x `len` tokens (random bf16 values), device resident.
struct BenchCache {
  HeadLayout L;
  int64_t hi_pages = 0, lo_pages = 0;  // declared before pt: make_page_table writes them
  PageTable pt;
  DevicePagedCache dev;
  BenchCache(HeadLayout layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo)
      : L(std::move(layout)),
        pt(make_page_table(num_hi, num_lo, L.block_size(), 42, &hi_pages, &lo_pages)),
        dev(L, pt, DeviceBuffer<uint16_t>(static_cast<size_t>(hi_pages * L.page_elems(TokenClass::kHi))),
            DeviceBuffer<uint16_t>(static_cast<size_t>(lo_pages * L.page_elems(TokenClass::kLo)))) {
    fill_random(dev.hi.data(), dev.hi.size(), 3);
    fill_random(dev.lo.data(), dev.lo.size(), 4);
  }
  PagedCacheParams params() const { return dev.params(L); }
};

void report(benchmark::State& state, double seconds_median, double bytes, double flops, bool bytes_bound) {
  state.counters["ms"] = seconds_median * 1e3;
  state.counters["GB/s"] = bytes / seconds_median / 1e9;
  state.counters["TFLOP/s"] = flops / seconds_median / 1e12;
  // Decode: KV bytes over the copy roofline (copy counts read + write, so a read-only stream's
  // ceiling is the copy rate). Prefill: FLOPs over the cuBLAS GEMM rate.
  const double roof_s = bytes_bound ? bytes / (g_roof.copy_gbps * 1e9) : flops / (g_roof.gemm_tflops * 1e12);
  state.counters["roofline_%"] = 100.0 * roof_s / seconds_median;
}

template <typename F>
void timed_loop(benchmark::State& state, F&& launch, double bytes, double flops, bool bytes_bound) {
  Events ev;
  launch();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (auto _ : state) {
    const double s = ev.time_s(launch);
    state.SetIterationTime(s);
    t.push_back(s);
  }
  std::sort(t.begin(), t.end());
  report(state, t[t.size() / 2], bytes, flops, bytes_bound);
}

// Decode, batch 32 x 4096 context, paged (block 16 in BM_Decode). rank = 0 means the spread 32..128.
// kernel: 1 = CUDA cores, 2 = tensor cores (mma), 0 = what launch_decode picks; 3 = tensor cores,
// the general kernel even where every unit is in width class 48 or 96 (the launch told no width
// classes).
void decode_case(benchmark::State& state, int rank, bool balanced, int lo_pct, DecodePath path, int block,
                 bool general = false) {
  const int batch = 32, ctx = 4096;
  std::vector<HeadRanks> ranks = rank == 0 ? spread_ranks() : std::vector<HeadRanks>(kHeads, HeadRanks{rank, rank, rank, rank});
  if (lo_pct > 0)
    for (auto& r : ranks) r.rk_lo = r.rv_lo = std::max(16, r.rk / 4 / 8 * 8);
  const int n_lo = ctx * lo_pct / 100;
  const std::vector<int> hi(batch, ctx - n_lo), lo(batch, n_lo);
  static std::unique_ptr<BenchCache> cache;  // reused across cases of the same shape
  cache.reset();
  cache = std::make_unique<BenchCache>(HeadLayout(kHeads, kHeads, ranks, block), hi, lo);
  const HeadLayout& L = cache->L;
  const DecodePlanOptions opt = decode_plan_options_for_device(0, path);
  const DecodePlan plan = balanced ? plan_decode_balanced(L, hi, lo, opt) : plan_decode_naive(L, hi, lo, opt);
  DeviceDecodePlan dplan(plan, L.group());
  DeviceBuffer<uint16_t> q(static_cast<size_t>(batch) * L.q_row()), out(static_cast<size_t>(batch) * L.o_row());
  fill_random(q.data(), q.size(), 5);
  DecodeParams p;
  p.dtype = DType::kBF16;
  p.path = path;
  p.num_seqs = batch;
  p.num_q_heads = kHeads;
  p.num_kv_heads = kHeads;
  p.q_row = L.q_row();
  p.o_row = L.o_row();
  p.max_rank = std::max(L.max_rk(), L.max_rv());
  p.sm_scale = kScale;
  p.q = q.data();
  p.out = out.data();
  p.cache = cache->params();
  p.heads = cache->dev.heads.data();
  dplan.fill(p);
  if (general) p.width_classes = 0;
  const double bytes = static_cast<double>(decode_kv_bytes(L, hi, lo, 2));
  const double flops = static_cast<double>(decode_flops(L, hi, lo));
  timed_loop(state, [&] { launch_decode(p, nullptr); }, bytes, flops, true);
  state.counters["units"] = static_cast<double>(plan.units.size());
  state.counters["plan_makespan_ratio"] =
      static_cast<double>(plan_makespan(L, plan, opt)) * opt.num_sms * opt.ctas_per_sm /
      static_cast<double>(decode_kv_bytes(L, hi, lo, 2) + static_cast<int64_t>(plan.units.size()) * opt.unit_overhead_bytes);
  state.SetLabel((rank == 0 ? std::string("ranks 32..128") : "rank " + std::to_string(rank)) +
                 (balanced ? " balanced" : " naive") + (lo_pct ? " lo " + std::to_string(lo_pct) + "%" : "") +
                 (path == DecodePath::kMma ? (general ? " mma general" : " mma") : " cuda-cores") +
                 (block != 16 ? " block " + std::to_string(block) : ""));
  cache.reset();
}

void BM_Decode(benchmark::State& state) {
  const bool general = state.range(3) == 3;
  decode_case(state, static_cast<int>(state.range(0)), state.range(1) != 0, static_cast<int>(state.range(2)),
              general ? DecodePath::kMma : resolve_decode_path(static_cast<DecodePath>(state.range(3))), 16, general);
}

// The same decode case (balanced, no lo tokens) with pages of `block` tokens: with 16-token pages a
// head's K (or V) block at rank 48 is 1.5 KiB, so the blocks a unit reads start on 512-byte
// boundaries; with 32 or 64 tokens they are 3 or 6 KiB.
void BM_DecodeBlock(benchmark::State& state) {
  decode_case(state, static_cast<int>(state.range(0)), true, 0,
              resolve_decode_path(static_cast<DecodePath>(state.range(2))), static_cast<int>(state.range(1)));
}

// Causal prefill of one 4096-token sequence, 40 heads. rank = 0 means the spread 32..128.
// path: 1 = mma.sync kernel, 2 = wgmma kernel (sm_90 only), 0 = what launch_prefill picks.
// order: 0 = naive plan, 1 = balanced plan (costliest tiles first), 2 = the balanced plan
// regrouped head by head (costliest first within a head), so the blocks running at one time share
// a few heads' K/V in L2. tma: 1 = the wgmma kernel copies K/V by TMA (PrefillParams::kv_maps).
void BM_Prefill(benchmark::State& state) {
  const int rank = static_cast<int>(state.range(0));
  const int order = static_cast<int>(state.range(1));
  const bool balanced = order != 0;
  const int len = static_cast<int>(state.range(2));
  const auto path = static_cast<PrefillPath>(state.range(3));
  const bool tma = state.range(4) != 0;
  if ((path == PrefillPath::kWgmma || tma) && resolve_prefill_path(PrefillPath::kAuto) != PrefillPath::kWgmma) {
    state.SkipWithError("the wgmma prefill kernel needs an sm_90 device and build");
    return;
  }
  const std::vector<HeadRanks> ranks =
      rank == 0 ? spread_ranks() : std::vector<HeadRanks>(kHeads, HeadRanks{rank, rank, rank, rank});
  BenchCache cache(HeadLayout(kHeads, kHeads, ranks, 16), {len}, {0});
  const HeadLayout& L = cache.L;
  const std::vector<int> cu{0, len}, kv{len};
  PrefillPlan plan = plan_prefill(L, cu, kv, kPrefillTileQ, balanced);
  if (order == 2)
    std::stable_sort(plan.tiles.begin(), plan.tiles.end(),
                     [](const PrefillTile& a, const PrefillTile& b) { return a.q_head < b.q_head; });
  DeviceBuffer<PrefillTile> tiles(plan.tiles);
  DeviceBuffer<int> dcu(cu), dkv(kv);
  DeviceBuffer<uint16_t> q(static_cast<size_t>(len) * L.q_row()), out(static_cast<size_t>(len) * L.o_row());
  fill_random(q.data(), q.size(), 6);
  PrefillParams p;
  p.dtype = DType::kBF16;
  p.path = path;
  p.num_seqs = 1;
  p.num_q_heads = kHeads;
  p.num_kv_heads = kHeads;
  p.q_row = L.q_row();
  p.o_row = L.o_row();
  p.max_rank = std::max(L.max_rk(), L.max_rv());
  p.sm_scale = kScale;
  p.cu_q = dcu.data();
  p.kv_len = dkv.data();
  p.q = q.data();
  p.out = out.data();
  p.cache = cache.params();
  p.heads = cache.dev.heads.data();
  p.tiles = tiles.data();
  p.num_tiles = static_cast<int>(plan.tiles.size());
  std::unique_ptr<PrefillTensorMaps> maps;
  if (tma) {
    maps = std::make_unique<PrefillTensorMaps>(L, cache.dev.hi.data(), cache.hi_pages);
    p.kv_maps = maps->data();
  }
  const double flops = static_cast<double>(prefill_flops(L, cu, kv));
  const double bytes = static_cast<double>(prefill_bytes(L, cu, kv, 2));
  timed_loop(state, [&] { launch_prefill(p, nullptr); }, bytes, flops, false);
  state.SetLabel((rank == 0 ? std::string("ranks 32..128") : "rank " + std::to_string(rank)) +
                 (order == 2 ? " by head"
                  : balanced ? " balanced"
                             : " naive") +
                 " len " + std::to_string(len) +
                 (resolve_prefill_path(path) == PrefillPath::kWgmma ? (tma ? " wgmma tma" : " wgmma") : " mma.sync"));
}

// Append of 32 decode tokens + one 4096-token prefill into the paged cache.
void BM_Append(benchmark::State& state) {
  const int tokens = static_cast<int>(state.range(0));
  const std::vector<HeadRanks> ranks(kHeads, HeadRanks{128, 128, 128, 128});
  BenchCache cache(HeadLayout(kHeads, kHeads, ranks, 16), {tokens}, {0});
  const HeadLayout& L = cache.L;
  DeviceBuffer<uint16_t> k(static_cast<size_t>(tokens) * L.k_row()), v(static_cast<size_t>(tokens) * L.v_row());
  std::vector<int> seq(static_cast<size_t>(tokens), 0), pos(static_cast<size_t>(tokens));
  for (int i = 0; i < tokens; ++i) pos[static_cast<size_t>(i)] = i;
  DeviceBuffer<int> dseq(seq), dpos(pos);
  AppendParams p = cache.dev.append_params(L);
  p.dtype = DType::kBF16;
  p.num_tokens = tokens;
  p.k = k.data();
  p.v = v.data();
  p.seq_of = dseq.data();
  p.pos_of = dpos.data();
  const double bytes = 2.0 * tokens * (L.k_row() + L.v_row()) * 2;
  timed_loop(state, [&] { launch_append(p, nullptr); }, bytes, 0.0, true);
}

}  // namespace

// Each case on both kernels, side by side.
BENCHMARK(BM_Decode)
    ->ArgNames({"rank", "balanced", "lo_pct", "kernel"})
    ->ArgsProduct({{128}, {1, 0}, {0}, {1, 2}})
    ->ArgsProduct({{96, 64, 48, 32}, {1}, {0}, {1, 2}})
    ->ArgsProduct({{48, 96}, {1}, {0}, {3}})
    ->ArgsProduct({{0}, {1, 0}, {0}, {1, 2}})
    ->ArgsProduct({{128}, {1}, {50}, {1, 2}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.3);
BENCHMARK(BM_DecodeBlock)
    ->ArgNames({"rank", "block", "kernel"})
    ->ArgsProduct({{48, 32, 64, 96, 128}, {16, 32, 64}, {1, 2}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.3);
BENCHMARK(BM_Prefill)
    ->ArgNames({"rank", "order", "len", "path", "tma"})
    ->Args({128, 1, 4096, 1, 0})
    ->Args({64, 1, 4096, 1, 0})
    ->Args({32, 1, 4096, 1, 0})
    ->Args({0, 1, 4096, 1, 0})
    ->Args({0, 0, 4096, 1, 0})
    ->ArgsProduct({{128, 64, 32, 0}, {1}, {4096}, {2}, {0, 1}})
    ->ArgsProduct({{0}, {0}, {4096}, {2}, {0, 1}})
    ->Args({128, 2, 4096, 1, 0})
    ->Args({128, 2, 4096, 2, 0})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.3);
BENCHMARK(BM_Append)->ArgNames({"tokens"})->Arg(32)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, sm_%d%d\n", prop.name, prop.multiProcessorCount, prop.major, prop.minor);
  measure_rooflines();
  benchmark::AddCustomContext("device", prop.name);
  benchmark::AddCustomContext("copy_gbps", std::to_string(g_roof.copy_gbps));
  benchmark::AddCustomContext("gemm_tflops", std::to_string(g_roof.gemm_tflops));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
