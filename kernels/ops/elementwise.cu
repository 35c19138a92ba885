// Residual add and MLP activation: memory-bound element-wise kernels, 8 elements (16 bytes) per
// thread where rows allow it. Residual: the count need not be a multiple of 8 (a scalar tail).
#include <algorithm>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_utils.cuh"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t items) {
  const int64_t b = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::clamp<int64_t>(b, 1, int64_t{1} << 20));
}

template <typename T>
__global__ void residual_kernel(const ResidualParams p) {
  const int64_t vecs = p.count / 8;
  const int64_t items = vecs + p.count % 8;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < items;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (i < vecs) {
      float a[8], b[8];
      dev::unpack8<T>(reinterpret_cast<const uint4*>(p.a)[i], a);
      dev::unpack8<T>(reinterpret_cast<const uint4*>(p.b)[i], b);
      uint4 o;
      uint32_t* ow = reinterpret_cast<uint32_t*>(&o);
#pragma unroll
      for (int j = 0; j < 4; ++j) ow[j] = dev::pack2<T>(a[2 * j] + b[2 * j], a[2 * j + 1] + b[2 * j + 1]);
      reinterpret_cast<uint4*>(p.out)[i] = o;
    } else {
      const int64_t e = vecs * 8 + (i - vecs);
      const float s = static_cast<float>(static_cast<const T*>(p.a)[e]) + static_cast<float>(static_cast<const T*>(p.b)[e]);
      static_cast<T*>(p.out)[e] = dev::from_float<T>(s);
    }
  }
}

template <typename T>
__global__ void act_kernel(const ActParams p) {
  const int vecs = p.ffn / 8;
  const int64_t items = p.rows * vecs;
  const int64_t in_row = p.kind == ActKind::kSwiGlu ? 2 * static_cast<int64_t>(p.ffn) : p.ffn;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < items;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / vecs, c = (i % vecs) * 8;
    const T* in = static_cast<const T*>(p.in) + r * in_row + c;
    float g[8], y[8];
    dev::unpack8<T>(*reinterpret_cast<const uint4*>(in), g);
    if (p.kind == ActKind::kSwiGlu) {
      float u[8];
      dev::unpack8<T>(*reinterpret_cast<const uint4*>(in + p.ffn), u);
#pragma unroll
      for (int j = 0; j < 8; ++j) y[j] = g[j] / (1.f + __expf(-g[j])) * u[j];
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) y[j] = fmaxf(g[j], 0.f);
    }
    uint4 o;
    uint32_t* ow = reinterpret_cast<uint32_t*>(&o);
#pragma unroll
    for (int j = 0; j < 4; ++j) ow[j] = dev::pack2<T>(y[2 * j], y[2 * j + 1]);
    *reinterpret_cast<uint4*>(static_cast<T*>(p.out) + r * p.ffn + c) = o;
  }
}

}  // namespace

void launch_residual(const ResidualParams& p, cudaStream_t stream) {
  validate(p);
  for (const void* q : {p.a, p.b, static_cast<const void*>(p.out)}) require_aligned16(q, "residual_add");
  if (p.count == 0) return;
  const unsigned blocks = blocks_for(p.count / 8 + p.count % 8);
  if (p.dtype == DType::kBF16)
    residual_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(p);
  else
    residual_kernel<__half><<<blocks, kThreads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

void launch_act(const ActParams& p, cudaStream_t stream) {
  validate(p);
  for (const void* q : {p.in, static_cast<const void*>(p.out)}) require_aligned16(q, "mlp_act");
  if (p.rows == 0) return;
  const unsigned blocks = blocks_for(p.rows * (p.ffn / 8));
  if (p.dtype == DType::kBF16)
    act_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(p);
  else
    act_kernel<__half><<<blocks, kThreads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::ops
