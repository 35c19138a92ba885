// A paged KV cache on the device (pools as 16-bit patterns, page tables, head table) and the
// PagedCacheParams the kernels take, shared by the GPU tests and the benchmark. Empty page-index
// lists get one dummy entry, so no buffer has zero size.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/attention/attention.h"
#include "kernels/attention/layout.h"
#include "kernels/attention/reference.h"
#include "kernels/common/device_buffer.h"

namespace fdc::kernels::attn {

struct DevicePagedCache {
  DeviceBuffer<uint16_t> hi, lo;                                   // [pages][page_elems] per class
  DeviceBuffer<int> hi_indptr, hi_indices, lo_indptr, lo_indices;  // the page table
  DeviceBuffer<HeadInfo> heads;                                    // [num_kv_heads]

  DevicePagedCache(const HeadLayout& L, const PageTable& pt, DeviceBuffer<uint16_t> hi_pool,
                   DeviceBuffer<uint16_t> lo_pool)
      : hi(std::move(hi_pool)),
        lo(std::move(lo_pool)),
        hi_indptr(pt.hi_indptr),
        hi_indices(non_empty(pt.hi_indices)),
        lo_indptr(pt.lo_indptr),
        lo_indices(non_empty(pt.lo_indices)),
        heads(L.head_info()) {}

  PagedCacheParams params(const HeadLayout& L) const {
    PagedCacheParams p;
    p.hi_pool = hi.data();
    p.lo_pool = L.shared_pages() ? hi.data() : lo.data();  // shared pages: one pool holds both classes
    p.page_elems_hi = L.page_elems(TokenClass::kHi);
    p.page_elems_lo = L.page_elems(TokenClass::kLo);
    p.block_size = L.block_size();
    p.slots_hi = L.slots(TokenClass::kHi);
    p.slots_lo = L.slots(TokenClass::kLo);
    p.hi_page_indptr = hi_indptr.data();
    p.hi_page_indices = hi_indices.data();
    p.lo_page_indptr = lo_indptr.data();
    p.lo_page_indices = lo_indices.data();
    return p;
  }

  // AppendParams with this cache's fields set (pools, page sizes, slots, page tables, heads); the
  // caller sets the rows (dtype, tokens, k/v, seq_of, pos_of, cls_of).
  AppendParams append_params(const HeadLayout& L) {
    const PagedCacheParams c = params(L);
    AppendParams p;
    p.num_kv_heads = L.num_kv_heads();
    p.k_row = L.k_row();
    p.v_row = L.v_row();
    p.hi_pool = hi.data();
    p.lo_pool = L.shared_pages() ? hi.data() : lo.data();
    p.page_elems_hi = c.page_elems_hi;
    p.page_elems_lo = c.page_elems_lo;
    p.block_size = c.block_size;
    p.slots_hi = c.slots_hi;
    p.slots_lo = c.slots_lo;
    p.hi_page_indptr = c.hi_page_indptr;
    p.hi_page_indices = c.hi_page_indices;
    p.lo_page_indptr = c.lo_page_indptr;
    p.lo_page_indices = c.lo_page_indices;
    p.heads = heads.data();
    return p;
  }

 private:
  static std::vector<int> non_empty(const std::vector<int>& v) { return v.empty() ? std::vector<int>{0} : v; }
};

}  // namespace fdc::kernels::attn
