// vLLM-style continuous batching for one replica, shared by the simulator and the validation
// engine: both ask it for the next batch and report the batch done; only how long the batch takes
// differs (cost model or real kernels).
//
// Without chunked prefill (vLLM v0): when requests wait and fit, the iteration is prefill-only
// (FCFS, up to max_batched_tokens and max_num_seqs, keeping a watermark of free blocks);
// otherwise every running sequence decodes one token.
// With chunked prefill (Sarathi): every running sequence's decode comes first, then partial
// prefills continue and waiting requests start, chunked to fill max_batched_tokens.
// When a running sequence needs a KV block and none is free, the most recently admitted running
// sequence is preempted by recompute: its blocks are freed and it returns to the front of the
// waiting queue, to be prefilled again over prompt + generated tokens.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/batch.h"
#include "sim/kv_memory.h"
#include "sim/sequence.h"

namespace fdc::sim {

struct SchedulerConfig {
  int max_num_seqs = 256;
  int max_batched_tokens = 8192;
  bool chunked_prefill = false;
  int block_size = 16;
  double watermark_fraction = 0.01;  // free blocks kept back when admitting (not when nothing runs)
  int max_model_len = 0;             // 0 = the model's
};
SchedulerConfig parse_scheduler_config(const ConfigNode& node);

using SlotId = uint32_t;

struct Rejection {
  std::string code;     // too_long, kv_capacity, batch_tokens
  std::string message;  // with the numbers
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig cfg, int64_t num_blocks);

  // Why a request can never run on this replica (nullopt when it can): longer than max_model_len
  // ("too_long"), more KV blocks than the replica has ("kv_capacity"), or, without chunked
  // prefill, more tokens than one batch takes ("batch_tokens").
  std::optional<Rejection> check_admissible(int32_t prompt, int32_t output) const;

  // Takes a new request into the waiting queue; returns its slot.
  SlotId add(uint64_t request_id, Nanos arrival, int32_t prompt, int32_t output);

  // Builds the next batch at time `now`: fills batch() and batch_slots(), allocates the KV blocks
  // the batch writes, and lists sequences preempted on the way in preempted(). Empty batch: idle.
  void schedule(Nanos now);

  // Applies the batch built by schedule(), finished at `now`. Lists the sequences that emitted a
  // token in emitted() (with gaps computed by the caller from last_token before this call, see
  // prev_token_time()), and the finished ones in finished() — their slots stay readable until
  // the next schedule() call, which recycles them.
  void complete(Nanos now);

  // --- Steady decode runs -----------------------------------------------------------------
  // After schedule(): true when the batch decodes every running sequence by one token and nothing
  // waits. Until a sequence finishes, a KV block cannot be had or a request arrives, every next
  // iteration is then the same batch with one more token of context per sequence, so a caller
  // may advance several iterations at once (advance_steady_decode) with results identical to
  // stepping.
  bool steady_decode() const;
  // The number K >= 1 of iterations, counting the one just scheduled, that can run back to back:
  // iterations 1..K-1 end without a finish and iterations 2..K get their blocks without
  // preemption. new_blocks[j] = blocks allocated when iteration j+1 is scheduled (new_blocks[0]
  // = 0: the current iteration's are already allocated). At most max_iterations.
  int64_t steady_decode_horizon(int64_t max_iterations, std::vector<int64_t>& new_blocks) const;
  // Exactly what k rounds of complete() then schedule() would do within a steady run of more
  // than k iterations: each sequence gains k tokens (the k-th ending at `kth_end`), blocks are
  // allocated in the same order, and iteration k+1 is left scheduled. 1 <= k < horizon.
  void advance_steady_decode(int64_t k, Nanos kth_end);

  const costmodel::Batch& batch() const { return batch_; }
  const std::vector<SlotId>& batch_slots() const { return batch_slots_; }
  const std::vector<SlotId>& preempted() const { return preempted_; }
  const std::vector<SlotId>& emitted() const { return emitted_; }
  const std::vector<Nanos>& emitted_prev_token() const { return emitted_prev_; }
  const std::vector<SlotId>& finished() const { return finished_; }

  const Sequence& seq(SlotId s) const { return seqs_[s]; }
  const KvBlockManager& kv() const { return kv_; }
  const SchedulerConfig& config() const { return cfg_; }
  size_t num_waiting() const { return waiting_.size(); }
  // KV blocks the waiting sequences need for all they know (prompt, plus the tokens generated
  // before a preemption): the load a KV-aware router sees queued here.
  int64_t waiting_blocks() const { return waiting_blocks_; }
  size_t num_running() const { return running_.size(); }
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }

 private:
  void schedule_prefill_only(Nanos now);
  void schedule_decode_all(Nanos now);
  void schedule_chunked(Nanos now);
  // Makes room for `need` more blocks for running_[index] by preempting from the back; returns
  // false when running_[index] itself had to be preempted.
  bool reserve_blocks(size_t index, int64_t need);
  void preempt_back();
  void admit(SlotId s, int32_t take, Nanos now);
  void push(SlotId s, int32_t take, Nanos now);
  int64_t watermark_blocks() const;

  SchedulerConfig cfg_;
  KvBlockManager kv_;
  std::vector<Sequence> seqs_;
  std::vector<SlotId> free_slots_;
  std::deque<SlotId> waiting_;
  int64_t waiting_blocks_ = 0;   // sum of blocks_for_tokens(known()) over waiting_
  std::vector<SlotId> running_;  // admission order: the back is preempted first
  costmodel::Batch batch_;
  std::vector<SlotId> batch_slots_;
  std::vector<int32_t> batch_take_;
  std::vector<SlotId> preempted_, emitted_, finished_, to_recycle_;
  std::vector<Nanos> emitted_prev_;
  mutable std::vector<int64_t> phase_count_;          // steady runs: sequences per computed % block_size
  std::vector<std::vector<uint32_t>> phase_members_;  // steady runs: running indices per phase
};

}  // namespace fdc::sim
