// What both decode kernels resolve first for a work unit: its class's ranks, and where its K and V
// rows live in the paged cache.
#pragma once

#include <cstdint>

#include "kernels/attention/attention.h"

namespace fdc::kernels::attn::dev {

template <typename T>
struct UnitRows {
  int rk, rv;          // the class's ranks: elements per K and V row
  int slots;           // the class's tokens per page (block_size, or a shared page's hi / lo slots)
  SlotDivisor div;     // slot_divisor(slots), for the kAnySlots kernels
  const int* pages;    // the sequence's pages of the class
  int64_t page_elems;  // elements per page of the class's pool
  const T* kpool;      // the head's K rows in page 0 of the pool (add page * page_elems + slot * rk)
  const T* vpool;      // its V rows, likewise with rv
};

template <typename T>
__device__ __forceinline__ UnitRows<T> unit_rows(const DecodeParams& p, const SlotDivisors& sd, const DecodeUnit& u,
                                                 const HeadInfo& hd) {
  const int cls = u.head_cls & 1;
  const T* pool = static_cast<const T*>(cls ? p.cache.lo_pool : p.cache.hi_pool);
  return UnitRows<T>{cls ? hd.rk_lo : hd.rk,
                     cls ? hd.rv_lo : hd.rv,
                     cls ? p.cache.slots_lo : p.cache.slots_hi,
                     cls ? sd.lo : sd.hi,
                     cls ? p.cache.lo_page_indices + p.cache.lo_page_indptr[u.seq]
                         : p.cache.hi_page_indices + p.cache.hi_page_indptr[u.seq],
                     cls ? p.cache.page_elems_lo : p.cache.page_elems_hi,
                     pool + (cls ? hd.page_k_lo : hd.page_k_hi),
                     pool + (cls ? hd.page_v_lo : hd.page_v_hi)};
}

// Page (among the class's pages) and slot within it of the class's token t.
template <SlotIndex I, typename T>
__device__ __forceinline__ int2 page_slot(int t, const UnitRows<T>& ur, int log2_slots) {
  if constexpr (I == SlotIndex::kShift) return make_int2(t >> log2_slots, t & (ur.slots - 1));
  const int pg = I == SlotIndex::kDivide ? t / ur.slots : slot_page(t, ur.div);
  return make_int2(pg, t - pg * ur.slots);
}

}  // namespace fdc::kernels::attn::dev
