// Template dispatch of the prefill kernel for one element type.
#pragma once

#include <string>

#include "kernels/attention/dispatch.h"
#include "kernels/attention/prefill_kernel.cuh"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn::detail {

template <typename T>
void run_prefill_typed(const PrefillParams& p, int log2_block, cudaStream_t stream) {
  FDC_DISPATCH_PREFILL_D(p.max_rank, D, {
    constexpr int smem = dev::prefill_smem_bytes<D>();
    auto kernel = dev::prefill_kernel<T, D>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<static_cast<unsigned>(p.num_tiles), dev::kPrefillThreads, smem, stream>>>(p, log2_block);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace fdc::kernels::attn::detail
