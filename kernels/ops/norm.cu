// RMSNorm and LayerNorm: one block per row, the row read once into registers (VPT 8-wide vectors
// per thread, as few as the row allows: threads = the row's vectors up to 1024), statistics in fp32
// (LayerNorm takes the mean first, then the centred sum of squares, as the reference does), then the
// output written from the registers. Every thread has its loads in flight at once, and a row of up
// to 8192 elements is one vector per thread: the time follows the bytes moved (an earlier version
// capped blocks at 512 threads and read the row twice; a 5120-wide row took two dependent loads per
// thread and the time stepped with the width, not the bytes). Loading the weight with the row
// (before the reductions) measured no faster for few rows and 7-30% slower for 544-4096 rows on an
// H100 (docs/kernels.md, "Two kernel variants that lost (2026-12-06)").
#include <algorithm>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_utils.cuh"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {
namespace {

constexpr int kMaxThreads = 1024;

__device__ float block_sum(float v, float* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // red is reused by consecutive calls
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = 0.f;
  for (int w = 0; w < warps; ++w) t += red[w];
  return t;
}

// VPT: vectors of 8 per thread; vector i of thread t is t + i * blockDim.x.
template <typename T, int VPT>
__global__ void __launch_bounds__(kMaxThreads) norm_kernel(const NormParams p) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const uint4* x = reinterpret_cast<const uint4*>(static_cast<const T*>(p.x) + row * p.dim);
  uint4* out = reinterpret_cast<uint4*>(static_cast<T*>(p.out) + row * p.dim);
  const int vecs = p.dim / 8;
  // The row in registers: as fp32 up to 4 vectors a thread; 8 vectors (rows over 32768 wide) stay
  // packed (32 registers, unpacked at each use), since 64 fp32 values do not fit the 64 registers a
  // thread of a 1024-thread block has and spilled to local memory.
  constexpr bool kPacked = VPT >= 8;
  float f[kPacked ? 1 : VPT][8];
  uint4 raw[kPacked ? VPT : 1];
  const auto row_vec = [&](int i, float(&g)[8]) {  // vector i of this thread, as fp32
    if constexpr (kPacked) {
      dev::unpack8<T>(raw[i], g);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) g[j] = f[i][j];
    }
  };
#pragma unroll
  for (int i = 0; i < VPT; ++i) {
    const int v = threadIdx.x + i * blockDim.x;
    if constexpr (kPacked) {
      raw[i] = v < vecs ? x[v] : make_uint4(0, 0, 0, 0);  // zero bits: 0.0 in bf16 and fp16
    } else if (v < vecs) {
      dev::unpack8<T>(x[v], f[i]);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) f[i][j] = 0.f;
    }
  }
  float mean = 0.f;
  if (p.kind == NormKind::kLayerNorm) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < VPT; ++i) {
      float g[8];
      row_vec(i, g);
#pragma unroll
      for (int j = 0; j < 8; ++j) s += g[j];
    }
    mean = block_sum(s, red) / static_cast<float>(p.dim);
  }
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; ++i) {
    if (threadIdx.x + i * blockDim.x >= vecs) continue;  // padding lanes: (0 - mean)^2 must not count
    float g[8];
    row_vec(i, g);
#pragma unroll
    for (int j = 0; j < 8; ++j) sq += (g[j] - mean) * (g[j] - mean);
  }
  const float inv = rsqrtf(block_sum(sq, red) / static_cast<float>(p.dim) + p.eps);
#pragma unroll
  for (int i = 0; i < VPT; ++i) {
    const int v = threadIdx.x + i * blockDim.x;
    if (v >= vecs) continue;
    float g[8], w[8], b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    row_vec(i, g);
    dev::unpack8<T>(reinterpret_cast<const uint4*>(p.weight)[v], w);
    if (p.bias) dev::unpack8<T>(reinterpret_cast<const uint4*>(p.bias)[v], b);
    uint4 o;
    uint32_t* ow = reinterpret_cast<uint32_t*>(&o);
#pragma unroll
    for (int j = 0; j < 4; ++j)
      ow[j] = dev::pack2<T>((g[2 * j] - mean) * inv * w[2 * j] + b[2 * j],
                            (g[2 * j + 1] - mean) * inv * w[2 * j + 1] + b[2 * j + 1]);
    out[v] = o;
  }
}

template <typename T>
void launch_typed(const NormParams& p, int vpt, int threads, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.rows));
  switch (vpt) {
    case 1:
      norm_kernel<T, 1><<<grid, threads, 0, stream>>>(p);
      break;
    case 2:
      norm_kernel<T, 2><<<grid, threads, 0, stream>>>(p);
      break;
    case 4:
      norm_kernel<T, 4><<<grid, threads, 0, stream>>>(p);
      break;
    default:
      norm_kernel<T, 8><<<grid, threads, 0, stream>>>(p);
      break;
  }
}

}  // namespace

void launch_norm(const NormParams& p, cudaStream_t stream) {
  validate(p);  // dim: a multiple of 8 up to 65536, so at most 8 vectors per thread of 1024
  for (const void* q : {p.x, p.weight, p.bias, static_cast<const void*>(p.out)}) require_aligned16(q, "norm");
  if (p.rows == 0) return;
  FDC_INPUT_CHECK(p.rows <= INT32_MAX, "norm: more than 2^31 rows");
  const int vecs = p.dim / 8;
  int vpt = 1;
  while (vpt * kMaxThreads < vecs) vpt *= 2;
  const int threads = std::max(32, ((vecs + vpt - 1) / vpt + 31) / 32 * 32);
  if (p.dtype == DType::kBF16)
    launch_typed<__nv_bfloat16>(p, vpt, threads, stream);
  else
    launch_typed<__half>(p, vpt, threads, stream);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::ops
