// Append kernel: copies new tokens' compressed k/v rows (packed, per-head ranks) into the pages of
// their token class (all hi without a class list). One warp per (token, KV head); 16-byte copies.
#include <cuda_runtime.h>

#include "kernels/attention/attention.h"
#include "kernels/attention/dispatch.h"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn {

namespace {

__global__ void append_kernel(AppendParams p) {
  const int token = blockIdx.x;
  const int h = blockIdx.y;
  const HeadInfo hd = p.heads[h];
  const int seq = p.seq_of[token];
  const int pos = p.pos_of[token];
  const int cls = p.cls_of ? p.cls_of[token] : 0;
  const int slots = cls ? p.slots_lo : p.slots_hi;
  const int page_index = pos / slots;
  const int slot = pos - page_index * slots;
  const int64_t page = cls ? p.lo_page_indices[p.lo_page_indptr[seq] + page_index]
                           : p.hi_page_indices[p.hi_page_indptr[seq] + page_index];
  uint4* pool = static_cast<uint4*>(cls ? p.lo_pool : p.hi_pool);
  const uint4* k = static_cast<const uint4*>(p.k);
  const uint4* v = static_cast<const uint4*>(p.v);
  const int64_t page_base = page * (cls ? p.page_elems_lo : p.page_elems_hi);
  const int rk = head_rank_k(hd, cls), rv = head_rank_v(hd, cls);
  for (int c = threadIdx.x; c < rk / 8; c += blockDim.x)
    pool[(page_base + page_k_elem(hd, cls, slot)) / 8 + c] = k[(static_cast<int64_t>(token) * p.k_row + hd.k_offset) / 8 + c];
  for (int c = threadIdx.x; c < rv / 8; c += blockDim.x)
    pool[(page_base + page_v_elem(hd, cls, slot)) / 8 + c] = v[(static_cast<int64_t>(token) * p.v_row + hd.v_offset) / 8 + c];
}

}  // namespace

void launch_append(const AppendParams& params, cudaStream_t stream) {
  FDC_INPUT_CHECK(is_supported_block_size(params.block_size),
                  "append: block size " << params.block_size << " is not supported; expected 16, 32 or 64");
  FDC_INPUT_CHECK(params.num_tokens >= 0 && params.num_kv_heads >= 1,
                  "append: num_tokens = " << params.num_tokens << ", num_kv_heads = " << params.num_kv_heads);
  FDC_INPUT_CHECK(params.k_row % 8 == 0 && params.v_row % 8 == 0, "append: k_row and v_row must be multiples of 8");
  if (params.num_tokens == 0) return;
  AppendParams p = params;
  p.slots_hi = detail::class_slots("append", "hi", p.slots_hi, p.block_size);
  p.slots_lo = detail::class_slots("append", "lo", p.slots_lo, p.block_size);
  FDC_INPUT_CHECK(p.k && p.v && p.hi_pool && p.seq_of && p.pos_of && p.hi_page_indptr && p.hi_page_indices && p.heads,
                  "append: a required pointer is null");
  FDC_INPUT_CHECK(!p.cls_of || (p.lo_pool && p.lo_page_indptr && p.lo_page_indices),
                  "append: a class list needs the lo pool and its page table");
  append_kernel<<<dim3(static_cast<unsigned>(p.num_tokens), static_cast<unsigned>(p.num_kv_heads)), 32, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::attn
