// What one iteration (one forward pass of a replica) computes: per sequence, how many new tokens
// and how much context is already cached; plus running aggregates, so that cost models whose
// forms need only sums take O(1) per iteration.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "costmodel/prefill_tiles.h"

namespace fdc::costmodel {

struct SeqWork {
  int32_t new_tokens = 0;      // tokens computed this iteration (1 for a decode step)
  int32_t context_before = 0;  // tokens already in the KV cache before this iteration
  bool emits_token = false;    // this pass ends the sequence's pending tokens: one LM-head row
};

struct BatchTotals {
  int64_t num_seqs = 0;
  int64_t new_tokens = 0;   // sum of new_tokens (rows through projections and MLP)
  int64_t logits_rows = 0;  // sequences emitting a token (rows through the LM head)
  // Decode steps (new_tokens == 1): attention of one query over context_before + 1 keys.
  int64_t decode_seqs = 0;
  int64_t decode_kv_tokens = 0;  // sum of (context_before + 1)
  int64_t decode_kv_max = 0;     // max of (context_before + 1): the longest sequence (skewed batches)
  // Prefill chunks (new_tokens > 1): causal attention of c queries over p + c keys.
  int64_t prefill_seqs = 0;
  int64_t prefill_tokens = 0;       // sum of c
  int64_t prefill_kv_tokens = 0;    // sum of (p + c): keys read once per chunk
  int64_t prefill_kv_max = 0;       // max of (p + c)
  double prefill_pairs = 0;         // sum of c*p + c*(c+1)/2: (query, key) pairs scored
  PrefillTileCounts prefill_tiles;  // the kernel's blocks and (q tile, k tile) pairs (prefill_tiles.h)

  void add(const SeqWork& s) {
    const int64_t c = s.new_tokens, p = s.context_before;
    num_seqs += 1;
    new_tokens += c;
    logits_rows += s.emits_token ? 1 : 0;
    if (c == 1) {
      decode_seqs += 1;
      decode_kv_tokens += p + 1;
      decode_kv_max = std::max(decode_kv_max, p + 1);
    } else {
      prefill_seqs += 1;
      prefill_tokens += c;
      prefill_kv_tokens += p + c;
      prefill_kv_max = std::max(prefill_kv_max, p + c);
      prefill_pairs +=
          static_cast<double>(c) * static_cast<double>(p) + 0.5 * static_cast<double>(c) * static_cast<double>(c + 1);
      prefill_tiles.add(c, p);
    }
  }
  // The share of the batch's rows that are prompt rows (0 for a decode-only or empty batch).
  double prefill_share() const {
    return new_tokens > 0 ? static_cast<double>(prefill_tokens) / static_cast<double>(new_tokens) : 0.0;
  }
};

struct Batch {
  std::vector<SeqWork> seqs;
  BatchTotals totals;
  void clear() {
    seqs.clear();
    totals = BatchTotals{};
  }
  void add(const SeqWork& s) {
    seqs.push_back(s);
    totals.add(s);
  }
  bool empty() const { return seqs.empty(); }
};

}  // namespace fdc::costmodel
