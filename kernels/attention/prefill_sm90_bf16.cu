// Hopper prefill kernels instantiated for bf16 (compiled for sm_90a only).
#include "kernels/attention/prefill_sm90_impl.cuh"

namespace fdc::kernels::attn::detail {
void run_prefill_sm90_bf16(const PrefillParams& p, int log2_block, cudaStream_t stream) {
  run_prefill_sm90_typed<__nv_bfloat16>(p, log2_block, stream);
}
}  // namespace fdc::kernels::attn::detail
