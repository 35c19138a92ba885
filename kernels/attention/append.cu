// Append kernel: copies new tokens' compressed k/v rows (packed, per-head ranks) into the pages of
// their token class (all hi without a class list). Work unit = one (token, KV head) pair, its k and
// v rows together at most 2 x kMaxRank / 8 = 32 16-byte vectors: one per lane of a warp. A fixed
// grid of 256-thread blocks (one wave) walks the pairs: each warp takes a contiguous range, token
// by token, so consecutive pairs share the token's page lookup (L1 hits), and handles two pairs
// per step (both loads before both stores). The first version launched one 32-thread block per
// pair: at 2048 tokens x 40 heads its time was set by block scheduling, not bytes (53 us on an
// H100 whether the ranks were 128 or 64).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>

#include "kernels/attention/attention.h"
#include "kernels/attention/dispatch.h"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn {

namespace {

constexpr int kAppendWarps = 8;
constexpr int kAppendPairsPerStep = 2;

struct AppendSlot {
  const uint4* src = nullptr;  // null: no vector for this lane
  uint4* dst = nullptr;
};

__device__ __forceinline__ AppendSlot append_slot(const AppendParams& p, int64_t pair, int lane) {
  AppendSlot a;
  const int token = static_cast<int>(pair / p.num_kv_heads);
  const int h = static_cast<int>(pair - static_cast<int64_t>(token) * p.num_kv_heads);
  const HeadInfo hd = p.heads[h];
  const int cls = p.cls_of ? __ldg(p.cls_of + token) : 0;
  const int rk = head_rank_k(hd, cls), rv = head_rank_v(hd, cls);
  const int nk = rk / 8, nv = rv / 8;
  if (lane >= nk + nv) return a;
  const int seq = __ldg(p.seq_of + token);
  const int pos = __ldg(p.pos_of + token);
  const int slots = cls ? p.slots_lo : p.slots_hi;
  const int page_index = pos / slots;
  const int slot = pos - page_index * slots;
  const int64_t page = cls ? __ldg(p.lo_page_indices + __ldg(p.lo_page_indptr + seq) + page_index)
                           : __ldg(p.hi_page_indices + __ldg(p.hi_page_indptr + seq) + page_index);
  uint4* pool = static_cast<uint4*>(cls ? p.lo_pool : p.hi_pool);
  const int64_t page_base = page * (cls ? p.page_elems_lo : p.page_elems_hi);
  if (lane < nk) {
    a.src = static_cast<const uint4*>(p.k) + (static_cast<int64_t>(token) * p.k_row + hd.k_offset) / 8 + lane;
    a.dst = pool + (page_base + page_k_elem(hd, cls, slot)) / 8 + lane;
  } else {
    const int c = lane - nk;
    a.src = static_cast<const uint4*>(p.v) + (static_cast<int64_t>(token) * p.v_row + hd.v_offset) / 8 + c;
    a.dst = pool + (page_base + page_v_elem(hd, cls, slot)) / 8 + c;
  }
  return a;
}

__global__ void __launch_bounds__(kAppendWarps * 32) append_kernel(AppendParams p, int64_t pairs_per_warp) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * kAppendWarps + threadIdx.x / 32;
  const int64_t total = static_cast<int64_t>(p.num_tokens) * p.num_kv_heads;
  const int64_t begin = warp * pairs_per_warp;
  const int64_t end = begin + pairs_per_warp < total ? begin + pairs_per_warp : total;
  for (int64_t pair = begin; pair < end; pair += kAppendPairsPerStep) {
    AppendSlot s[kAppendPairsPerStep];
    uint4 val[kAppendPairsPerStep] = {};
#pragma unroll
    for (int j = 0; j < kAppendPairsPerStep; ++j)
      if (pair + j < end) s[j] = append_slot(p, pair + j, lane);
#pragma unroll
    for (int j = 0; j < kAppendPairsPerStep; ++j)
      if (s[j].src) val[j] = *s[j].src;
#pragma unroll
    for (int j = 0; j < kAppendPairsPerStep; ++j)
      if (s[j].src) *s[j].dst = val[j];
  }
}

// Blocks of one wave on the current device (cached per device: the query costs more than a small launch).
int append_wave_blocks() {
  static std::atomic<int> cached[64] = {};
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::atomic<int>& c = cached[device & 63];
  int blocks = c.load(std::memory_order_relaxed);
  if (blocks == 0) {
    int per_sm = 0, sms = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, append_kernel, kAppendWarps * 32, 0));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    blocks = std::max(1, per_sm) * sms;
    c.store(blocks, std::memory_order_relaxed);
  }
  return blocks;
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
  FDC_INPUT_CHECK(p.num_kv_heads <= 1 << 20, "append: " << p.num_kv_heads << " KV heads");
  const int64_t pairs = static_cast<int64_t>(p.num_tokens) * p.num_kv_heads;
  const int64_t warps = std::min<int64_t>(static_cast<int64_t>(append_wave_blocks()) * kAppendWarps,
                                          (pairs + kAppendPairsPerStep - 1) / kAppendPairsPerStep);
  // Whole steps per warp, so only the last warp has a partial step.
  const int64_t per_warp =
      ((pairs + warps - 1) / warps + kAppendPairsPerStep - 1) / kAppendPairsPerStep * kAppendPairsPerStep;
  const int64_t blocks = ((pairs + per_warp - 1) / per_warp + kAppendWarps - 1) / kAppendWarps;
  append_kernel<<<static_cast<unsigned>(blocks), kAppendWarps * 32, 0, stream>>>(p, per_warp);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::attn
