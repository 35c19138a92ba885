// The work of causal prefill attention as the Hopper kernel tiles it
// (kernels/attention/prefill_sm90_kernel.cuh, the wgmma path picked on sm_90): the one place the
// profile's counters, the fit and the cost model's query take it from.
//
// One block runs kPrefillTileQ new tokens of one (sequence, q head) and walks the keys its last row
// sees in tiles of tile_k keys. The launch pads every head to one width D, 64 when the largest rank
// of the launch is at most 64, else 128, and picks its key tile and occupancy from D (128 keys and
// one block per SM at D = 128, 64 keys and two blocks at D = 64). Measured on H100, the time follows
// D, not the heads' own ranks: ranks 96, 128 and a mixed table reaching 128 run alike, ranks 32 and
// 64 in about half the time. So the work is counted at the padded width: per (q tile, k tile) pair
// and q head, 2 x tile_q x tile_k x (D + D) FLOPs (Q K^T and P V, both padded to D). Since the
// kernel of 2026-12-04 runs Q K^T over ceil16(r_qk) dims and P V over 64 or 128 columns, a head's
// own rank also shows within one width: the fitted law adds a term on the FLOPs at the heads' ranks
// (costmodel/fit/op_fit.h, attention_tiles).
// Header-only: the fit (fdc_fit) and the cost model both use it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace fdc::costmodel {

inline constexpr int kPrefillTileQ = 128;  // new tokens per block (kernels/attention kPrefillTileQ)

// The launch's padded width for its largest rank (max over heads of r_qk and r_v): 64 or 128.
inline int prefill_padded_width(int max_rank) { return max_rank <= 64 ? 64 : 128; }
// Keys per K/V tile at a padded width (the kernel's tile_k<D>()).
inline int prefill_tile_k(int padded_width) { return padded_width > 64 ? 128 : 64; }

// Padded FLOPs of one (q tile, k tile) pair of one q head at a padded width: Q K^T and P V, both
// padded to D, over tile_q rows and the width's tile_k keys.
inline double prefill_pair_flops(int padded_width) {
  return 2.0 * kPrefillTileQ * prefill_tile_k(padded_width) * (2.0 * padded_width);
}

// Query tiles (blocks per q head) of a chunk of `new_tokens`.
inline int64_t prefill_query_tiles(int64_t new_tokens, int tile_q = kPrefillTileQ) {
  return (new_tokens + tile_q - 1) / tile_q;
}

// (q tile, k tile) pairs one q head of a chunk runs: `new_tokens` after `context_before` cached
// tokens; q tile i holds rows [i tile_q, min(new_tokens, (i + 1) tile_q)) and reads the
// ceil(keys / tile_k) tiles of the keys its last row sees. tile_k must divide tile_q (so a full
// q tile adds exactly tile_q / tile_k key tiles to the next one's).
inline int64_t causal_tile_pairs(int64_t new_tokens, int64_t context_before, int tile_k, int tile_q = kPrefillTileQ) {
  if (new_tokens <= 0) return 0;
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  const int64_t full = new_tokens / tile_q, step = tile_q / tile_k;
  int64_t pairs = full * ceil_div(context_before, tile_k) + step * full * (full + 1) / 2;
  if (new_tokens % tile_q != 0) pairs += ceil_div(context_before + new_tokens, tile_k);
  return pairs;
}

// Per-batch sums the padded work needs, independent of the heads (accumulated per sequence).
struct PrefillTileCounts {
  int64_t q_tiles = 0;     // sum of prefill_query_tiles over chunks
  int64_t pairs_k64 = 0;   // sum of causal_tile_pairs at tile_k 64 (padded width 64)
  int64_t pairs_k128 = 0;  // ... at tile_k 128 (padded width 128)
  int64_t keys_max = 0;    // the longest chunk's keys (context + new tokens): its last block's

  void add(int64_t new_tokens, int64_t context_before) {
    q_tiles += prefill_query_tiles(new_tokens);
    pairs_k64 += causal_tile_pairs(new_tokens, context_before, 64);
    pairs_k128 += causal_tile_pairs(new_tokens, context_before, 128);
    keys_max = std::max(keys_max, context_before + new_tokens);
  }
  int64_t pairs(int tile_k) const { return tile_k > 64 ? pairs_k128 : pairs_k64; }
};

// The features of the attention_tiles law for `q_heads` heads launched at `max_rank`.
struct PrefillTileWork {
  double padded_flops = 0;         // every (q tile, k tile) pair at the padded width
  double block_elems = 0;          // Q tile elements the blocks load (blocks x tile_q x D): per-block cost
  double longest_block_flops = 0;  // padded FLOPs of the longest block (the last tile of the longest chunk)
};

inline PrefillTileWork prefill_tile_work(const PrefillTileCounts& n, int64_t q_heads, int max_rank) {
  const int d = prefill_padded_width(max_rank), tk = prefill_tile_k(d);
  const double pair_flops = prefill_pair_flops(d);
  const double h = static_cast<double>(q_heads);
  PrefillTileWork w;
  w.padded_flops = h * static_cast<double>(n.pairs(tk)) * pair_flops;
  w.block_elems = h * static_cast<double>(n.q_tiles) * kPrefillTileQ * d;
  w.longest_block_flops = static_cast<double>((n.keys_max + tk - 1) / tk) * pair_flops;
  return w;
}

}  // namespace fdc::costmodel
