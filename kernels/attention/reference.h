// CPU reference of FDC compressed attention (plain C++, double accumulation). The GPU tests and
// the simulator's tests compare against these; inputs are floats already rounded to the kernel
// dtype, so the only differences left are the GPU's accumulation order and output rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention/layout.h"

namespace fdc::kernels::attn {

// Page tables of a two-class paged cache (see layout.h). Sequence s's hi tokens are, in order,
// the slots of pages hi_indices[hi_indptr[s] .. hi_indptr[s+1]), filled front to back; lo alike.
struct PageTable {
  std::vector<int> hi_indptr;   // [num_seqs + 1]
  std::vector<int> hi_indices;  // [hi_indptr[num_seqs]] page ids in the hi pool
  std::vector<int> lo_indptr;   // [num_seqs + 1]
  std::vector<int> lo_indices;  // [lo_indptr[num_seqs]] page ids in the lo pool
  std::vector<int> num_hi;      // [num_seqs] hi tokens cached
  std::vector<int> num_lo;      // [num_seqs] lo tokens cached
  int num_seqs() const { return static_cast<int>(num_hi.size()); }
  // Checks the invariants (enough pages for the tokens, page ids inside the pools).
  void validate(int block_size, int64_t num_hi_pages, int64_t num_lo_pages) const;
  // The same with the layout's tokens per page of each class (shared pages: the hi and lo slots).
  void validate(const HeadLayout& layout, int64_t num_hi_pages, int64_t num_lo_pages) const;

 private:
  void check(int slots_hi, int slots_lo, int64_t num_hi_pages, int64_t num_lo_pages) const;
};

// Builds a page table that gives each sequence fresh consecutive pages (page ids are then
// shuffled with `seed` so tests see a non-contiguous cache). Returns the pool sizes in pages.
PageTable make_page_table(const std::vector<int>& num_hi, const std::vector<int>& num_lo, int block_size,
                          uint64_t seed, int64_t* num_hi_pages, int64_t* num_lo_pages);

// Page table of a shared-page layout (HeadLayout::shared): sequence s gets
// max(ceil(num_hi / hi_slots), ceil(num_lo / lo_slots)) fresh pages, used by both classes
// (hi_indices == lo_indices), page ids shuffled with `seed`. Returns the pool size in pages.
PageTable make_shared_page_table(const HeadLayout& layout, const std::vector<int>& num_hi,
                                 const std::vector<int>& num_lo, uint64_t seed, int64_t* num_pages);

// Element offset of (token `t` of class `cls` of sequence `s`, KV head `h`) K row / V row in its pool.
int64_t cache_k_index(const HeadLayout& layout, const PageTable& pt, int cls, int s, int t, int h);
int64_t cache_v_index(const HeadLayout& layout, const PageTable& pt, int cls, int s, int t, int h);

// Decode: one query token per sequence over its cached hi and lo tokens.
//   q   [num_seqs][layout.q_row()]   out [num_seqs][layout.o_row()]
//   hi_pool / lo_pool: pages of layout.page_elems(kHi / kLo) elements.
// An unimportant token's score uses q[0, rk_lo) and its value adds into out[0, rv_lo).
void reference_decode(const HeadLayout& layout, const PageTable& pt, const float* hi_pool, const float* lo_pool,
                      const float* q, float sm_scale, float* out);

// Causal prefill over the hi pages: sequence s has q_len = cu_q[s+1] - cu_q[s] new tokens, the
// last q_len of its num_hi[s] cached tokens (already appended), so new token i sits at position
// num_hi[s] - q_len + i and sees cached tokens 0 .. that position. num_lo must be 0.
//   q [cu_q[num_seqs]][q_row]   out [cu_q[num_seqs]][o_row]
void reference_prefill(const HeadLayout& layout, const PageTable& pt, const float* hi_pool, const std::vector<int>& cu_q,
                       const float* q, float sm_scale, float* out);

// Appends packed k/v rows into the hi pool: token i goes to sequence seq_of[i], hi slot pos_of[i].
//   k [n][k_row]  v [n][v_row]
void reference_append(const HeadLayout& layout, const PageTable& pt, const std::vector<int>& seq_of,
                      const std::vector<int>& pos_of, const float* k, const float* v, float* hi_pool);
// Two-class append: token i goes to class cls_of[i] (0 hi, 1 lo), slot pos_of[i] of that class;
// a lo token keeps the first r_qk_lo / r_v_lo dims of its k / v rows.
void reference_append(const HeadLayout& layout, const PageTable& pt, const std::vector<int>& seq_of,
                      const std::vector<int>& cls_of, const std::vector<int>& pos_of, const float* k,
                      const float* v, float* hi_pool, float* lo_pool);

}  // namespace fdc::kernels::attn
