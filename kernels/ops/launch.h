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
// algorithm is chosen once per shape and row bucket (gemm_row_bucket in op_params.h) and checked
// against each exact row count before use (an algorithm the check refuses gets a heuristic of its
// own). The choice, by FDCSIM_GEMM_PLANNING in the environment:
//  - tuned (default): the heuristic's first kTuneCandidates answers for the bucket are each timed
//    at the row count that first meets the bucket (one untimed launch, then kTuneLaunches timed
//    ones on the caller's stream) and the fastest is kept; the heuristic's first answer stays
//    unless another is over 1% faster. Its first answer alone is up to 36% slower than
//    cublasGemmEx at some row counts (H100: 2100 rows of Llama-2-13B's MLP down projection, 31%).
//    Measured side by side on an H100 (docs/validate.md, "GEMM algorithms chosen by timing"): 11
//    of 88 cases over 5% faster, 4 over 5% slower (the LM head at 2048 and 4096 rows, the MLP up
//    projection at 4096), where this short timing misjudged the candidates.
//  - tuned-neighbours: as tuned, with the heuristic's first kTuneCandidates answers for the next
//    bucket's row count timed too (those already among the bucket's are not timed twice). On an
//    H100 (docs/validate.md, "The next bucket's answers too"): output projections at 1-64 rows up
//    to 11% faster, a few cases above 64 rows up to 7% slower; opt-in until measured on an H200.
//  - bucketed: the heuristic's first answer for the bucket (the choice before tuning).
//  - exact: the heuristic's first answer for every distinct row count (the choice before buckets).
// A stream being captured into a CUDA graph is never synchronised: its buckets take the
// heuristic's first answer. One runner per device; not thread-safe.
class GemmRunner {
 public:
  enum class Planning { kTuned, kTunedNeighbours, kBucketed, kExact };
  static constexpr int kTuneCandidates = 8;
  static constexpr int kTuneLaunches = 3;

  explicit GemmRunner(size_t workspace_bytes = size_t{32} << 20);
  GemmRunner(size_t workspace_bytes, Planning planning);  // this planning, whatever the environment says
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  void run(const GemmParams& p, GemmBackend backend, cudaStream_t stream);

  // Chooses the algorithm of every row bucket up to max_m rows for p's (n, k, dtype) and runs each
  // once (p.m is ignored; p's buffers must hold max_m rows), so that no heuristic query and no
  // first launch of a cuBLASLt kernel lands in a timed iteration.
  void warm(const GemmParams& p, int64_t max_m, cudaStream_t stream);

  Planning planning() const { return planning_; }
  // The planning FDCSIM_GEMM_PLANNING asks for (tuned when unset); throws on another value.
  static Planning planning_from_env();
  // Heuristic queries made so far (one per shape and bucket, two with tuned-neighbours, plus refused
  // checks).
  int64_t heuristic_queries() const { return heuristic_queries_; }
  // Buckets whose algorithm was chosen by timing, and of those, where it is not the heuristic's
  // first answer.
  int64_t tuned_buckets() const { return tuned_buckets_; }
  int64_t retuned_buckets() const { return retuned_buckets_; }

 private:
  struct LtPlan;
  const LtPlan& plan(const GemmParams& p, cudaStream_t stream);
  cublasLtMatmulAlgo_t tune(const LtPlan& bucket, const LtPlan* next, const LtPlan& exact, const GemmParams& p,
                            cudaStream_t stream);
  void launch(const LtPlan& pl, const cublasLtMatmulAlgo_t& algo, const GemmParams& p, cudaStream_t stream);

  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  Planning planning_;
  int64_t heuristic_queries_ = 0, tuned_buckets_ = 0, retuned_buckets_ = 0;
  cudaEvent_t tune_start_ = nullptr, tune_end_ = nullptr;
  using Key = std::tuple<int64_t, int64_t, int64_t, int>;  // m, n, k, dtype
  std::map<Key, std::unique_ptr<LtPlan>> plans_;           // exact row counts
  std::map<Key, cublasLtMatmulAlgo_t> bucket_algos_;       // m = the bucket
};

const char* to_string(GemmRunner::Planning p);

}  // namespace fdc::kernels::ops
