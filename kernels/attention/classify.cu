#include "kernels/attention/classify.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <string>

#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn {
namespace {

// The energy of one head's dropped dims of a row, [k_lo, k_hi) of k and [v_lo, v_hi) of v, summed
// over this lane's share: the k and v dims are one range over the warp's lanes, so a head's loads
// are in flight together. 16-byte loads where both ranges allow them (ranks, offsets and strides are
// multiples of 8 elements in the engine and the benchmarks), element loads otherwise.
__device__ __forceinline__ float dropped_energy(const __nv_bfloat16* kr, int k_lo, int k_hi, const __nv_bfloat16* vr,
                                                int v_lo, int v_hi, int lane) {
  float e = 0.f;
  const int nk = k_hi - k_lo, nv = v_hi - v_lo;
  const bool vec = ((nk | nv | k_lo | v_lo) & 7) == 0 &&
                   ((reinterpret_cast<uintptr_t>(kr) | reinterpret_cast<uintptr_t>(vr)) & 15) == 0;
  if (vec) {
    const int vk = nk / 8, n = vk + nv / 8;
    for (int i = lane; i < n; i += 32) {
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(i < vk ? kr + k_lo + 8 * i : vr + v_lo + 8 * (i - vk)));
      const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 f = __bfloat1622float2(x[j]);
        e += f.x * f.x + f.y * f.y;
      }
    }
  } else {
#pragma unroll 4
    for (int i = lane; i < nk + nv; i += 32) {
      const float x = __bfloat162float(i < nk ? kr[k_lo + i] : vr[v_lo + i - nk]);
      e += x * x;
    }
  }
  return e;
}

// One block per row, its warps taking the KV heads in turn: the energy of the dims a lo token
// drops, over every KV head. index[row] = row for the sort, or 0 (the count's start) with
// zero_index. (One warp walking a row's heads one after another, as before, waited on two
// dependent loads per head: a one-row prompt of 40 heads took 39 us on an H100 with it, 13 us
// with this kernel, docs/kernels.md.)
constexpr int kImportanceWarps = 8;

__global__ void __launch_bounds__(kImportanceWarps * 32)
    importance_kernel(const __nv_bfloat16* k, int k_row, const __nv_bfloat16* v, int v_row, const HeadInfo* heads,
                      int num_heads, float* score, int* index, bool zero_index) {
  __shared__ float part[kImportanceWarps];
  const int row = static_cast<int>(blockIdx.x);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const __nv_bfloat16* kr = k + static_cast<int64_t>(row) * k_row;
  const __nv_bfloat16* vr = v + static_cast<int64_t>(row) * v_row;
  float e = 0.f;
  for (int h = warp; h < num_heads; h += kImportanceWarps) {
    const HeadInfo hd = heads[h];
    e += dropped_energy(kr + hd.k_offset, hd.rk_lo, hd.rk, vr + hd.v_offset, hd.rv_lo, hd.rv, lane);
  }
  for (int o = 16; o > 0; o >>= 1) e += __shfl_xor_sync(0xffffffffu, e, o);
  if (lane == 0) part[warp] = e;
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kImportanceWarps; ++w) sum += part[w];
    score[row] = sum;
    index[row] = zero_index ? 0 : row;
  }
}

// Ranks by counting (TokenClassifier::Method::kCount). Block (x, y) counts, for each of rows
// [x * kRankRows, +kRankRows), the rows of its segment within columns [y * kRankCols, +kRankCols)
// that come before it: larger importance, or equal importance and a lower row. Importances are
// compared as their float bits (non-negative sums of squares order as their bits), a total order,
// so the ranks of a segment are 0..n-1 exactly once. Columns are staged in shared memory and read
// by every thread alike (broadcast); blocks whose columns miss their rows' segments return at once.
constexpr int kRankRows = 128;
constexpr int kRankCols = 256;

__global__ void __launch_bounds__(kRankRows)
    rank_kernel(const uint32_t* key, const int* cu, const int* seg_of, int rows, int* rank) {
  __shared__ uint32_t tile[kRankCols];
  const int r0 = static_cast<int>(blockIdx.x) * kRankRows;
  const int c0 = static_cast<int>(blockIdx.y) * kRankCols;
  const int r_last = min(r0 + kRankRows, rows) - 1;
  const int span_lo = cu[seg_of[r0]], span_hi = cu[seg_of[r_last] + 1];
  if (c0 >= span_hi || c0 + kRankCols <= span_lo) return;
  const int c_end = min(c0 + kRankCols, rows);
  for (int i = static_cast<int>(threadIdx.x); i < kRankCols; i += kRankRows)
    tile[i] = c0 + i < c_end ? key[c0 + i] : 0u;
  __syncthreads();
  const int r = r0 + static_cast<int>(threadIdx.x);
  if (r >= rows) return;
  const int s = seg_of[r];
  const int jb = max(c0, cu[s]), je = min(c_end, cu[s + 1]);
  const uint32_t kr = key[r];
  int count = 0;
#pragma unroll 8
  for (int j = jb; j < je; ++j) {
    const uint32_t kj = tile[j - c0];
    count += (kj > kr) | ((kj == kr) & (j < r));
  }
  if (count) atomicAdd(&rank[r], count);
}

// Row r's rank in its segment picks its class and slot.
__global__ void assign_rank_kernel(const int* rank, const int* seg_of, const int* n_hi, int rows, int* cls_of,
                                   int* pos_of) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const int k = rank[r], keep = n_hi[seg_of[r]];
  cls_of[r] = k < keep ? 0 : 1;
  pos_of[r] = k < keep ? k : k - keep;
}

// Sorted position i of segment s holds row sorted[i]; its rank in the segment picks the class.
__global__ void assign_kernel(const int* sorted, const int* cu, const int* seg_of, const int* n_hi, int rows,
                              int* cls_of, int* pos_of) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const int s = seg_of[i];
  const int rank = i - cu[s];
  const int keep = n_hi[s];
  const int row = sorted[i];
  cls_of[row] = rank < keep ? 0 : 1;
  pos_of[row] = rank < keep ? rank : rank - keep;
}

}  // namespace

TokenClassifier::Method TokenClassifier::method_from_env() {
  const char* env = std::getenv("FDCSIM_CLASSIFY");
  if (!env) return Method::kCount;
  const std::string v = env;
  FDC_INPUT_CHECK(v == "count" || v == "sort", "FDCSIM_CLASSIFY: expected 'count' or 'sort', found '" << v << "'");
  return v == "sort" ? Method::kSort : Method::kCount;
}

const char* to_string(TokenClassifier::Method m) { return m == TokenClassifier::Method::kSort ? "sort" : "count"; }

TokenClassifier::~TokenClassifier() {
  cudaFree(keys_);
  cudaFree(values_);
  cudaFree(temp_);
}

void TokenClassifier::reserve(int rows, int segments, const int* cu, cudaStream_t st) {
  if (rows > cap_rows_) {
    CUDA_CHECK(cudaStreamSynchronize(st));
    CUDA_CHECK(cudaFree(keys_));
    CUDA_CHECK(cudaFree(values_));
    keys_ = nullptr;
    values_ = nullptr;
    cap_rows_ = std::max(rows, cap_rows_ * 3 / 2);
    CUDA_CHECK(cudaMalloc(&keys_, 2 * sizeof(float) * static_cast<size_t>(cap_rows_)));
    CUDA_CHECK(cudaMalloc(&values_, 2 * sizeof(int) * static_cast<size_t>(cap_rows_)));
  }
  if (!sorts(rows)) return;
  size_t need = 0;
  CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, need, keys_, keys_ + cap_rows_, values_, values_ + cap_rows_, rows, segments, cu, cu + 1, 0, 32, st));
  if (need > temp_bytes_) {
    CUDA_CHECK(cudaStreamSynchronize(st));
    CUDA_CHECK(cudaFree(temp_));
    temp_ = nullptr;
    temp_bytes_ = std::max(need, temp_bytes_ * 3 / 2);
    CUDA_CHECK(cudaMalloc(&temp_, temp_bytes_));
  }
}

void TokenClassifier::classify(const uint16_t* k, int k_row, const uint16_t* v, int v_row, const HeadInfo* heads,
                               int num_heads, int rows, const int* cu, int segments, const int* seg_of, const int* n_hi,
                               int* cls_of, int* pos_of, cudaStream_t st) {
  if (rows == 0 || segments == 0) return;
  reserve(rows, segments, cu, st);
  const bool sort = sorts(rows);
  importance_kernel<<<static_cast<unsigned>(rows), kImportanceWarps * 32, 0, st>>>(
      reinterpret_cast<const __nv_bfloat16*>(k), k_row, reinterpret_cast<const __nv_bfloat16*>(v), v_row, heads,
      num_heads, keys_, values_, !sort);
  CUDA_CHECK_LAUNCH();
  if (!sort) {
    const dim3 grid(static_cast<unsigned>((rows + kRankRows - 1) / kRankRows),
                    static_cast<unsigned>((rows + kRankCols - 1) / kRankCols));
    rank_kernel<<<grid, kRankRows, 0, st>>>(reinterpret_cast<const uint32_t*>(keys_), cu, seg_of, rows, values_);
    CUDA_CHECK_LAUNCH();
    assign_rank_kernel<<<static_cast<unsigned>((rows + 255) / 256), 256, 0, st>>>(values_, seg_of, n_hi, rows, cls_of,
                                                                                  pos_of);
    CUDA_CHECK_LAUNCH();
    return;
  }
  size_t bytes = temp_bytes_;
  CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp_, bytes, keys_, keys_ + cap_rows_, values_, values_ + cap_rows_, rows, segments, cu, cu + 1, 0, 32, st));
  assign_kernel<<<static_cast<unsigned>((rows + 255) / 256), 256, 0, st>>>(values_ + cap_rows_, cu, seg_of, n_hi, rows,
                                                                           cls_of, pos_of);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::attn
