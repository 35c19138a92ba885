// Memory layouts of FDC compressed attention: per-KV-head ranks, packed q/k/v/out rows and the
// two-class paged KV cache. Every offset that host code (reference, planner, tests) and the CUDA
// kernels both compute is defined here once.
//
// Ranks belong to KV heads: the q heads of a GQA group share the group's rotation, so they have
// the K head's r_qk, and their compressed outputs have the V head's r_v.
//
// Token classes. Each sequence's cached tokens are split into "important" (hi) tokens, stored with
// r_qk / r_v dims per head, and "unimportant" (lo) tokens, stored with r_qk_lo / r_v_lo dims. The
// classes live in two page pools with their own page tables, so lo tokens also take less memory.
// The important set is per sequence (shared by all KV heads of the layer); token order inside the
// cache does not matter to attention, since positions are already applied (RoPE before rotation).
//
// Packed rows (element counts, not bytes):
//   q   [tokens][q_row]  q head qh occupies [q_offset(qh), q_offset(qh) + r_qk(kv(qh)))
//   k   [tokens][k_row]  KV head h occupies [k_offset(h), k_offset(h) + r_qk(h))
//   v   [tokens][v_row]  KV head h occupies [v_offset(h), v_offset(h) + r_v(h))
//   out [tokens][o_row]  q head qh occupies [o_offset(qh), o_offset(qh) + r_v(kv(qh)))
// q heads are ordered group by group (qh = kv_head * group + g), as in every GQA model.
//
// Paged cache page of class c (block_size tokens, all KV heads):
//   for each KV head h in order: K block [block_size][r_qk_c(h)], then V block [block_size][r_v_c(h)]
//
// Shared pages (the simulator's KV block, HeadLayout::shared): one page holds both classes, hi_slots
// important tokens then block_size - hi_slots unimportant ones, so both classes use the same page
// ids (the scheduler's block ids) and a block's bytes are exactly what sim::KvLayout counts:
//   hi region: for each KV head: K [hi_slots][r_qk(h)], V [hi_slots][r_v(h)]
//   lo region: for each KV head: K [lo_slots][r_qk_lo(h)], V [lo_slots][r_v_lo(h)]
// page_elems() of both classes is then the whole page (the stride between pages), the lo offsets
// of HeadInfo include the hi region, and slots(c) (tokens of class c per page) need not be a power
// of two.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/host_device.h"

namespace fdc::kernels::attn {

inline constexpr int kMinRank = 16;
inline constexpr int kMaxRank = 128;
inline constexpr int kRankGranule = 8;  // ranks are multiples of 8 (one 16-byte vector of bf16/fp16)
inline constexpr int kMinLoRank = 8;

enum class TokenClass : int { kHi = 0, kLo = 1 };

// Ranks of one KV head. A head without token classes has rk_lo == rk and rv_lo == rv.
struct HeadRanks {
  int rk = 0;     // r_qk of important tokens (and of the queries)
  int rv = 0;     // r_v of important tokens (and of the outputs)
  int rk_lo = 0;  // r_qk of unimportant tokens: their scores use q[0, rk_lo)
  int rv_lo = 0;  // r_v of unimportant tokens: their values add into out[0, rv_lo)
};

// Per-KV-head table the kernels read (device copy of HeadLayout::head_info()).
struct HeadInfo {
  int rk, rv, rk_lo, rv_lo;
  int q_offset;     // element offset of the group's first q head in a q row
  int o_offset;     // element offset of the group's first q head in an out row
  int k_offset;     // element offset in a packed k row
  int v_offset;     // element offset in a packed v row
  int page_k_hi;    // element offset of this head's K block inside a hi page
  int page_v_hi;    // ... V block inside a hi page
  int page_k_lo;    // ... K block inside a lo page
  int page_v_lo;    // ... V block inside a lo page
};

FDC_HOST_DEVICE int head_rank_k(const HeadInfo& h, int cls) { return cls == 0 ? h.rk : h.rk_lo; }
FDC_HOST_DEVICE int head_rank_v(const HeadInfo& h, int cls) { return cls == 0 ? h.rv : h.rv_lo; }
// Width of a decode unit of class `cls` of head `h`: its larger rank (K and V rows are staged at
// this width, rounded up to the kernel's widths; plan.h decode_width_class).
FDC_HOST_DEVICE int head_width(const HeadInfo& h, int cls) {
  return cls ? (h.rk_lo > h.rv_lo ? h.rk_lo : h.rv_lo) : (h.rk > h.rv ? h.rk : h.rv);
}

// Element offset of token slot `slot` of KV head `h` in a page of class `cls` (page base excluded).
FDC_HOST_DEVICE int64_t page_k_elem(const HeadInfo& h, int cls, int slot) {
  return cls == 0 ? h.page_k_hi + static_cast<int64_t>(slot) * h.rk
                  : h.page_k_lo + static_cast<int64_t>(slot) * h.rk_lo;
}
FDC_HOST_DEVICE int64_t page_v_elem(const HeadInfo& h, int cls, int slot) {
  return cls == 0 ? h.page_v_hi + static_cast<int64_t>(slot) * h.rv
                  : h.page_v_lo + static_cast<int64_t>(slot) * h.rv_lo;
}

// Shape of one attention layer under FDC: head counts, per-KV-head ranks and the cache block
// size. Validates everything on construction (throws fdc::InputError naming the bad value).
class HeadLayout {
 public:
  HeadLayout(int num_q_heads, int num_kv_heads, std::vector<HeadRanks> ranks, int block_size);
  // Shared pages: each page holds hi_slots hi tokens and block_size - hi_slots lo tokens (see above).
  static HeadLayout shared(int num_q_heads, int num_kv_heads, std::vector<HeadRanks> ranks, int block_size,
                           int hi_slots);
  // Same ranks for every KV head, no token classes.
  static HeadLayout uniform(int num_q_heads, int num_kv_heads, int rk, int rv, int block_size);

  int num_q_heads() const { return num_q_heads_; }
  int num_kv_heads() const { return num_kv_heads_; }
  int group() const { return num_q_heads_ / num_kv_heads_; }
  int block_size() const { return block_size_; }
  const HeadRanks& ranks(int kv_head) const { return ranks_[kv_head]; }
  const std::vector<HeadInfo>& head_info() const { return info_; }
  const HeadInfo& info(int kv_head) const { return info_[kv_head]; }
  int kv_head_of(int q_head) const { return q_head / group(); }

  int q_row() const { return q_row_; }  // elements per token of packed q
  int k_row() const { return k_row_; }
  int v_row() const { return v_row_; }
  int o_row() const { return o_row_; }
  int q_offset(int q_head) const;
  int o_offset(int q_head) const;
  // Elements from one page of class c to the next (the whole shared page in shared mode).
  int64_t page_elems(TokenClass c) const { return c == TokenClass::kHi ? page_elems_hi_ : page_elems_lo_; }
  // Tokens of class c one page holds: block_size, or the hi / lo slots of a shared page.
  int slots(TokenClass c) const { return c == TokenClass::kHi ? slots_hi_ : slots_lo_; }
  int slots(int cls) const { return cls == 0 ? slots_hi_ : slots_lo_; }
  bool shared_pages() const { return shared_; }
  // Largest ranks over all heads (the kernels' padded tile width is chosen from these).
  int max_rk() const { return max_rk_; }
  int max_rv() const { return max_rv_; }
  bool has_token_classes() const;

 private:
  void build_offsets();
  int num_q_heads_, num_kv_heads_, block_size_;
  int slots_hi_ = 0, slots_lo_ = 0;
  bool shared_ = false;
  std::vector<HeadRanks> ranks_;
  std::vector<HeadInfo> info_;
  int q_row_ = 0, k_row_ = 0, v_row_ = 0, o_row_ = 0;
  int64_t page_elems_hi_ = 0, page_elems_lo_ = 0;
  int max_rk_ = 0, max_rv_ = 0;
};

// Block sizes the kernels support (powers of two so slot arithmetic is a shift and a mask).
bool is_supported_block_size(int block_size);

}  // namespace fdc::kernels::attn
