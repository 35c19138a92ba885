#include "sim/scheduler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fdc::sim {

SchedulerConfig parse_scheduler_config(const ConfigNode& n) {
  SchedulerConfig c;
  c.max_num_seqs = n.get_or<int>("max_num_seqs", c.max_num_seqs, Bounds::at_least(1));
  c.max_batched_tokens = n.get_or<int>("max_batched_tokens", c.max_batched_tokens, Bounds::at_least(1));
  c.chunked_prefill = n.get_or<bool>("chunked_prefill", c.chunked_prefill);
  c.block_size = n.get_or<int>("block_size", c.block_size, Bounds::range(1, 1 << 16));
  c.watermark_fraction = n.get_or<double>("watermark_fraction", c.watermark_fraction, {0.0, 1.0, false});
  c.max_model_len = n.get_or<int>("max_model_len", 0, Bounds::non_negative());
  n.finish();
  return c;
}

Scheduler::Scheduler(SchedulerConfig cfg, int64_t num_blocks) : cfg_(cfg), kv_(num_blocks) {
  FDC_CHECK(cfg_.max_model_len > 0, "max_model_len must be resolved before the scheduler starts");
}

std::optional<Rejection> Scheduler::check_admissible(int32_t prompt, int32_t output) const {
  const int64_t total = int64_t{prompt} + output;
  if (total > cfg_.max_model_len)
    return Rejection{"too_long", "prompt + output = " + std::to_string(total) + " tokens exceeds max_model_len " +
                                     std::to_string(cfg_.max_model_len)};
  // The largest KV the request ever holds: prompt + output - 1 tokens (the last token is not cached).
  const int64_t need = blocks_for_tokens(total - 1, cfg_.block_size);
  if (need > kv_.num_blocks())
    return Rejection{"kv_capacity", "needs " + std::to_string(need) + " KV blocks, the replica has " +
                                        std::to_string(kv_.num_blocks())};
  if (!cfg_.chunked_prefill && total > cfg_.max_batched_tokens)
    return Rejection{"batch_tokens", "prompt + output = " + std::to_string(total) +
                                         " tokens exceeds max_batched_tokens " +
                                         std::to_string(cfg_.max_batched_tokens) +
                                         " without chunked prefill (a recompute would not fit a batch)"};
  return std::nullopt;
}

SlotId Scheduler::add(uint64_t request_id, Nanos arrival, int32_t prompt, int32_t output) {
  for (SlotId f : finished_) free_slots_.push_back(f);
  finished_.clear();
  SlotId s;
  if (!free_slots_.empty()) {
    s = free_slots_.back();
    free_slots_.pop_back();
  } else {
    s = static_cast<SlotId>(seqs_.size());
    seqs_.emplace_back();
  }
  Sequence& q = seqs_[s];
  q.blocks.clear();
  std::vector<int32_t> keep = std::move(q.blocks);  // keep the table's capacity
  q = Sequence{};
  q.blocks = std::move(keep);
  q.request_id = request_id;
  q.arrival = arrival;
  q.prompt = prompt;
  q.output = output;
  waiting_.push_back(s);
  waiting_blocks_ += blocks_for_tokens(q.known(), cfg_.block_size);
  return s;
}

int64_t Scheduler::watermark_blocks() const {
  if (running_.empty() && batch_.empty()) return 0;  // never block the only request
  return static_cast<int64_t>(std::floor(cfg_.watermark_fraction * static_cast<double>(kv_.num_blocks())));
}

void Scheduler::push(SlotId s, int32_t take, Nanos now) {
  Sequence& q = seqs_[s];
  batch_.add({take, q.computed, take == q.pending()});
  batch_slots_.push_back(s);
  batch_take_.push_back(take);
  if (q.first_scheduled.ns() < 0) q.first_scheduled = now;
}

void Scheduler::preempt_back() {
  SlotId v = running_.back();
  running_.pop_back();
  Sequence& q = seqs_[v];
  kv_.release(q.blocks);
  q.computed = 0;
  q.preemptions += 1;
  waiting_.push_front(v);
  waiting_blocks_ += blocks_for_tokens(q.known(), cfg_.block_size);
  preempted_.push_back(v);
}

bool Scheduler::reserve_blocks(size_t index, int64_t need) {
  while (!kv_.can_allocate(need)) {
    const bool self = running_.size() - 1 == index;
    preempt_back();
    if (self) return false;
  }
  return true;
}

void Scheduler::admit(SlotId s, int32_t take, Nanos now) {
  Sequence& q = seqs_[s];
  kv_.allocate(q.blocks, blocks_for_tokens(q.computed + take, cfg_.block_size) - static_cast<int64_t>(q.blocks.size()));
  waiting_.pop_front();
  waiting_blocks_ -= blocks_for_tokens(q.known(), cfg_.block_size);
  running_.push_back(s);
  push(s, take, now);
}

void Scheduler::schedule(Nanos now) {
  for (SlotId f : finished_) free_slots_.push_back(f);
  finished_.clear();
  batch_.clear();
  batch_slots_.clear();
  batch_take_.clear();
  preempted_.clear();
  if (cfg_.chunked_prefill) {
    schedule_chunked(now);
  } else {
    schedule_prefill_only(now);
    if (batch_.empty()) schedule_decode_all(now);
  }
}

void Scheduler::schedule_prefill_only(Nanos now) {
  int64_t budget = cfg_.max_batched_tokens;
  while (!waiting_.empty()) {
    SlotId s = waiting_.front();
    const Sequence& q = seqs_[s];
    const int32_t take = q.pending();
    if (static_cast<int>(running_.size()) >= cfg_.max_num_seqs || take > budget) break;
    const int64_t need = blocks_for_tokens(q.computed + take, cfg_.block_size) - static_cast<int64_t>(q.blocks.size());
    if (kv_.free_blocks() - need < watermark_blocks()) break;
    admit(s, take, now);
    budget -= take;
  }
}

void Scheduler::schedule_decode_all(Nanos now) {
  size_t i = 0;
  while (i < running_.size()) {
    SlotId s = running_[i];
    const Sequence& q = seqs_[s];
    FDC_CHECK(q.pending() == 1, "decode of a sequence with " << q.pending() << " pending tokens");
    // One more cached token needs a new block only when the table is full (no division here:
    // this loop runs for every sequence of every decode iteration).
    const int64_t need = q.computed + 1 > static_cast<int64_t>(q.blocks.size()) * cfg_.block_size ? 1 : 0;
    if (need && !reserve_blocks(i, need)) break;  // s itself was preempted: it was the last
    kv_.allocate(seqs_[s].blocks, need);
    push(s, 1, now);
    ++i;
  }
}

void Scheduler::schedule_chunked(Nanos now) {
  int64_t budget = cfg_.max_batched_tokens;
  const int B = cfg_.block_size;
  // 1. Decodes first; they preempt from the back when blocks run out.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    SlotId s = running_[i];
    if (seqs_[s].pending() != 1) {
      ++i;
      continue;
    }
    const int64_t need = seqs_[s].computed + 1 > static_cast<int64_t>(seqs_[s].blocks.size()) * B ? 1 : 0;
    if (need && !reserve_blocks(i, need)) break;
    kv_.allocate(seqs_[s].blocks, need);
    push(s, 1, now);
    budget -= 1;
    ++i;
  }
  // 2. Partial prefills continue with what the budget and the free blocks allow (no preemption).
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    SlotId s = running_[i];
    Sequence& q = seqs_[s];
    if (q.pending() <= 1) continue;
    const int64_t fit = (static_cast<int64_t>(q.blocks.size()) + kv_.free_blocks()) * B - q.computed;
    const int32_t take = static_cast<int32_t>(std::min<int64_t>({q.pending(), budget, fit}));
    if (take <= 0) continue;
    kv_.allocate(q.blocks, blocks_for_tokens(q.computed + take, B) - static_cast<int64_t>(q.blocks.size()));
    push(s, take, now);
    budget -= take;
  }
  // 3. Waiting requests start, FCFS, chunked to the remaining budget and free blocks.
  while (!waiting_.empty() && budget > 0 && static_cast<int>(running_.size()) < cfg_.max_num_seqs) {
    SlotId s = waiting_.front();
    const Sequence& q = seqs_[s];
    const int64_t room = kv_.free_blocks() - watermark_blocks();
    const int32_t take = static_cast<int32_t>(std::min<int64_t>({q.pending(), budget, room * B}));
    if (take <= 0) break;
    admit(s, take, now);
    budget -= take;
  }
}

void Scheduler::complete(Nanos now) {
  emitted_.clear();
  emitted_prev_.clear();
  for (size_t k = 0; k < batch_slots_.size(); ++k) {
    SlotId s = batch_slots_[k];
    Sequence& q = seqs_[s];
    q.computed += batch_take_[k];
    FDC_CHECK(q.computed <= q.known(), "computed " << q.computed << " beyond known " << q.known());
    if (q.computed == q.known()) {
      q.generated += 1;
      emitted_.push_back(s);
      emitted_prev_.push_back(q.last_token);
      if (q.first_token.ns() < 0) q.first_token = now;
      q.last_token = now;
      if (q.finished()) {
        kv_.release(q.blocks);
        finished_.push_back(s);
      }
    }
  }
  if (!finished_.empty()) {
    running_.erase(std::remove_if(running_.begin(), running_.end(), [&](SlotId s) { return seqs_[s].finished(); }),
                   running_.end());
  }
  batch_.clear();
  batch_slots_.clear();
  batch_take_.clear();
}

}  // namespace fdc::sim

namespace fdc::sim {

bool Scheduler::steady_decode() const {
  if (batch_.empty() || !waiting_.empty() || !preempted_.empty() || batch_slots_.size() != running_.size() ||
      batch_.totals.decode_seqs != batch_.totals.num_seqs)
    return false;
  // A one-token prompt (or last prefill chunk of one token) looks like a decode but emits a first token.
  for (SlotId s : running_)
    if (seqs_[s].generated == 0) return false;
  return true;
}

int64_t Scheduler::steady_decode_horizon(int64_t max_iterations, std::vector<int64_t>& new_blocks) const {
  const int B = cfg_.block_size;
  new_blocks.assign(1, 0);
  int64_t finish = INT64_MAX;  // iteration (1-based) in which the first sequence emits its last token
  phase_count_.assign(static_cast<size_t>(B), 0);
  for (SlotId s : running_) {
    const Sequence& q = seqs_[s];
    finish = std::min<int64_t>(finish, q.output - q.generated);
    ++phase_count_[static_cast<size_t>(q.computed % B)];
  }
  // Iteration j (scheduled when j-1 ends) caches token computed+j: a new block for every
  // sequence whose computed + j - 1 is a multiple of B.
  int64_t free = kv_.free_blocks();
  int64_t k = 1;
  while (k < finish && k < max_iterations) {
    const int64_t j = k + 1;
    const int64_t phase = ((1 - j) % B + B) % B;
    const int64_t need = phase_count_[static_cast<size_t>(phase)];
    if (need > free) break;
    free -= need;
    new_blocks.push_back(need);
    k = j;
  }
  return k;
}

void Scheduler::advance_steady_decode(int64_t k, Nanos kth_end) {
  const int B = cfg_.block_size;
  phase_members_.resize(static_cast<size_t>(B));
  for (auto& m : phase_members_) m.clear();
  for (uint32_t i = 0; i < running_.size(); ++i)
    phase_members_[static_cast<size_t>(seqs_[running_[i]].computed % B)].push_back(i);
  // Scheduling iterations 2..k+1, each in running order, as schedule_decode_all would.
  for (int64_t j = 2; j <= k + 1; ++j) {
    const auto phase = static_cast<size_t>(((1 - j) % B + B) % B);
    for (uint32_t i : phase_members_[phase]) kv_.allocate(seqs_[running_[i]].blocks, 1);
  }
  batch_.clear();
  batch_slots_.clear();
  batch_take_.clear();
  preempted_.clear();
  for (SlotId s : running_) {
    Sequence& q = seqs_[s];
    q.computed += static_cast<int32_t>(k);
    q.generated += static_cast<int32_t>(k);
    q.last_token = kth_end;
    FDC_CHECK(!q.finished() && static_cast<int64_t>(q.blocks.size()) * B >= q.computed + 1,
              "steady decode advanced past a finish or a block boundary");
    batch_.add({1, q.computed, true});
    batch_slots_.push_back(s);
    batch_take_.push_back(1);
  }
}

}  // namespace fdc::sim
