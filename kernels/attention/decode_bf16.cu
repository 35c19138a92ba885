// Decode kernels instantiated for bf16.
#include "kernels/attention/decode_impl.cuh"

namespace fdc::kernels::attn::detail {
void run_decode_bf16(const DecodeParams& p, int log2_block, cudaStream_t stream) {
  run_decode_typed<__nv_bfloat16>(p, log2_block, stream);
}
}  // namespace fdc::kernels::attn::detail
