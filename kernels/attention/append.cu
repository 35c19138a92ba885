// Append kernel: copies new tokens' compressed k/v rows (packed, per-head ranks) into the hi pages
// of the paged cache. One warp per (token, KV head); 16-byte copies.
#include <cuda_runtime.h>

#include "kernels/attention/attention.h"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn {

namespace {

__global__ void append_kernel(AppendParams p, int log2_block) {
  const int token = blockIdx.x;
  const int h = blockIdx.y;
  const HeadInfo hd = p.heads[h];
  const int seq = p.seq_of[token];
  const int pos = p.pos_of[token];
  const int64_t page = p.hi_page_indices[p.hi_page_indptr[seq] + (pos >> log2_block)];
  const int slot = pos & ((1 << log2_block) - 1);
  uint4* pool = static_cast<uint4*>(p.hi_pool);
  const uint4* k = static_cast<const uint4*>(p.k);
  const uint4* v = static_cast<const uint4*>(p.v);
  const int64_t page_base = page * p.page_elems_hi;
  for (int c = threadIdx.x; c < hd.rk / 8; c += blockDim.x)
    pool[(page_base + hd.page_k_hi + static_cast<int64_t>(slot) * hd.rk) / 8 + c] =
        k[(static_cast<int64_t>(token) * p.k_row + hd.k_offset) / 8 + c];
  for (int c = threadIdx.x; c < hd.rv / 8; c += blockDim.x)
    pool[(page_base + hd.page_v_hi + static_cast<int64_t>(slot) * hd.rv) / 8 + c] =
        v[(static_cast<int64_t>(token) * p.v_row + hd.v_offset) / 8 + c];
}

int log2_exact(int x) {
  int l = 0;
  while ((1 << l) < x) ++l;
  return l;
}

}  // namespace

void launch_append(const AppendParams& p, cudaStream_t stream) {
  FDC_INPUT_CHECK(is_supported_block_size(p.block_size),
                  "append: block size " << p.block_size << " is not supported; expected 16, 32 or 64");
  FDC_INPUT_CHECK(p.num_tokens >= 0 && p.num_kv_heads >= 1, "append: num_tokens = " << p.num_tokens
                                                                                    << ", num_kv_heads = " << p.num_kv_heads);
  FDC_INPUT_CHECK(p.k_row % 8 == 0 && p.v_row % 8 == 0, "append: k_row and v_row must be multiples of 8");
  if (p.num_tokens == 0) return;
  FDC_INPUT_CHECK(p.k && p.v && p.hi_pool && p.seq_of && p.pos_of && p.hi_page_indptr && p.hi_page_indices && p.heads,
                  "append: a required pointer is null");
  append_kernel<<<dim3(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_kv_heads)), 32, 0, stream>>>(
      p, log2_exact(p.block_size));
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::attn
