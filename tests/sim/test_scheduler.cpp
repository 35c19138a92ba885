// The scheduler as a table of expected states per iteration (block_size 4, no watermark).
#include <doctest/doctest.h>

#include "core/error.h"
#include "sim/scheduler.h"

using namespace fdc;
using namespace fdc::sim;

namespace {
SchedulerConfig cfg(bool chunked, int budget, int max_seqs = 8) {
  SchedulerConfig c;
  c.block_size = 4;
  c.max_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.chunked_prefill = chunked;
  c.watermark_fraction = 0.0;
  c.max_model_len = 1000;
  return c;
}
struct Step {
  std::vector<int32_t> takes;  // new tokens per scheduled sequence, in batch order
  int64_t used_blocks;
  size_t waiting, running;
};
void run_table(Scheduler& s, const std::vector<Step>& table) {
  int64_t t = 0;
  for (size_t i = 0; i < table.size(); ++i) {
    CAPTURE(i);
    s.schedule(Nanos(t));
    std::vector<int32_t> takes;
    for (const auto& w : s.batch().seqs) takes.push_back(w.new_tokens);
    CHECK(takes == table[i].takes);
    CHECK(s.kv().used_blocks() == table[i].used_blocks);
    CHECK(s.num_waiting() == table[i].waiting);
    CHECK(s.num_running() == table[i].running);
    t += 1000;
    s.complete(Nanos(t));
  }
}
}  // namespace

TEST_CASE("chunked prefill: decodes first, then chunks fill the token budget") {
  Scheduler s(cfg(true, 6), 100);
  s.add(0, Nanos(0), 10, 2);  // A: 10-token prompt, 2 outputs
  s.add(1, Nanos(0), 5, 1);   // B
  run_table(s, {
                   {{6}, 2, 1, 1},     // A chunk 6 (blocks for 6 tokens)
                   {{4, 2}, 4, 0, 2},  // A's last 4 (emits token 1), B's first 2
                   {{1, 3}, 5, 0, 2},  // A decode (token 2: done), B's last 3 (token 1: done)
               });
  CHECK(!s.has_work());
  CHECK(s.kv().used_blocks() == 0);
}

TEST_CASE("non-chunked: prefill-only iterations while requests fit, then decode all") {
  Scheduler s(cfg(false, 12), 100);
  s.add(0, Nanos(0), 8, 3);
  s.add(1, Nanos(0), 8, 2);  // does not fit the 12-token budget with A
  run_table(s, {
                   {{8}, 2, 1, 1},     // prefill A
                   {{8}, 4, 0, 2},     // prefill B (A stalls)
                   {{1, 1}, 6, 0, 2},  // decode both: 9 tokens -> 3 blocks each; B done
                   {{1}, 3, 0, 1},     // decode A -> done
               });
  CHECK(s.kv().used_blocks() == 0);
}

TEST_CASE("max_num_seqs caps the running set") {
  Scheduler s(cfg(false, 100, 1), 100);
  s.add(0, Nanos(0), 4, 2);
  s.add(1, Nanos(0), 4, 1);
  run_table(s, {
                   {{4}, 1, 1, 1},
                   {{1}, 2, 1, 1},  // A decodes; B still waits (one sequence at most)
                   {{4}, 1, 0, 1},
               });
}

TEST_CASE("admission checks") {
  Scheduler s(cfg(false, 50), 100);
  CHECK(!s.check_admissible(20, 10));
  CHECK(s.check_admissible(40, 20)->code == "batch_tokens");
  Scheduler t(cfg(true, 50), 10);  // 10 blocks of 4 = 40 tokens; a request holds prompt + output - 1
  CHECK(!t.check_admissible(30, 11));
  CHECK(t.check_admissible(30, 12)->code == "kv_capacity");
  CHECK(t.check_admissible(900, 200)->code == "too_long");
}

TEST_CASE("the block manager never hands out more blocks than exist") {
  KvBlockManager kv(3);
  std::vector<int32_t> a, b;
  kv.allocate(a, 2);
  CHECK(a == std::vector<int32_t>{0, 1});
  CHECK_THROWS_AS(kv.allocate(b, 2), InternalError);
  kv.release(a);
  CHECK(kv.free_blocks() == 3);
  CHECK(a.empty());
}

TEST_CASE("waiting_blocks: what the waiting queue needs, preempted sequences with their generated tokens") {
  Scheduler s(cfg(false, 100), 5);
  s.add(0, Nanos(0), 8, 10);
  s.add(1, Nanos(0), 7, 10);
  CHECK(s.waiting_blocks() == 2 + 2);
  s.schedule(Nanos(0));  // prefills both: 4 of the 5 blocks
  CHECK(s.num_waiting() == 0);
  CHECK(s.waiting_blocks() == 0);
  // Decoding, A (9, 10, ... tokens) and B soon need 6 blocks: B, admitted last, is preempted.
  int64_t t = 0;
  while (s.preempted().empty() && s.has_work()) {
    s.complete(Nanos(t += 1000));
    s.schedule(Nanos(t));
  }
  REQUIRE(s.preempted().size() == 1);
  const Sequence& b = s.seq(s.preempted()[0]);
  CHECK(b.request_id == 1);
  CHECK(b.generated >= 1);
  CHECK(s.num_waiting() == 1);
  CHECK(s.waiting_blocks() == (b.known() + 3) / 4);
  while (s.has_work()) {
    s.complete(Nanos(t += 1000));
    s.schedule(Nanos(t));
    if (s.num_waiting() == 0) CHECK(s.waiting_blocks() == 0);
  }
  CHECK(s.waiting_blocks() == 0);
}
