#include "kernels/attention/cost.h"

#include <cstddef>

namespace fdc::kernels::attn {

int64_t decode_kv_bytes(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo,
                        int dtype_bytes) {
  int64_t per_hi = 0, per_lo = 0;
  for (const HeadInfo& h : layout.head_info()) {
    per_hi += h.rk + h.rv;
    per_lo += h.rk_lo + h.rv_lo;
  }
  int64_t total = 0;
  for (std::size_t s = 0; s < num_hi.size(); ++s) total += num_hi[s] * per_hi + num_lo[s] * per_lo;
  return total * dtype_bytes;
}

int64_t decode_flops(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo) {
  int64_t per_hi = 0, per_lo = 0;
  for (const HeadInfo& h : layout.head_info()) {
    per_hi += 2 * (h.rk + h.rv);
    per_lo += 2 * (h.rk_lo + h.rv_lo);
  }
  int64_t total = 0;
  for (std::size_t s = 0; s < num_hi.size(); ++s) total += num_hi[s] * per_hi + num_lo[s] * per_lo;
  return total * layout.group();
}

int64_t prefill_flops(const HeadLayout& layout, const std::vector<int>& cu_q, const std::vector<int>& kv_len) {
  int64_t per_pair = 0;  // 2*(rk + rv) summed over q heads
  for (const HeadInfo& h : layout.head_info()) per_pair += 2 * (h.rk + h.rv);
  per_pair *= layout.group();
  int64_t pairs = 0;
  for (std::size_t s = 0; s + 1 < cu_q.size(); ++s) {
    const int64_t q = cu_q[s + 1] - cu_q[s];
    const int64_t first = kv_len[s] - q + 1;  // keys seen by the first new token
    pairs += q * first + q * (q - 1) / 2;
  }
  return pairs * per_pair;
}

int64_t prefill_bytes(const HeadLayout& layout, const std::vector<int>& cu_q, const std::vector<int>& kv_len,
                      int dtype_bytes) {
  const int64_t tokens = cu_q.empty() ? 0 : cu_q.back();
  int64_t kv = 0;
  for (int len : kv_len) kv += len;
  return (tokens * (layout.q_row() + layout.o_row()) + kv * (layout.k_row() + layout.v_row())) * dtype_bytes;
}

}  // namespace fdc::kernels::attn
