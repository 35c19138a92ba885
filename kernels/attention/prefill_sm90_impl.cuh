// Template dispatch of the Hopper (wgmma) prefill kernel for one element type. Built only into the
// sm_90a objects (see kernels/CMakeLists.txt); launch.cu decides when to call it.
#pragma once

#include "kernels/attention/dispatch.h"
#include "kernels/attention/prefill_sm90_kernel.cuh"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn::detail {

template <typename T>
void run_prefill_sm90_typed(const PrefillParams& p, int log2_block, cudaStream_t stream) {
  FDC_DISPATCH_PREFILL_D(p.max_rank, D, {
    constexpr int BC = dev::sm90::tile_k<D>();
    constexpr int smem = dev::sm90::smem_bytes<D, BC>();
    auto kernel = p.kv_maps ? dev::sm90::prefill_kernel<T, D, BC, true> : dev::sm90::prefill_kernel<T, D, BC, false>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    kernel<<<static_cast<unsigned>(p.num_tiles), dev::sm90::kThreads, smem, stream>>>(p, log2_block);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace fdc::kernels::attn::detail
