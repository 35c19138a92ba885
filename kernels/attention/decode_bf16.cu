// Decode kernels instantiated for bf16.
#include "kernels/attention/decode_impl.cuh"

namespace fdc::kernels::attn::detail {
void run_decode_bf16(const DecodeParams& p, cudaStream_t stream) {
  run_decode_typed<__nv_bfloat16>(p, stream);
}
}  // namespace fdc::kernels::attn::detail
