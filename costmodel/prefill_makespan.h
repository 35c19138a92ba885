// The makespan of the Hopper prefill kernel's blocks over the GPU's SMs: the one function the fit
// (attention_makespan law) and the cost model's query take it from.
//
// The launch (kernels/attention/prefill_sm90_impl.cuh) runs one block per tile of the balanced plan
// (kernels/attention/plan.cpp plan_prefill): 128 new tokens of one (sequence, q head), walking the
// key tiles its last row sees (prefill_tiles.h). The plan issues the costliest blocks first, and the
// GPU hands the next block to an SM as soon as one of its resident blocks finishes, so the makespan
// is list scheduling of the blocks in plan order. At padded width D = 128 an SM holds one block; at
// D = 64 it holds two (prefill_sm90_kernel.cuh min_blocks), which share its tensor cores: each then
// runs at `shared_speed` of a block alone (a constant of the law, fitted). A block alone takes its
// key tiles plus `block_fixed_tiles` (its Q tile load, pipeline fill and output write), in units of
// one key tile's time.
//
// The schedule: the first num_sms blocks go one to each SM, the next num_sms as second blocks at
// D = 64 (breadth first, as the block scheduler fills the GPU). While blocks wait, every SM holds
// its full count, so every block runs at the shared speed and a freed slot takes the next block.
// Once the last block is issued, an SM whose other block finishes runs the rest alone: an SM left
// with remaining work a <= b after that moment finishes a / shared_speed + (b - a) later.
//
// The plan orders blocks by visible keys x (r_qk + r_v): with equal ranks on every head that is the
// order of their key tiles, which is what the makespan follows (blocks of equal key tiles are
// interchangeable, so they are taken as groups). With a per-head rank table the plan puts a narrow
// head's block after wider heads' blocks of a few more keys; the makespan ignores that.
// Header-only: the fit (fdc_fit) and the cost model both use it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <span>
#include <vector>

#include "costmodel/batch.h"
#include "costmodel/prefill_tiles.h"

namespace fdc::costmodel {

// The schedule's constants on one GPU, stored with the law in a fitted profile.
struct PrefillScheduleConstants {
  int num_sms = 0;               // streaming multiprocessors of the measured GPU (provenance.json gpus[0].sms)
  double block_fixed_tiles = 1;  // a block's time beyond its key tiles, in key tiles
  double shared_speed = 1;       // speed of each of two blocks sharing an SM (D = 64), against one alone
  friend bool operator==(const PrefillScheduleConstants&, const PrefillScheduleConstants&) = default;
};

// A block's fixed cost in key tiles: its Q tile, the pipeline's first two K/V stages and the output
// write take about one key tile's time.
inline constexpr double kPrefillBlockFixedTiles = 1.0;

// Resident blocks per SM at a padded width (prefill_sm90_kernel.cuh min_blocks: at D = 128 a block
// takes 248 registers a thread and 225 KiB of shared memory, at D = 64 127 registers, so two fit).
inline int prefill_blocks_per_sm(int padded_width) { return padded_width > 64 ? 1 : 2; }

// Buffers the makespan reuses between calls: a caller pricing many batches allocates only while
// they grow.
struct PrefillMakespanScratch {
  struct Group {
    int64_t tiles = 0, blocks = 0;  // blocks of equal key tiles
  };
  // Slots of equal free time, consecutive in the order they take blocks. Slot i (in the order of
  // the initial fill) sits on SM i mod num_sms for the whole launch.
  struct Run {
    double free_at = 0;  // when their blocks finish, at the shared speed while blocks wait
    int64_t first = 0, count = 0;
  };
  std::vector<Group> groups;
  std::vector<Run> runs, placed, merged;  // the runs by free_at; a pass's placed runs; their merge
  std::vector<double> left;               // per SM: its blocks' remaining work once the last block is issued
};

// The makespan, in key tiles of a block alone, of the prefill chunks of `seqs` (sequences with more
// than one new token, as BatchTotals counts prefill; decode steps are not in the launch) for
// `q_heads` q heads launched at `padded_width`. 0 for no prefill chunk or no SM count.
inline double prefill_makespan_tiles(std::span<const SeqWork> seqs, int64_t q_heads, int padded_width,
                                     const PrefillScheduleConstants& k, PrefillMakespanScratch& s) {
  using Group = PrefillMakespanScratch::Group;
  using Run = PrefillMakespanScratch::Run;
  if (q_heads <= 0 || k.num_sms <= 0) return 0;
  const int64_t tk = prefill_tile_k(padded_width);
  s.groups.clear();
  for (const SeqWork& w : seqs) {
    if (w.new_tokens <= 1) continue;
    const int64_t c = w.new_tokens, p = w.context_before;
    for (int64_t q0 = 0; q0 < c; q0 += kPrefillTileQ)
      s.groups.push_back({(p + std::min<int64_t>(c, q0 + kPrefillTileQ) + tk - 1) / tk, q_heads});
  }
  if (s.groups.empty()) return 0;
  // Plan order: most key tiles first; equal tiles merged into one group.
  std::sort(s.groups.begin(), s.groups.end(), [](const Group& a, const Group& b) { return a.tiles > b.tiles; });
  size_t distinct = 0;
  int64_t blocks = s.groups[0].blocks;
  for (size_t i = 1; i < s.groups.size(); ++i) {
    blocks += s.groups[i].blocks;
    if (s.groups[i].tiles == s.groups[distinct].tiles) {
      s.groups[distinct].blocks += s.groups[i].blocks;
    } else {
      s.groups[++distinct] = s.groups[i];
    }
  }
  s.groups.resize(distinct + 1);
  auto work = [&](const Group& g) { return static_cast<double>(g.tiles) + k.block_fixed_tiles; };
  const int64_t sms = k.num_sms;
  if (blocks <= sms) return work(s.groups[0]);  // one block per SM, each alone
  const int per_sm = prefill_blocks_per_sm(padded_width);
  const double speed = per_sm > 1 ? std::clamp(k.shared_speed, 1e-3, 1.0) : 1.0;

  // The first blocks fill the slots breadth first: block i on SM i mod num_sms. Their times do not
  // rise in plan order (one run per group), so the runs by free_at are those runs reversed.
  const int64_t slots = std::min(blocks, sms * per_sm);
  s.runs.clear();
  size_t gi = 0;
  int64_t taken = 0;  // blocks of group gi already issued
  for (int64_t filled = 0; filled < slots;) {
    const int64_t take = std::min(s.groups[gi].blocks, slots - filled);
    s.runs.push_back({work(s.groups[gi]) / speed, filled, take});
    filled += take;
    if (take == s.groups[gi].blocks) {
      ++gi;
    } else {
      taken = take;
    }
  }
  std::reverse(s.runs.begin(), s.runs.end());

  // The rest, each to the slot that frees first (ties: the first in order), at the shared speed.
  // Blocks of a group are placed in passes: the slots that free before the first of them could take
  // a second block (free_at <= first + d) take one each, in order; their new times are merged after
  // the runs left (after equal times: a freed slot queues behind those already waiting). When every
  // slot frees within d of the first, whole rounds at once.
  double last_start = 0;  // when the last block is issued
  auto by_time = [](const Run& a, const Run& b) { return a.free_at < b.free_at; };
  for (; gi < s.groups.size(); ++gi, taken = 0) {
    const double d = work(s.groups[gi]) / speed;
    int64_t left = s.groups[gi].blocks - taken;
    if (left >= slots && s.runs.back().free_at - s.runs.front().free_at <= d) {
      const int64_t rounds = left / slots;  // every slot takes `rounds` blocks, in order
      const double add = static_cast<double>(rounds) * d;
      for (Run& r : s.runs) r.free_at += add;
      last_start = s.runs.back().free_at - d;
      left -= rounds * slots;
    }
    while (left > 0) {
      const double limit = s.runs.front().free_at + d;
      s.placed.clear();
      size_t r = 0;
      int64_t placed = 0;
      while (r < s.runs.size() && s.runs[r].free_at <= limit && placed < left) {
        Run& run = s.runs[r];
        const int64_t take = std::min(run.count, left - placed);
        s.placed.push_back({run.free_at + d, run.first, take});
        last_start = run.free_at;
        placed += take;
        if (take < run.count) {  // the rest of the run waits for the next group
          run.first += take, run.count -= take;
          break;
        }
        ++r;
      }
      s.merged.clear();
      std::merge(s.runs.begin() + static_cast<std::ptrdiff_t>(r), s.runs.end(), s.placed.begin(), s.placed.end(),
                 std::back_inserter(s.merged), by_time);
      s.runs.swap(s.merged);
      left -= placed;
    }
  }
  if (per_sm == 1) return s.runs.back().free_at;

  // After the last block is issued: each SM's remaining work, the smaller shared, the rest alone.
  s.left.assign(static_cast<size_t>(2 * sms), -1.0);
  for (const Run& run : s.runs) {
    const double remaining = (run.free_at - last_start) * speed;
    for (int64_t i = run.first; i < run.first + run.count; ++i) {
      double* l = &s.left[static_cast<size_t>(2 * (i < sms ? i : i - sms))];
      (l[0] < 0 ? l[0] : l[1]) = remaining;
    }
  }
  const double slowdown = 1.0 / speed;
  double longest = 0;  // the last SM's time after last_start
  for (int64_t i = 0; i < sms; ++i) {
    const double a = s.left[static_cast<size_t>(2 * i)], b = s.left[static_cast<size_t>(2 * i + 1)];
    longest = std::max(longest, b < 0 ? a : std::min(a, b) * slowdown + std::abs(a - b));
  }
  return last_start + longest;
}

// The attention_makespan law's makespan feature: the makespan in padded FLOPs of one block's key
// tiles (prefill_pair_flops), in the column of the launch's padded width (each width has its own
// rate: a 64-key tile shared by two blocks is not a quarter of a 128-key tile's time).
struct PrefillMakespanWork {
  double flops_w64 = 0, flops_w128 = 0;
};

inline PrefillMakespanWork prefill_makespan_work(std::span<const SeqWork> seqs, int64_t q_heads, int max_rank,
                                                 const PrefillScheduleConstants& k, PrefillMakespanScratch& s) {
  const int d = prefill_padded_width(max_rank);
  const double flops = prefill_makespan_tiles(seqs, q_heads, d, k, s) * prefill_pair_flops(d);
  PrefillMakespanWork w;
  (d > 64 ? w.flops_w128 : w.flops_w64) = flops;
  return w;
}

}  // namespace fdc::costmodel
