// cuBLASLt / cuBLAS projections. Row-major out[m][n] = x[m][k] w[n][k]^T is, in cuBLAS's
// column-major terms, out^T (n x m, ld n) = op_T(w: k x n, ld k) * op_N(x: k x m, ld k): the "TN"
// layout cuBLAS is fastest at.
#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/common/cuda_check.h"
#include "kernels/ops/cublas_check.h"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {

const char* to_string(GemmBackend b) { return b == GemmBackend::kCublasLt ? "cublaslt" : "cublas"; }

namespace {
cudaDataType_t cuda_type(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F; }
}  // namespace

struct GemmRunner::LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~LtPlan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

GemmRunner::GemmRunner(size_t workspace_bytes) : workspace_(workspace_bytes) {
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  CUBLAS_CHECK(cublasCreate(&blas_));
  CUBLAS_CHECK(cublasSetWorkspace(blas_, workspace_.data(), workspace_.bytes()));
}

GemmRunner::~GemmRunner() {
  plans_.clear();
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

const GemmRunner::LtPlan& GemmRunner::plan(const GemmParams& p) {
  const auto key = std::make_tuple(p.m, p.n, p.k, static_cast<int>(p.dtype));
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  auto pl = std::make_unique<LtPlan>();
  const cudaDataType_t t = cuda_type(p.dtype);
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&pl->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof op_n));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl->a, t, static_cast<uint64_t>(p.k), static_cast<uint64_t>(p.n), p.k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl->b, t, static_cast<uint64_t>(p.k), static_cast<uint64_t>(p.m), p.k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl->c, t, static_cast<uint64_t>(p.n), static_cast<uint64_t>(p.m), p.n));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_.bytes();
  CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt_, pl->desc, pl->a, pl->b, pl->c, pl->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  CUBLAS_CHECK(st);
  FDC_CHECK(found > 0, "cuBLASLt has no algorithm for gemm m=" << p.m << " n=" << p.n << " k=" << p.k << " "
                                                                 << to_string(p.dtype));
  pl->algo = result.algo;
  return *(plans_[key] = std::move(pl));
}

void GemmRunner::run(const GemmParams& p, GemmBackend backend, cudaStream_t stream) {
  validate(p);
  const float one = 1.f, zero = 0.f;
  if (backend == GemmBackend::kCublasLt) {
    const LtPlan& pl = plan(p);
    CUBLAS_CHECK(cublasLtMatmul(lt_, pl.desc, &one, p.w, pl.a, p.x, pl.b, &zero, p.out, pl.c, p.out, pl.c, &pl.algo,
                                workspace_.data(), workspace_.bytes(), stream));
    return;
  }
  FDC_INPUT_CHECK(p.m <= INT32_MAX && p.n <= INT32_MAX && p.k <= INT32_MAX,
                  "gemm (cublas): dims above 2^31 are not supported");
  const cudaDataType_t t = cuda_type(p.dtype);
  CUBLAS_CHECK(cublasSetStream(blas_, stream));
  CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(p.n), static_cast<int>(p.m),
                            static_cast<int>(p.k), &one, p.w, t, static_cast<int>(p.k), p.x, t, static_cast<int>(p.k),
                            &zero, p.out, t, static_cast<int>(p.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace fdc::kernels::ops
