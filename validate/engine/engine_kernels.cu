#include "validate/engine/engine_kernels.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "kernels/common/cuda_check.h"

namespace fdc::engine::kern {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, int64_t{1} << 20));
}

__device__ uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Uniform values in [-scale, scale] from a counter hash: the same seed gives the same weights.
__global__ void fill_uniform_kernel(bf16* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(i));
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = __float2bfloat16((2.f * u - 1.f) * scale);
  }
}

__global__ void fill_const_kernel(bf16* p, int64_t n, float v) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16(v);
}

// out[t] = embed[ids[t]] (+ pos_table[positions[t] + 2]: OPT's learned positions are offset by 2).
__global__ void embed_kernel(const int* ids, const int* positions, const bf16* embed, const bf16* pos_table,
                             bf16* out, int tokens, int dim) {
  const int64_t n = static_cast<int64_t>(tokens) * dim;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / dim, c = i % dim;
    float v = __bfloat162float(embed[static_cast<int64_t>(ids[t]) * dim + c]);
    if (pos_table) v += __bfloat162float(pos_table[static_cast<int64_t>(positions[t] + 2) * dim + c]);
    out[i] = __float2bfloat16(v);
  }
}

// x[r][c] += bias[c]
__global__ void bias_kernel(bf16* x, const bf16* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16(__bfloat162float(x[i]) + __bfloat162float(bias[i % cols]));
}

// dst[e] = src[rows[e]]
__global__ void gather_rows_kernel(const bf16* src, const int* rows, bf16* dst, int n_rows, int dim) {
  const int64_t n = static_cast<int64_t>(n_rows) * dim;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t e = i / dim, c = i % dim;
    dst[i] = src[static_cast<int64_t>(rows[e]) * dim + c];
  }
}

// Greedy sampling: one block per row; the lowest index wins ties; NaN logits never win.
__global__ void argmax_kernel(const bf16* logits, int vocab, int* out) {
  const bf16* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float best = -INFINITY;
  int idx = 0x7fffffff;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = __bfloat162float(row[i]);
    if (v > best || (v == best && i < idx)) {
      best = v;
      idx = i;
    }
  }
  __shared__ float sv[kThreads];
  __shared__ int si[kThreads];
  sv[threadIdx.x] = best;
  si[threadIdx.x] = idx;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = sv[threadIdx.x + s];
      const int oi = si[threadIdx.x + s];
      if (ov > sv[threadIdx.x] || (ov == sv[threadIdx.x] && oi < si[threadIdx.x])) {
        sv[threadIdx.x] = ov;
        si[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = si[0] == 0x7fffffff ? 0 : si[0];
}


__global__ void scatter_ids_kernel(const int* src, const int* index, int n, int* dst) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[index[i]] = src[i];
}

}  // namespace

void scatter_ids(const int* src, const int* index, int n, int* dst, cudaStream_t st) {
  if (n == 0) return;
  scatter_ids_kernel<<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0, st>>>(src, index, n, dst);
  CUDA_CHECK_LAUNCH();
}

void fill_uniform(uint16_t* p, int64_t n, uint64_t seed, float scale, cudaStream_t st) {
  if (n == 0) return;
  fill_uniform_kernel<<<grid_for(n), kThreads, 0, st>>>(reinterpret_cast<bf16*>(p), n, seed, scale);
  CUDA_CHECK_LAUNCH();
}

void fill_const(uint16_t* p, int64_t n, float v, cudaStream_t st) {
  if (n == 0) return;
  fill_const_kernel<<<grid_for(n), kThreads, 0, st>>>(reinterpret_cast<bf16*>(p), n, v);
  CUDA_CHECK_LAUNCH();
}

void embed(const int* ids, const int* positions, const uint16_t* table, const uint16_t* pos_table, uint16_t* out,
           int tokens, int dim, cudaStream_t st) {
  if (tokens == 0) return;
  embed_kernel<<<grid_for(static_cast<int64_t>(tokens) * dim), kThreads, 0, st>>>(
      ids, positions, reinterpret_cast<const bf16*>(table), reinterpret_cast<const bf16*>(pos_table),
      reinterpret_cast<bf16*>(out), tokens, dim);
  CUDA_CHECK_LAUNCH();
}

void add_bias(uint16_t* x, const uint16_t* bias, int64_t rows, int64_t cols, cudaStream_t st) {
  if (rows * cols == 0) return;
  bias_kernel<<<grid_for(rows * cols), kThreads, 0, st>>>(reinterpret_cast<bf16*>(x),
                                                          reinterpret_cast<const bf16*>(bias), rows, cols);
  CUDA_CHECK_LAUNCH();
}

void gather_rows(const uint16_t* src, const int* rows, uint16_t* dst, int n_rows, int dim, cudaStream_t st) {
  if (n_rows == 0) return;
  gather_rows_kernel<<<grid_for(static_cast<int64_t>(n_rows) * dim), kThreads, 0, st>>>(
      reinterpret_cast<const bf16*>(src), rows, reinterpret_cast<bf16*>(dst), n_rows, dim);
  CUDA_CHECK_LAUNCH();
}

void argmax_rows(const uint16_t* logits, int rows, int vocab, int* out, cudaStream_t st) {
  if (rows == 0) return;
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, st>>>(reinterpret_cast<const bf16*>(logits), vocab, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::engine::kern
