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
  // Shared pages with slot counts that are not powers of two take the kernels that find pages by
  // division (or by slot_page, when FDCSIM_DECODE_SLOT_INDEX says so).
  const bool any_slots = decode_any_slots(p.cache.slots_hi, p.cache.slots_lo);
  const SlotIndex uneven = decode_uneven_slot_index();  // validates FDCSIM_DECODE_SLOT_INDEX at every launch
  const SlotIndex index = any_slots ? uneven : SlotIndex::kShift;
  const SlotDivisors sd{slot_divisor(p.cache.slots_hi), slot_divisor(p.cache.slots_lo)};
  FDC_DISPATCH_GROUP(group, G, {
    if (p.path == DecodePath::kMma) {
      // One instantiation serves every group (the group's q heads are MMA rows).
      constexpr int smem = kDecodeMmaSmemBytes;
      // Units all in width class 48 (or 96) on whole pages: the kernel of that width alone.
      const int one_width = decode_mma_one_width(p.width_classes, any_slots);
      auto kernel = index == SlotIndex::kMultiply ? dev::decode_mma_kernel<T, SlotIndex::kMultiply>
                    : index == SlotIndex::kDivide ? dev::decode_mma_kernel<T, SlotIndex::kDivide>
                    : one_width == 48             ? dev::decode_mma_kernel<T, SlotIndex::kShift, 48>
                    : one_width == 96             ? dev::decode_mma_kernel<T, SlotIndex::kShift, 96>
                                                  : dev::decode_mma_kernel<T, SlotIndex::kShift>;
      CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      kernel<<<static_cast<unsigned>(p.num_units), dev::kDecodeMmaThreads, smem, stream>>>(p, sd);
    } else {
      constexpr int smem = dev::decode_smem_bytes<G>();
      auto kernel = index == SlotIndex::kMultiply ? dev::decode_kernel<T, G, SlotIndex::kMultiply>
                    : index == SlotIndex::kDivide ? dev::decode_kernel<T, G, SlotIndex::kDivide>
                                                  : dev::decode_kernel<T, G, SlotIndex::kShift>;
      CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
      kernel<<<static_cast<unsigned>(p.num_units), dev::kDecodeThreads, smem, stream>>>(p, sd);
    }
    CUDA_CHECK_LAUNCH();
    if (p.max_units_per_pair > 1) {
      dev::decode_combine_kernel<T, G><<<static_cast<unsigned>(p.num_seqs * p.num_q_heads), kMaxRank, 0, stream>>>(p);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace fdc::kernels::attn::detail
