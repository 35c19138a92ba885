#include "kernels/attention/classify.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn {
namespace {

// One warp per row: the energy of the dims a lo token drops, over every KV head.
__global__ void importance_kernel(const __nv_bfloat16* k, int k_row, const __nv_bfloat16* v, int v_row,
                                  const HeadInfo* heads, int num_heads, int rows, float* score, int* index) {
  const int row = blockIdx.x * (blockDim.x / 32) + static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= rows) return;
  float e = 0.f;
  for (int h = 0; h < num_heads; ++h) {
    const HeadInfo hd = heads[h];
    const __nv_bfloat16* kr = k + static_cast<int64_t>(row) * k_row + hd.k_offset;
    const __nv_bfloat16* vr = v + static_cast<int64_t>(row) * v_row + hd.v_offset;
    for (int d = hd.rk_lo + lane; d < hd.rk; d += 32) {
      const float x = __bfloat162float(kr[d]);
      e += x * x;
    }
    for (int d = hd.rv_lo + lane; d < hd.rv; d += 32) {
      const float x = __bfloat162float(vr[d]);
      e += x * x;
    }
  }
  for (int o = 16; o > 0; o >>= 1) e += __shfl_xor_sync(0xffffffffu, e, o);
  if (lane == 0) {
    score[row] = e;
    index[row] = row;
  }
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

// Up to kSharedSortRows rows in all, the sort and the class assignment are one kernel: a block per
// segment sorts its (importance, row) pairs in shared memory (bitonic, padded to a power of two)
// and writes each row's class and slot. CUB's segmented radix sort launches a kernel per digit
// pass: about 60 us per call on an H100 whatever the rows, a fixed cost in every layer of a
// token-class prefill.
constexpr int kSortThreads = 1024;

// a goes before b: larger importance first, ties in row order (CUB's stable descending order).
__device__ __forceinline__ bool goes_before(float ka, int ia, float kb, int ib) {
  return ka > kb || (ka == kb && ia < ib);
}

__global__ void __launch_bounds__(kSortThreads)
    sort_assign_kernel(const float* score, const int* cu, const int* n_hi, int* cls_of, int* pos_of) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int s = blockIdx.x;
  const int begin = cu[s], n = cu[s + 1] - begin;
  if (n <= 0) return;
  int p = 1;
  while (p < n) p <<= 1;
  float* key = reinterpret_cast<float*>(smem);
  int* row = reinterpret_cast<int*>(key + p);
  for (int i = threadIdx.x; i < p; i += blockDim.x) {
    key[i] = i < n ? score[begin + i] : -INFINITY;  // padding sorts last (importance >= 0)
    row[i] = i < n ? i : INT_MAX;
  }
  __syncthreads();
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += blockDim.x) {
        const int o = i ^ j;
        if (o <= i) continue;
        const bool first_half = (i & k) == 0;  // this run sorts in the "goes before" order
        const bool swap =
            first_half ? goes_before(key[o], row[o], key[i], row[i]) : goes_before(key[i], row[i], key[o], row[o]);
        if (swap) {
          const float tk = key[i];
          key[i] = key[o], key[o] = tk;
          const int tr = row[i];
          row[i] = row[o], row[o] = tr;
        }
      }
      __syncthreads();
    }
  }
  const int keep = n_hi[s];
  for (int rank = threadIdx.x; rank < n; rank += blockDim.x) {
    const int r = begin + row[rank];
    cls_of[r] = rank < keep ? 0 : 1;
    pos_of[r] = rank < keep ? rank : rank - keep;
  }
}

}  // namespace

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
  if (rows <= kSharedSortRows) return;  // sorted in shared memory: no CUB workspace
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
  constexpr int kWarps = 8;
  importance_kernel<<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), kWarps * 32, 0, st>>>(
      reinterpret_cast<const __nv_bfloat16*>(k), k_row, reinterpret_cast<const __nv_bfloat16*>(v), v_row, heads,
      num_heads, rows, keys_, values_);
  CUDA_CHECK_LAUNCH();
  if (rows <= kSharedSortRows) {
    int p = 1;
    while (p < rows) p <<= 1;  // no segment is longer than all the rows
    sort_assign_kernel<<<static_cast<unsigned>(segments), kSortThreads, static_cast<size_t>(p) * 8, st>>>(
        keys_, cu, n_hi, cls_of, pos_of);
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
