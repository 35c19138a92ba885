#include "kernels/attention/layout.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace fdc::kernels::attn {

bool is_supported_block_size(int block_size) { return block_size == 16 || block_size == 32 || block_size == 64; }

namespace {
void check_rank(const char* name, int kv_head, int value, int lo, int hi) {
  FDC_INPUT_CHECK(value >= lo && value <= hi && value % kRankGranule == 0,
                  "attention layout: KV head " << kv_head << " has " << name << " = " << value
                                               << "; expected a multiple of " << kRankGranule
                                               << " in [" << lo << ", " << hi << "]");
}
}  // namespace

HeadLayout::HeadLayout(int num_q_heads, int num_kv_heads, std::vector<HeadRanks> ranks, int block_size)
    : num_q_heads_(num_q_heads), num_kv_heads_(num_kv_heads), block_size_(block_size), ranks_(std::move(ranks)) {
  FDC_INPUT_CHECK(num_kv_heads_ >= 1 && num_q_heads_ >= num_kv_heads_ && num_q_heads_ % num_kv_heads_ == 0,
                  "attention layout: num_q_heads = " << num_q_heads_ << " must be a positive multiple of num_kv_heads = "
                                                     << num_kv_heads_);
  const int g = group();
  FDC_INPUT_CHECK(g == 1 || g == 2 || g == 4 || g == 8,
                  "attention layout: GQA group size " << g << " is not supported; expected 1, 2, 4 or 8");
  FDC_INPUT_CHECK(static_cast<int>(ranks_.size()) == num_kv_heads_,
                  "attention layout: got ranks for " << ranks_.size() << " KV heads, expected " << num_kv_heads_);
  FDC_INPUT_CHECK(is_supported_block_size(block_size_),
                  "attention layout: block size " << block_size_ << " is not supported; expected 16, 32 or 64");
  slots_hi_ = slots_lo_ = block_size_;
  build_offsets();
}

HeadLayout HeadLayout::shared(int num_q_heads, int num_kv_heads, std::vector<HeadRanks> ranks, int block_size,
                              int hi_slots) {
  HeadLayout L(num_q_heads, num_kv_heads, std::move(ranks), block_size);
  FDC_INPUT_CHECK(hi_slots >= 0 && hi_slots <= block_size,
                  "attention layout: " << hi_slots << " hi slots in a block of " << block_size
                                       << "; expected 0 .. block size");
  L.shared_ = true;
  L.slots_hi_ = hi_slots;
  L.slots_lo_ = block_size - hi_slots;
  L.build_offsets();
  return L;
}

void HeadLayout::build_offsets() {
  const int g = group();
  info_.assign(ranks_.size(), HeadInfo{});
  q_row_ = o_row_ = k_row_ = v_row_ = 0;
  max_rk_ = max_rv_ = 0;
  int64_t page_hi = 0, page_lo = 0;
  for (int h = 0; h < num_kv_heads_; ++h) {
    const HeadRanks& r = ranks_[h];
    check_rank("r_qk", h, r.rk, kMinRank, kMaxRank);
    check_rank("r_v", h, r.rv, kMinRank, kMaxRank);
    check_rank("r_qk_lo", h, r.rk_lo, kMinLoRank, r.rk);
    check_rank("r_v_lo", h, r.rv_lo, kMinLoRank, r.rv);
    HeadInfo& in = info_[h];
    in.rk = r.rk;
    in.rv = r.rv;
    in.rk_lo = r.rk_lo;
    in.rv_lo = r.rv_lo;
    in.q_offset = q_row_;
    in.o_offset = o_row_;
    in.k_offset = k_row_;
    in.v_offset = v_row_;
    q_row_ += g * r.rk;
    o_row_ += g * r.rv;
    k_row_ += r.rk;
    v_row_ += r.rv;
    in.page_k_hi = static_cast<int>(page_hi);
    in.page_v_hi = static_cast<int>(page_hi + static_cast<int64_t>(slots_hi_) * r.rk);
    page_hi += static_cast<int64_t>(slots_hi_) * (r.rk + r.rv);
    in.page_k_lo = static_cast<int>(page_lo);
    in.page_v_lo = static_cast<int>(page_lo + static_cast<int64_t>(slots_lo_) * r.rk_lo);
    page_lo += static_cast<int64_t>(slots_lo_) * (r.rk_lo + r.rv_lo);
    max_rk_ = std::max(max_rk_, r.rk);
    max_rv_ = std::max(max_rv_, r.rv);
  }
  if (shared_) {
    // The lo region follows the hi region inside one page; both classes step by the whole page.
    for (HeadInfo& in : info_) {
      in.page_k_lo += static_cast<int>(page_hi);
      in.page_v_lo += static_cast<int>(page_hi);
    }
    page_elems_hi_ = page_elems_lo_ = page_hi + page_lo;
  } else {
    page_elems_hi_ = page_hi;
    page_elems_lo_ = page_lo;
  }
}

HeadLayout HeadLayout::uniform(int num_q_heads, int num_kv_heads, int rk, int rv, int block_size) {
  return HeadLayout(num_q_heads, num_kv_heads,
                    std::vector<HeadRanks>(static_cast<size_t>(std::max(num_kv_heads, 0)), HeadRanks{rk, rv, rk, rv}),
                    block_size);
}

int HeadLayout::q_offset(int q_head) const {
  const HeadInfo& in = info_[kv_head_of(q_head)];
  return in.q_offset + (q_head % group()) * in.rk;
}

int HeadLayout::o_offset(int q_head) const {
  const HeadInfo& in = info_[kv_head_of(q_head)];
  return in.o_offset + (q_head % group()) * in.rv;
}

bool HeadLayout::has_token_classes() const {
  return std::any_of(ranks_.begin(), ranks_.end(), [](const HeadRanks& r) { return r.rk_lo != r.rk || r.rv_lo != r.rv; });
}

}  // namespace fdc::kernels::attn
