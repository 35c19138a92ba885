// Registration of the profile's cases as Google Benchmark benchmarks (inside a worker process).
#pragma once

#include <cuda_runtime_api.h>

#include <benchmark/benchmark.h>

#include <functional>
#include <memory>

#include "bench/ops/profile_plan.h"
#include "bench/ops/runner.h"
#include "kernels/ops/launch.h"

namespace fdc::profile {

// Rates measured in this run by the peak cases (they run first); every "% of peak" divides by them.
struct Peaks {
  double gemm_flop_per_s = 0;
  double copy_byte_per_s = 0;  // bytes read + written per second by a device-to-device copy
};

struct OpContext {
  RunOptions opts;
  Peaks peaks;
  cudaStream_t stream = nullptr;
  std::unique_ptr<kernels::ops::GemmRunner> gemm;
};

void register_op_case(const BenchCase& c, OpContext& ctx);
// Attention cases (attn_prefill, attn_decode): kernels/attention on a paged cache.
void register_attention_case(const BenchCase& c, OpContext& ctx);
// KV cache cases (kv_append, kv_classify): kernels/attention's append and token classifier. They
// run with the single-GPU op cases (ops.json); register_op_case passes them on.
void register_kv_cache_case(const BenchCase& c, OpContext& ctx);

// Times `op` with bursts of back-to-back launches (>= 200 us each, so launch gaps and timer
// resolution do not count); sets the shape counters, the burst length and the rate counters.
// Returns the fastest burst's time per launch (the peaks use it), or 0 when nothing ran.
double time_op(benchmark::State& st, OpContext& ctx, const BenchCase& c, const std::function<void()>& op);

// Timed iterations (bursts) of a case: about min_time_s of GPU time from the plan's estimate of one
// run. A fixed count, because Google Benchmark's min time counts the per-launch time time_op
// reports, not the burst's, and so ran a burst of n launches n times longer than the plan assumed.
int64_t timed_iterations(const BenchCase& c, double min_time_s);

// True (and the state skipped with a message) when the time budget is spent.
bool budget_spent(const RunOptions& o, benchmark::State& st);

}  // namespace fdc::profile
