// Bytes and FLOPs of FDC attention, from shapes only. The planner, the benchmarks and the
// roofline all take these numbers from here.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention/layout.h"

namespace fdc::kernels::attn {

// KV-cache bytes one decode step must read: every cached token of every KV head once, at its
// class's ranks. q reads and output writes are excluded (under 0.1% at 4096 tokens).
int64_t decode_kv_bytes(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo,
                        int dtype_bytes);
// FLOPs of one decode step: per q head and cached token, 2*r_qk for the score and 2*r_v for the
// value (the class's ranks); softmax not counted.
int64_t decode_flops(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo);

// FLOPs of a causal prefill: query i of a sequence sees kv_len - q_len + i + 1 keys.
int64_t prefill_flops(const HeadLayout& layout, const std::vector<int>& cu_q, const std::vector<int>& kv_len);
// Minimum bytes of a prefill: q and out once, the visible K/V once per KV head.
int64_t prefill_bytes(const HeadLayout& layout, const std::vector<int>& cu_q, const std::vector<int>& kv_len,
                      int dtype_bytes);

}  // namespace fdc::kernels::attn
