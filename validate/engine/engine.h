// The validation engine: one replica served on real GPUs by the simulator's own scheduler, KV block
// manager and policy objects, over the experiment's workload with arrival times respected in wall
// clock. Only "execute this iteration" differs from the simulator: a forward pass of GpuModel
// instead of the cost model. Writes the timeline (sim/timeline.h) that `fdcsim validate` compares
// with the simulator's prediction.
//
// Sequence parallelism (cluster.sp = P > 1): one process per GPU (kernels/comm/launcher.h), NCCL
// between them. Rank 0 runs the scheduler and the clock, and before each iteration broadcasts the
// batch (sequence steps, token ids, block tables) to the other ranks; every rank then runs the
// same forward pass on its slice. If a rank fails, the launcher stops the others: no rank hangs.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/attention/plan.h"
#include "sim/experiment.h"

namespace fdc::engine {

struct EngineOptions {
  std::string weights;      // safetensors file; "" = random weights
  int device = 0;           // first GPU (ranks use device .. device + P - 1)
  int warmup_iterations = 3;
  double timeout_s = 3600;  // SP: every rank is stopped after this long
  bool quiet = false;
  // Decode kernel of every layer (kAuto: kernels::attn::choose_decode_path of the layer's layout).
  kernels::attn::DecodePath decode_path = kernels::attn::DecodePath::kAuto;
};

struct EngineTotals {
  uint64_t arrived = 0, completed = 0, rejected = 0, iterations = 0, preemptions = 0;
  double wall_s = 0;      // first arrival to last completion
  double busy_s = 0;      // sum of iteration times
  double gpu_s = 0;       // sum of CUDA-event times
  double host_s = 0;      // sum of host metadata/planning times
  int64_t kv_blocks = 0;  // per replica
  std::string device;
  std::string decode_kernels;  // GpuModel::decode_kernels() of rank 0
  std::string gemm_planning;   // GpuModel::gemm_planning() of rank 0
};

// Runs the experiment (one replica: sim::Experiment::num_replicas() must be 1, tp = 1) and writes
// the timeline to `timeline_path`; prints progress and a summary unless opt.quiet. Throws
// InputError / InternalError on failure (with SP: when any rank failed).
void run_engine(sim::Experiment& exp, const EngineOptions& opt, const std::string& timeline_path);

}  // namespace fdc::engine
