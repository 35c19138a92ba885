#include "kernels/attention/classify.h"

#include <cuda_bf16.h>

#include <algorithm>
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
  size_t bytes = temp_bytes_;
  CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp_, bytes, keys_, keys_ + cap_rows_, values_, values_ + cap_rows_, rows, segments, cu, cu + 1, 0, 32, st));
  assign_kernel<<<static_cast<unsigned>((rows + 255) / 256), 256, 0, st>>>(values_ + cap_rows_, cu, seg_of, n_hi, rows,
                                                                           cls_of, pos_of);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::attn
