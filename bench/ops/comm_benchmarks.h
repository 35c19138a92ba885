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

void register_comm_case(const BenchCase& c, CommContext& ctx);

}  // namespace fdc::profile
