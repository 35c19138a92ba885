// Multi-GPU benchmark cases (NCCL builds only): state of one rank.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "bench/ops/profile_plan.h"
#include "bench/ops/runner.h"
#include "kernels/comm/nccl_comm.h"
#include "kernels/common/device_buffer.h"

namespace fdc::profile {

struct CommContext {
  CommContext(int rank, int gpus, const std::string& token, const RunOptions& o);
  ~CommContext();
  CommContext(const CommContext&) = delete;
  CommContext& operator=(const CommContext&) = delete;

  RunOptions opts;
  cudaStream_t stream = nullptr;
  std::unique_ptr<kernels::comm::NcclComm> comm;
  kernels::DeviceBuffer<float> scratch_f;                 // max-reduction of timings
  kernels::DeviceBuffer<unsigned long long> mismatches;  // check counter
};

// repeats > 1: the case is one of that many registrations of it (RunOptions::repetitions, which
// the caller interleaves), each run recording the counter `fdc_repeats` = repeats so that `fdcsim
// fit` takes their median.
void register_comm_case(const BenchCase& c, CommContext& ctx, int repeats = 1);

}  // namespace fdc::profile
