// Decode kernels instantiated for fp16.
#include "kernels/attention/decode_impl.cuh"

namespace fdc::kernels::attn::detail {
void run_decode_fp16(const DecodeParams& p, cudaStream_t stream) {
  run_decode_typed<__half>(p, stream);
}
}  // namespace fdc::kernels::attn::detail
