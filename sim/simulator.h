// The discrete-event simulator: requests arrive, a router sends each to a replica, and each
// replica runs iterations (one event each) whose durations come from the cost model. Integer
// nanosecond time; events ordered by (time, kind, replica): at equal times iteration ends come
// before arrivals, replicas in index order. The same config and seed give byte-identical outputs.
//
// Fast-forward (simulator.fast_forward, on by default): a stretch of decode iterations in which
// nothing waits, finishes or runs out of KV blocks is one event; an arrival routed to the
// replica cuts the stretch at the iteration in progress. The results are exactly those of
// stepping one iteration at a time (tests/sim/test_fast_forward.cpp compares them byte for byte);
// only the event count differs. It is off while a Chrome trace or a timeline is written.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/time.h"
#include "costmodel/cost_model.h"
#include "sim/experiment.h"
#include "sim/latency_stats.h"
#include "sim/scheduler.h"

namespace fdc::sim {

// Where streamed outputs go; null streams are skipped.
struct OutputStreams {
  std::ostream* requests_csv = nullptr;  // one row per request, completed or rejected
  std::ostream* kv_csv = nullptr;        // KV utilisation sampled every kv_sample_interval_ms
  std::ostream* trace_json = nullptr;    // Chrome / Perfetto trace of iterations
  std::ostream* timeline = nullptr;      // JSON-lines timeline (sim/timeline.h), for validation
};

struct Progress {
  uint64_t arrived = 0;
  uint64_t completed = 0;
  Nanos now;
};

struct SimulationTotals {
  uint64_t arrived = 0, completed = 0, rejected = 0, preemptions = 0, slo_met = 0;
  uint64_t events = 0, iterations = 0;            // events depend on fast-forward; iterations do not
  uint64_t max_batch_seqs = 0;                    // most sequences in one iteration of any replica
  uint64_t prompt_tokens = 0, output_tokens = 0;  // of completed requests
  std::map<std::string, uint64_t> rejected_by_reason;
  Nanos first_arrival = Nanos(-1), last_arrival = Nanos(-1), last_completion;
  LatencyStats ttft, tbt, jct, queue, tpot;
  int64_t busy_ns = 0;  // replica time spent in iterations
  __extension__ using Int128 = __int128;
  Int128 kv_block_ns = 0;          // integral of used blocks over time, all replicas (exact)
  int64_t kv_max_used_blocks = 0;  // most blocks in use on one replica
};

class Simulator {
 public:
  Simulator(Experiment& experiment, const costmodel::CostModel& cost, OutputStreams streams);
  // Runs to the end of the workload; `progress` (optional) is called every few thousand events.
  void run(const std::function<void(const Progress&)>& progress = {});

  const SimulationTotals& totals() const { return totals_; }
  // The deterministic run summary (no wall-clock figures).
  Json summary() const;
  int64_t kv_blocks_per_replica() const { return layout_.num_blocks; }
  const KvLayout& kv_layout() const { return layout_; }

 private:
  // A steady decode stretch in flight: iterations 1..ends.size(), iteration 1 already accounted.
  struct Run {
    int64_t start = 0;          // when iteration 1 started
    std::vector<int64_t> ends;  // end time of each iteration
    std::vector<int64_t> used;  // KV blocks in use during each iteration
    bool active() const { return !ends.empty(); }
  };
  struct Replica {
    Scheduler sched;
    int server = 0;
    bool busy = false;
    uint64_t outstanding = 0;
    uint64_t version = 0;  // bumps when a pending iteration-end event is replaced
    Run run;
  };
  static constexpr uint32_t kIterationEnd = 0, kArrival = 1;
  struct Event {
    int64_t time;
    uint32_t kind;
    uint32_t replica;
    uint64_t version;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      if (a.time != b.time) return a.time > b.time;
      if (a.kind != b.kind) return a.kind > b.kind;
      if (a.replica != b.replica) return a.replica > b.replica;
      return a.version > b.version;
    }
  };

  void push(int64_t time, uint32_t kind, uint32_t replica, uint64_t version = 0);
  void plan_run(uint32_t r, Nanos first_duration, int64_t used);
  void finish_run(uint32_t r);
  // A replica's blocks in use at t: just before t (KV samples), or after the iterations ending at
  // t (an arrival at t, routed by kv_aware).
  int64_t used_blocks_at(const Replica& rep, Nanos t, bool ends_at_t_done) const;
  uint32_t route();
  void on_arrival(const traces::RequestSpec& r);
  void start_iteration(uint32_t r);
  void on_iteration_end(uint32_t r);
  void flush_tbt();
  void add_tbt(int64_t gap_ns, uint64_t count);
  void sample_kv_until(Nanos t);
  void begin_request_row(uint64_t id, uint32_t replica, std::string_view status, std::string_view reason,
                         Nanos arrival, int32_t prompt, int32_t output);
  void write_request_row(const Sequence& s, uint32_t replica);

  Experiment& exp_;
  const costmodel::CostModel& cost_;
  OutputStreams out_;
  KvLayout layout_;
  std::vector<Replica> replicas_;
  std::vector<Event> heap_;
  bool fast_forward_ = true;
  std::vector<int64_t> new_blocks_;  // scratch for plan_run
  Nanos now_;
  uint32_t rr_next_ = 0;
  int64_t used_blocks_total_ = 0;
  Nanos next_kv_sample_;
  SimulationTotals totals_;
  int64_t tbt_gap_ = -1;  // run of equal TBT gaps (ns) not yet added to the histogram
  uint64_t tbt_run_ = 0;
  std::string line_;  // reused row buffer
  std::unordered_map<uint64_t, std::vector<int64_t>> token_ns_;  // timeline only: token times per request
};

// The cost model's out-of-range queries as JSON: [{"op", "queries", "outside", "share", "example"}].
Json range_uses_json(const std::vector<costmodel::RangeUse>& uses);

}  // namespace fdc::sim
