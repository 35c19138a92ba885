// RMSNorm and LayerNorm: one block per row, 8-wide vector loads, statistics in fp32 (LayerNorm
// takes the mean first, then the centred sum of squares, as the reference does); the row is read
// again for the output pass (it sits in L1/L2 by then).
#include <algorithm>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_utils.cuh"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {
namespace {

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

template <typename T>
__global__ void norm_kernel(const NormParams p) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const T* x = static_cast<const T*>(p.x) + row * p.dim;
  T* out = static_cast<T*>(p.out) + row * p.dim;
  const int vecs = p.dim / 8;
  float mean = 0.f;
  if (p.kind == NormKind::kLayerNorm) {
    float s = 0.f;
    for (int i = threadIdx.x; i < vecs; i += blockDim.x) {
      float f[8];
      dev::unpack8<T>(reinterpret_cast<const uint4*>(x)[i], f);
#pragma unroll
      for (int j = 0; j < 8; ++j) s += f[j];
    }
    mean = block_sum(s, red) / static_cast<float>(p.dim);
  }
  float sq = 0.f;
  for (int i = threadIdx.x; i < vecs; i += blockDim.x) {
    float f[8];
    dev::unpack8<T>(reinterpret_cast<const uint4*>(x)[i], f);
#pragma unroll
    for (int j = 0; j < 8; ++j) sq += (f[j] - mean) * (f[j] - mean);
  }
  const float inv = rsqrtf(block_sum(sq, red) / static_cast<float>(p.dim) + p.eps);
  for (int i = threadIdx.x; i < vecs; i += blockDim.x) {
    float f[8], w[8], b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    dev::unpack8<T>(reinterpret_cast<const uint4*>(x)[i], f);
    dev::unpack8<T>(reinterpret_cast<const uint4*>(p.weight)[i], w);
    if (p.bias) dev::unpack8<T>(reinterpret_cast<const uint4*>(p.bias)[i], b);
    uint4 o;
    uint32_t* ow = reinterpret_cast<uint32_t*>(&o);
#pragma unroll
    for (int j = 0; j < 4; ++j)
      ow[j] = dev::pack2<T>((f[2 * j] - mean) * inv * w[2 * j] + b[2 * j],
                            (f[2 * j + 1] - mean) * inv * w[2 * j + 1] + b[2 * j + 1]);
    reinterpret_cast<uint4*>(out)[i] = o;
  }
}

}  // namespace

void launch_norm(const NormParams& p, cudaStream_t stream) {
  validate(p);
  for (const void* q : {p.x, p.weight, p.bias, static_cast<const void*>(p.out)}) require_aligned16(q, "norm");
  if (p.rows == 0) return;
  FDC_INPUT_CHECK(p.rows <= INT32_MAX, "norm: more than 2^31 rows");
  const int threads = std::clamp((p.dim / 8 + 31) / 32 * 32, 32, 512);
  const dim3 grid(static_cast<unsigned>(p.rows));
  if (p.dtype == DType::kBF16)
    norm_kernel<__nv_bfloat16><<<grid, threads, 0, stream>>>(p);
  else
    norm_kernel<__half><<<grid, threads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::ops
