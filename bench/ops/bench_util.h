// Helpers of the op and collective benchmarks: CUDA-event timing, random device data, medians.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fdc::profile {

class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start(cudaStream_t s);
  // Records the stop event, waits for it and returns the GPU time since start(), in seconds.
  double stop(cudaStream_t s);

 private:
  cudaEvent_t a_ = nullptr, b_ = nullptr;
};

// Fills `count` 16-bit elements with random bf16 values in [-1, 1] (a 1 Mi-element random block
// uploaded and repeated: the timings do not depend on the values, and large cases set up fast).
void fill_random_bf16(void* dst, size_t count, uint64_t seed);

double median(std::vector<double> v);

}  // namespace fdc::profile
