// Launchers of the layer ops on the GPU (sm_80, sm_90). Each validates its parameter struct
// (op_params.h) and throws fdc::InputError on unsupported values before launching anything.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "kernels/common/device_buffer.h"
#include "kernels/ops/op_params.h"

namespace fdc::kernels::ops {

void launch_rope_rotate(const RopeRotateParams& p, cudaStream_t stream);
void launch_norm(const NormParams& p, cudaStream_t stream);
void launch_residual(const ResidualParams& p, cudaStream_t stream);
void launch_act(const ActParams& p, cudaStream_t stream);

enum class GemmBackend { kCublasLt, kCublas };
const char* to_string(GemmBackend b);

// Projections through cuBLASLt (the production path: algorithm chosen once per shape by the
// heuristic, 32 MiB workspace) or cublasGemmEx (the reference timed beside it). Both compute
// out = x w^T in fp32 and round once. One runner per device; not thread-safe.
class GemmRunner {
 public:
  explicit GemmRunner(size_t workspace_bytes = size_t{32} << 20);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  void run(const GemmParams& p, GemmBackend backend, cudaStream_t stream);

 private:
  struct LtPlan;
  const LtPlan& plan(const GemmParams& p);

  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int>, std::unique_ptr<LtPlan>> plans_;
};

}  // namespace fdc::kernels::ops
