// The discrete-event simulator: requests arrive, a router sends each to a replica, and each
// replica runs iterations (one event each) whose durations come from the cost model. Integer
// nanosecond time; events ordered by (time, sequence number); the same config and seed give
// byte-identical outputs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
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
};

struct Progress {
  uint64_t arrived = 0;
  uint64_t completed = 0;
  Nanos now;
};

struct SimulationTotals {
  uint64_t arrived = 0, completed = 0, rejected = 0, preemptions = 0, slo_met = 0;
  uint64_t events = 0, iterations = 0;
  uint64_t max_batch_seqs = 0;  // most sequences in one iteration of any replica
  uint64_t prompt_tokens = 0, output_tokens = 0;  // of completed requests
  std::map<std::string, uint64_t> rejected_by_reason;
  Nanos first_arrival = Nanos(-1), last_completion;
  LatencyStats ttft, tbt, jct, queue, tpot;
  double busy_seconds = 0;          // replica-seconds spent in iterations
  double kv_block_seconds = 0;      // integral of used blocks over time, all replicas
  double kv_max_utilization = 0;    // highest used/num_blocks of any replica
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
  struct Replica {
    Scheduler sched;
    int server = 0;
    bool busy = false;
    uint64_t outstanding = 0;
  };
  struct Event {
    int64_t time;
    uint64_t seq;
    uint32_t kind;  // 0 arrival, 1 iteration end
    uint32_t replica;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };

  void push(int64_t time, uint32_t kind, uint32_t replica);
  uint32_t route();
  void on_arrival(const traces::RequestSpec& r);
  void start_iteration(uint32_t r);
  void on_iteration_end(uint32_t r);
  void flush_tbt();
  void sample_kv_until(Nanos t);
  void write_request_row(const Sequence& s, uint32_t replica);

  Experiment& exp_;
  const costmodel::CostModel& cost_;
  OutputStreams out_;
  KvLayout layout_;
  std::vector<Replica> replicas_;
  std::vector<Event> heap_;
  uint64_t next_seq_ = 0;
  Nanos now_;
  uint32_t rr_next_ = 0;
  int64_t used_blocks_total_ = 0;
  Nanos next_kv_sample_;
  SimulationTotals totals_;
  double tbt_gap_ = -1;  // run of equal TBT gaps not yet added to the histogram
  uint64_t tbt_run_ = 0;
  std::string line_;     // reused row buffer
};

}  // namespace fdc::sim
