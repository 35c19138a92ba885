// Registration of the profile's cases as Google Benchmark benchmarks (inside a worker process).
#pragma once

#include <cuda_runtime_api.h>

#include <benchmark/benchmark.h>

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

// True (and the state skipped with a message) when the time budget is spent.
bool budget_spent(const RunOptions& o, benchmark::State& st);

}  // namespace fdc::profile
