// Prefill kernels instantiated for fp16.
#include "kernels/attention/prefill_impl.cuh"

namespace fdc::kernels::attn::detail {
void run_prefill_fp16(const PrefillParams& p, int log2_block, cudaStream_t stream) {
  run_prefill_typed<__half>(p, log2_block, stream);
}
}  // namespace fdc::kernels::attn::detail
