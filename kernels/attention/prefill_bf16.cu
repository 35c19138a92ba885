// Prefill kernels instantiated for bf16.
#include "kernels/attention/prefill_impl.cuh"

namespace fdc::kernels::attn::detail {
void run_prefill_bf16(const PrefillParams& p, int log2_block, cudaStream_t stream) {
  run_prefill_typed<__nv_bfloat16>(p, log2_block, stream);
}
}  // namespace fdc::kernels::attn::detail
