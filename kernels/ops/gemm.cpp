// cuBLASLt / cuBLAS projections. Row-major out[m][n] = x[m][k] w[n][k]^T is, in cuBLAS's
// column-major terms, out^T (n x m, ld n) = op_T(w: k x n, ld k) * op_N(x: k x m, ld k): the "TN"
// layout cuBLAS is fastest at.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "kernels/common/cuda_check.h"
#include "kernels/ops/cublas_check.h"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {

const char* to_string(GemmBackend b) { return b == GemmBackend::kCublasLt ? "cublaslt" : "cublas"; }

const char* to_string(GemmRunner::Planning p) {
  switch (p) {
    case GemmRunner::Planning::kTuned:
      return "tuned";
    case GemmRunner::Planning::kTunedNeighbours:
      return "tuned-neighbours";
    case GemmRunner::Planning::kBucketed:
      return "bucketed";
    case GemmRunner::Planning::kExact:
      return "exact";
  }
  return "?";
}

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

GemmRunner::Planning GemmRunner::planning_from_env() {
  const char* env = std::getenv("FDCSIM_GEMM_PLANNING");
  if (!env) return Planning::kTuned;
  const std::string v = env;
  FDC_INPUT_CHECK(
      v == "tuned" || v == "tuned-neighbours" || v == "bucketed" || v == "exact",
      "FDCSIM_GEMM_PLANNING: expected 'tuned', 'tuned-neighbours', 'bucketed' or 'exact', found '" << v << "'");
  return v == "exact"              ? Planning::kExact
         : v == "bucketed"         ? Planning::kBucketed
         : v == "tuned-neighbours" ? Planning::kTunedNeighbours
                                   : Planning::kTuned;
}

GemmRunner::GemmRunner(size_t workspace_bytes) : GemmRunner(workspace_bytes, planning_from_env()) {}

GemmRunner::GemmRunner(size_t workspace_bytes, Planning planning) : workspace_(workspace_bytes), planning_(planning) {
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  CUBLAS_CHECK(cublasCreate(&blas_));
  CUBLAS_CHECK(cublasSetWorkspace(blas_, workspace_.data(), workspace_.bytes()));
}

GemmRunner::~GemmRunner() {
  plans_.clear();
  if (tune_start_) cudaEventDestroy(tune_start_);
  if (tune_end_) cudaEventDestroy(tune_end_);
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

namespace {

// Descriptor and layouts of out = x w^T with m rows (TN in cuBLAS's column-major terms).
void describe(cublasLtMatmulDesc_t* desc, cublasLtMatrixLayout_t* a, cublasLtMatrixLayout_t* b,
              cublasLtMatrixLayout_t* c, int64_t m, int64_t n, int64_t k, DType dtype) {
  const cudaDataType_t t = cuda_type(dtype);
  CUBLAS_CHECK(cublasLtMatmulDescCreate(desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof op_t));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(*desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof op_n));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(a, t, static_cast<uint64_t>(k), static_cast<uint64_t>(n), k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(b, t, static_cast<uint64_t>(k), static_cast<uint64_t>(m), k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(c, t, static_cast<uint64_t>(n), static_cast<uint64_t>(m), n));
}

using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, cublasStatus_t (*)(cublasLtMatmulPreference_t)>;

Preference preference(uint64_t workspace_bytes) {
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  Preference own(pref, cublasLtMatmulPreferenceDestroy);
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                    sizeof workspace_bytes));
  return own;
}

}  // namespace

void GemmRunner::launch(const LtPlan& pl, const cublasLtMatmulAlgo_t& algo, const GemmParams& p,
                        cudaStream_t stream) {
  const float one = 1.f, zero = 0.f;
  CUBLAS_CHECK(cublasLtMatmul(lt_, pl.desc, &one, p.w, pl.a, p.x, pl.b, &zero, p.out, pl.c, p.out, pl.c, &algo,
                              workspace_.data(), workspace_.bytes(), stream));
}

// The heuristic's answers for the bucket's row count (with kTunedNeighbours also those for the
// next bucket's, which at small row counts often hold a faster kernel), each timed at p's rows
// (exact: p's descriptor and layouts); the fastest, or the bucket's first answer unless another is
// over 1% faster.
cublasLtMatmulAlgo_t GemmRunner::tune(const LtPlan& bucket, const LtPlan* next, const LtPlan& exact,
                                      const GemmParams& p, cudaStream_t stream) {
  const Preference pref = preference(workspace_.bytes());
  cublasLtMatmulHeuristicResult_t results[2 * kTuneCandidates]{};
  int found = 0;
  ++heuristic_queries_;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, bucket.desc, bucket.a, bucket.b, bucket.c, bucket.c, pref.get(),
                                              kTuneCandidates, results, &found));
  FDC_CHECK(found > 0, "cuBLASLt has no algorithm for gemm m=" << p.m << " n=" << p.n << " k=" << p.k << " "
                                                                 << to_string(p.dtype));
  if (next) {
    cublasLtMatmulHeuristicResult_t more[kTuneCandidates]{};
    int found_more = 0;
    ++heuristic_queries_;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, next->desc, next->a, next->b, next->c, next->c, pref.get(),
                                                kTuneCandidates, more, &found_more));
    const int own = found;
    for (int j = 0; j < found_more; ++j) {
      const auto same = [&](const cublasLtMatmulHeuristicResult_t& r) {
        return std::memcmp(r.algo.data, more[j].algo.data, sizeof r.algo.data) == 0;
      };
      if (std::none_of(results, results + own, same)) results[found++] = more[j];
    }
  }
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone || found == 1) return results[0].algo;
  if (!tune_start_) {
    CUDA_CHECK(cudaEventCreate(&tune_start_));
    CUDA_CHECK(cudaEventCreate(&tune_end_));
  }
  int best = -1;
  float best_ms = 0, first_ms = -1;
  for (int i = 0; i < found; ++i) {
    cublasLtMatmulHeuristicResult_t check{};
    if (results[i].state != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulAlgoCheck(lt_, exact.desc, exact.a, exact.b, exact.c, exact.c, &results[i].algo, &check) !=
            CUBLAS_STATUS_SUCCESS ||
        check.workspaceSize > workspace_.bytes())
      continue;
    launch(exact, results[i].algo, p, stream);  // loads the kernel
    CUDA_CHECK(cudaEventRecord(tune_start_, stream));
    for (int r = 0; r < kTuneLaunches; ++r) launch(exact, results[i].algo, p, stream);
    CUDA_CHECK(cudaEventRecord(tune_end_, stream));
    CUDA_CHECK(cudaEventSynchronize(tune_end_));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, tune_start_, tune_end_));
    if (i == 0) first_ms = ms;
    if (best < 0 || ms < best_ms) {
      best = i;
      best_ms = ms;
    }
  }
  if (best < 0) return results[0].algo;  // none holds for these rows: the caller asks again for them
  ++tuned_buckets_;
  if (best == 0 || (first_ms >= 0 && best_ms >= 0.99f * first_ms)) return results[0].algo;
  ++retuned_buckets_;
  return results[best].algo;
}

const GemmRunner::LtPlan& GemmRunner::plan(const GemmParams& p, cudaStream_t stream) {
  const int dt = static_cast<int>(p.dtype);
  const Key key = std::make_tuple(p.m, p.n, p.k, dt);
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  auto pl = std::make_unique<LtPlan>();
  describe(&pl->desc, &pl->a, &pl->b, &pl->c, p.m, p.n, p.k, p.dtype);

  // The heuristic's first choice for m rows (desc and layouts of that m).
  auto heuristic = [&](cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                       cublasLtMatrixLayout_t c, int64_t m) {
    const Preference pref = preference(workspace_.bytes());
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    ++heuristic_queries_;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, desc, a, b, c, c, pref.get(), 1, &result, &found));
    FDC_CHECK(found > 0, "cuBLASLt has no algorithm for gemm m=" << m << " n=" << p.n << " k=" << p.k << " "
                                                                   << to_string(p.dtype));
    return result.algo;
  };

  bool chosen = false;
  if (planning_ != Planning::kExact) {
    const int64_t bucket = gemm_row_bucket(p.m);
    const Key bkey = std::make_tuple(bucket, p.n, p.k, dt);
    auto b = bucket_algos_.find(bkey);
    if (b == bucket_algos_.end()) {
      LtPlan bp, np;
      describe(&bp.desc, &bp.a, &bp.b, &bp.c, bucket, p.n, p.k, p.dtype);
      const bool neighbours = planning_ == Planning::kTunedNeighbours;
      if (neighbours) describe(&np.desc, &np.a, &np.b, &np.c, gemm_row_bucket(bucket + 1), p.n, p.k, p.dtype);
      const cublasLtMatmulAlgo_t algo = planning_ == Planning::kTuned || neighbours
                                            ? tune(bp, neighbours ? &np : nullptr, *pl, p, stream)
                                            : heuristic(bp.desc, bp.a, bp.b, bp.c, bucket);
      b = bucket_algos_.emplace(bkey, algo).first;
    }
    // The bucket's algorithm must also hold for these exact rows.
    cublasLtMatmulHeuristicResult_t check{};
    if (cublasLtMatmulAlgoCheck(lt_, pl->desc, pl->a, pl->b, pl->c, pl->c, &b->second, &check) ==
            CUBLAS_STATUS_SUCCESS &&
        check.workspaceSize <= workspace_.bytes()) {
      pl->algo = b->second;
      chosen = true;
    }
  }
  if (!chosen) pl->algo = heuristic(pl->desc, pl->a, pl->b, pl->c, p.m);
  return *(plans_[key] = std::move(pl));
}

void GemmRunner::warm(const GemmParams& p, int64_t max_m, cudaStream_t stream) {
  FDC_INPUT_CHECK(max_m >= 1, "gemm warm-up: max_m must be positive, found " << max_m);
  GemmParams q = p;
  for (int64_t b = 8;; b = gemm_row_bucket(b + 1)) {
    q.m = std::min(b, max_m);
    run(q, GemmBackend::kCublasLt, stream);
    if (b >= max_m) break;
  }
}

void GemmRunner::run(const GemmParams& p, GemmBackend backend, cudaStream_t stream) {
  validate(p);
  const float one = 1.f, zero = 0.f;
  if (backend == GemmBackend::kCublasLt) {
    const LtPlan& pl = plan(p, stream);
    launch(pl, pl.algo, p, stream);
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
