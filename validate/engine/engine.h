// The validation engine: one replica served on real GPUs by the simulator's own scheduler, KV block
// manager and policy objects, over the experiment's workload with arrival times respected in wall
// clock (optionally scaled). Only "execute this iteration" differs from the simulator: a forward
// pass of GpuModel instead of the cost model. Writes the timeline (sim/timeline.h) that
// `fdcsim validate` compares with the simulator's prediction.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "sim/experiment.h"

namespace fdc::engine {

struct EngineOptions {
  std::string weights;      // safetensors file; "" = random weights
  int device = 0;           // first GPU
  int warmup_iterations = 3;
  bool quiet = false;
};

struct EngineTotals {
  uint64_t arrived = 0, completed = 0, rejected = 0, iterations = 0, preemptions = 0;
  double wall_s = 0;      // first arrival to last completion
  double busy_s = 0;      // sum of iteration times
  double gpu_s = 0;       // sum of CUDA-event times
  double host_s = 0;      // sum of host metadata/planning times
  int64_t kv_blocks = 0;  // per replica
  std::string device;
};

// Runs the experiment (one replica; sim::Experiment::num_replicas() must be 1) and writes the
// timeline to `timeline`. `progress` (optional) gets (completed, total known so far) now and then.
EngineTotals run_engine(sim::Experiment& exp, const EngineOptions& opt, std::ostream& timeline,
                        const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace fdc::engine
