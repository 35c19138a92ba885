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

// Projections through cuBLASLt (the production path, 32 MiB workspace) or cublasGemmEx (the
// reference timed beside it). Both compute out = x w^T in fp32 and round once. cuBLASLt's
// algorithm is chosen by its heuristic once per shape and row bucket (gemm_row_bucket in
// op_params.h) and checked against each exact row count before use (an algorithm the check
// refuses gets a heuristic of its own); FDCSIM_GEMM_PLANNING=exact in the environment asks the
// heuristic for every distinct row count instead (the behaviour before buckets, kept to compare).
// One runner per device; not thread-safe.
class GemmRunner {
 public:
  enum class Planning { kBucketed, kExact };

  explicit GemmRunner(size_t workspace_bytes = size_t{32} << 20);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  void run(const GemmParams& p, GemmBackend backend, cudaStream_t stream);

  // Chooses the algorithm of every row bucket up to max_m rows for p's (n, k, dtype) and runs each
  // once (p.m is ignored; p's buffers must hold max_m rows), so that no heuristic query and no
  // first launch of a cuBLASLt kernel lands in a timed iteration.
  void warm(const GemmParams& p, int64_t max_m, cudaStream_t stream);

  Planning planning() const { return planning_; }
  // Heuristic queries made so far (one per shape and bucket, plus refused checks).
  int64_t heuristic_queries() const { return heuristic_queries_; }

 private:
  struct LtPlan;
  const LtPlan& plan(const GemmParams& p);

  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  Planning planning_ = Planning::kBucketed;
  int64_t heuristic_queries_ = 0;
  using Key = std::tuple<int64_t, int64_t, int64_t, int>;  // m, n, k, dtype
  std::map<Key, std::unique_ptr<LtPlan>> plans_;           // exact row counts
  std::map<Key, cublasLtMatmulAlgo_t> bucket_algos_;       // m = the bucket
};

}  // namespace fdc::kernels::ops
