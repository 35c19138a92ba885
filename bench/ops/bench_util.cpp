#include "bench/ops/bench_util.h"

#include <algorithm>
#include <random>

#include "kernels/common/cuda_check.h"
#include "kernels/common/dtype.h"

namespace fdc::profile {

EventTimer::EventTimer() {
  CUDA_CHECK(cudaEventCreate(&a_));
  CUDA_CHECK(cudaEventCreate(&b_));
}
EventTimer::~EventTimer() {
  cudaEventDestroy(a_);
  cudaEventDestroy(b_);
}
void EventTimer::start(cudaStream_t s) { CUDA_CHECK(cudaEventRecord(a_, s)); }
double EventTimer::stop(cudaStream_t s) {
  CUDA_CHECK(cudaEventRecord(b_, s));
  CUDA_CHECK(cudaEventSynchronize(b_));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, a_, b_));
  return static_cast<double>(ms) * 1e-3;
}

void fill_random_bf16(void* dst, size_t count, uint64_t seed) {
  const size_t chunk = std::min<size_t>(count, size_t{1} << 20);
  if (chunk == 0) return;
  std::vector<uint16_t> host(chunk);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& x : host) x = kernels::float_to_bf16_bits(u(rng));
  auto* d = static_cast<uint16_t*>(dst);
  for (size_t at = 0; at < count; at += chunk)
    CUDA_CHECK(cudaMemcpy(d + at, host.data(), std::min(chunk, count - at) * 2, cudaMemcpyHostToDevice));
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace fdc::profile
