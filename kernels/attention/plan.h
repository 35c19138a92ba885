// CPU-side work split of FDC attention. Per-head ranks make per-head work uneven, so the decode
// work is cut into units of near-equal bytes: a unit is a chunk of one (sequence, KV head, token
// class) segment. Units of a (sequence, KV head) pair are merged by a combine step. The naive plan
// (one unit per segment, i.e. one block per (sequence, KV head [, class])) is kept for comparison.
// Planning is separate from running: the launchers take a plan and never re-plan.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention/layout.h"

namespace fdc::kernels::attn {

// One decode work unit, as the kernel reads it (16 bytes).
struct DecodeUnit {
  int seq;
  int head_cls;  // kv_head * 2 + class (0 = hi, 1 = lo)
  int begin;     // first token of the chunk, counted within the class
  int end;       // one past the last token
};

// Which decode kernel runs. kCudaCores: fp32 dot products on the CUDA cores (decode_kernel.cuh);
// kMma: q K^T and P V on the tensor cores (decode_mma_kernel.cuh). Both run on sm_80 and sm_90,
// take the same plans (each with its own DecodePlanOptions) and write the same outputs. kAuto:
// the kernel choose_decode_path picks for the layer's layout.
enum class DecodePath : int { kAuto = 0, kCudaCores = 1, kMma = 2 };

// The decode kernel for a layer of this layout: `requested` unless it is kAuto. For kAuto, without
// token classes: the CUDA-core kernel when every KV head has r_qk = r_v = 64 or 128 (tile widths it
// runs without idle lanes, where it led the tensor-core kernel by 2-4% of the copy rate), else the
// tensor-core kernel (89-93% of the copy rate at ranks 96, 32 and 32..128 per head, against the
// CUDA-core kernel's 75-88%; one H200, 2026-12-03). With token classes: the CUDA-core kernel (in the
// engine's shared pages the tensor-core one ran the token-class policy's decode layers 7-25% slower,
// one H200, 2026-12-04). docs/kernels.md, "Which decode kernel runs".
DecodePath choose_decode_path(const HeadLayout& layout, DecodePath requested = DecodePath::kAuto);
// The kAuto rule on the ranks of a layer's KV heads: true for the tensor-core kernel. The cost model
// prices decode with it (costmodel/attention_dims.h), so it follows the kernel the engine runs.
bool decode_auto_uses_tensor_cores(const std::vector<HeadRanks>& heads);

struct DecodePlanOptions {
  int num_sms = 132;           // streaming multiprocessors of the target device
  int ctas_per_sm = 3;         // resident decode blocks per SM (from the kernel's resources)
  int waves = 4;               // aim at this many units per resident block (LPT evens them out)
  int tile_tokens = 32;        // chunk lengths are multiples of this (the kernel's tile)
  int64_t min_unit_bytes = 32 * 1024;  // never cut units smaller than this (combine overhead)
  int64_t unit_overhead_bytes = 2048;  // fixed cost of a unit (q read, partial write, launch)
  int dtype_bytes = 2;
};

struct DecodePlan {
  std::vector<DecodeUnit> units;  // launch order: costliest first
  std::vector<int> pair_indptr;   // [num_seqs * num_kv_heads + 1] into pair_units
  std::vector<int> pair_units;    // [units.size()] unit ids grouped by pair = seq * num_kv_heads + kv_head
  int num_seqs = 0;
  int num_kv_heads = 0;
  int max_units_per_pair = 0;     // 1 means no combine step is needed
  unsigned width_classes = 0;     // decode_width_class bits of the units' widths
};

// Width classes of decode units (a unit's width: the larger of its class's two ranks). The
// tensor-core kernel tiles a unit at its class's width; a plan whose units all fall in one class
// can run a kernel built for that class alone (decode_mma_kernel.cuh).
inline constexpr unsigned kDecodeWidth32 = 1u, kDecodeWidth48 = 2u, kDecodeWidth64 = 4u, kDecodeWidth96 = 8u,
                          kDecodeWidth128 = 16u;
constexpr unsigned decode_width_class(int width) {
  return width <= 32   ? kDecodeWidth32
         : width <= 48 ? kDecodeWidth48
         : width <= 64 ? kDecodeWidth64
         : width <= 96 ? kDecodeWidth96
                       : kDecodeWidth128;
}

// Shared pages whose slot counts are not both powers of two take the decode kernels that find a
// token's page without a shift (kAnySlots); whole pages (slots = block size, a power of two) never do.
constexpr bool decode_any_slots(int slots_hi, int slots_lo) {
  return !(slots_hi > 0 && (slots_hi & (slots_hi - 1)) == 0) || !(slots_lo > 0 && (slots_lo & (slots_lo - 1)) == 0);
}

// A token's page among its class's pages, t / slots, by a multiply-high and a shift instead of a
// division (which takes a few dozen instructions on the GPU, for every K and V row a kernel loads):
// with l = ceil(log2 slots) and mul = ceil(2^(31 + l) / slots), t / slots = (2 t * mul) >> (32 + l)
// for every 0 <= t < 2^31 (the rounding of mul adds less than t / 2^(31 + l) < 2^-l <= 1 / slots,
// which never carries past the next multiple of slots). mul < 2^32 for slots in 1..2^16.
struct SlotDivisor {
  uint32_t mul = 0;
  int shift = 0;  // l
};
constexpr SlotDivisor slot_divisor(int slots) {
  int l = 0;
  while ((1 << l) < slots) ++l;
  return SlotDivisor{static_cast<uint32_t>(((uint64_t{1} << (31 + l)) + static_cast<uint64_t>(slots) - 1) /
                                           static_cast<uint64_t>(slots)),
                     l};
}
constexpr int slot_page(int t, SlotDivisor d) {
#ifdef __CUDA_ARCH__
  return static_cast<int>(__umulhi(2u * static_cast<uint32_t>(t), d.mul) >> d.shift);
#else
  return static_cast<int>((static_cast<uint64_t>(2u * static_cast<uint32_t>(t)) * d.mul) >> (32 + d.shift));
#endif
}
// How the decode kernels find a token's page and slot among its class's pages: by shift and mask
// (slot counts that are powers of two), or for any slot counts by an integer division (kDivide, the
// default) or by slot_page (kMultiply, FDCSIM_DECODE_SLOT_INDEX=multiply; docs/kernels.md).
enum class SlotIndex : int { kShift = 0, kMultiply = 1, kDivide = 2 };
// The divisors of a launch's two classes (slots_hi, slots_lo), as the kAnySlots kernels take them.
struct SlotDivisors {
  SlotDivisor hi, lo;
};

// The tensor-core kernel a launch runs: of one width, 48 or 96, when every unit is in that width
// class and no slot index needs dividing; 0 = the general kernel, which stages units at widths 32,
// 64 and 128 (decode_impl.cuh dispatches on this).
constexpr int decode_mma_one_width(unsigned width_classes, bool any_slots) {
  return any_slots ? 0 : width_classes == kDecodeWidth48 ? 48 : width_classes == kDecodeWidth96 ? 96 : 0;
}

// Bytes a unit reads (K and V rows at its class's ranks) plus the options' per-unit overhead.
int64_t unit_cost_bytes(const HeadLayout& layout, const DecodeUnit& u, const DecodePlanOptions& opt);

DecodePlan plan_decode_balanced(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo,
                                const DecodePlanOptions& opt);
DecodePlan plan_decode_naive(const HeadLayout& layout, const std::vector<int>& num_hi, const std::vector<int>& num_lo,
                             const DecodePlanOptions& opt);

// Time, in cost units, of greedy list scheduling of `costs` in order on `slots` identical
// workers (how the GPU hands blocks to free SMs). Used to judge a plan's balance.
int64_t list_schedule_makespan(const std::vector<int64_t>& costs, int slots);
// list_schedule_makespan of a plan's units with the options' slot count.
int64_t plan_makespan(const HeadLayout& layout, const DecodePlan& plan, const DecodePlanOptions& opt);

// ---- prefill --------------------------------------------------------------------------------
struct PrefillTile {
  int seq;
  int q_head;
  int q_begin;  // first new token of the tile (within the sequence's new tokens)
  int pad;      // keeps the struct 16 bytes
};

struct PrefillPlan {
  std::vector<PrefillTile> tiles;  // launch order
};

// Cuts every (sequence, q head) into tiles of `tile_q` new tokens. Balanced: costliest tiles
// first (visible keys x (r_qk + r_v)), so long causal rows and wide heads start early; naive:
// sequence, tile, head order.
PrefillPlan plan_prefill(const HeadLayout& layout, const std::vector<int>& cu_q, const std::vector<int>& kv_len,
                         int tile_q, bool balanced);

}  // namespace fdc::kernels::attn
