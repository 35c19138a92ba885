// Template dispatch of the decode and combine kernels for one element type.
#pragma once

#include <string>

#include "kernels/attention/decode_kernel.cuh"
#include "kernels/attention/decode_mma_kernel.cuh"
#include "kernels/attention/dispatch.h"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn::detail {

template <typename T>
void run_decode_typed(const DecodeParams& p, cudaStream_t stream) {
  const int group = p.num_q_heads / p.num_kv_heads;
  // The tile width follows each unit's own rank inside the kernel, so one instantiation per group.
  // Shared pages with slot counts that are not powers of two take the dividing kernel.
  const bool any_slots = decode_any_slots(p.cache.slots_hi, p.cache.slots_lo);
  FDC_DISPATCH_GROUP(group, G, {
    if (p.path == DecodePath::kMma) {
      // One instantiation serves every group (the group's q heads are MMA rows).
      constexpr int smem = kDecodeMmaSmemBytes;
      // Units all in width class 48 (or 96) on whole pages: the kernel of that width alone.
      const int one_width = decode_mma_one_width(p.width_classes, any_slots);
      auto kernel = any_slots         ? dev::decode_mma_kernel<T, true>
                    : one_width == 48 ? dev::decode_mma_kernel<T, false, 48>
                    : one_width == 96 ? dev::decode_mma_kernel<T, false, 96>
                                      : dev::decode_mma_kernel<T, false>;
      CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      kernel<<<static_cast<unsigned>(p.num_units), dev::kDecodeMmaThreads, smem, stream>>>(p);
    } else {
      constexpr int smem = dev::decode_smem_bytes<G>();
      auto kernel = any_slots ? dev::decode_kernel<T, G, true> : dev::decode_kernel<T, G, false>;
      CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      kernel<<<static_cast<unsigned>(p.num_units), dev::kDecodeThreads, smem, stream>>>(p);
    }
    CUDA_CHECK_LAUNCH();
    if (p.max_units_per_pair > 1) {
      dev::decode_combine_kernel<T, G><<<static_cast<unsigned>(p.num_seqs * p.num_q_heads), kMaxRank, 0, stream>>>(p);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace fdc::kernels::attn::detail
