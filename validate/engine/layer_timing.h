// The GPU half of `fdcsim layer-check` (validate/layer_check.h): times the engine's model with the
// window's short and long layer counts on each batch, with CUDA events around every forward pass.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sim/experiment.h"
#include "validate/layer_check.h"

namespace fdc::engine {

struct LayerTimingOptions {
  int repeats = 20;  // timed forwards of each model per batch
  int warmup = 3;    // untimed forwards of each model per batch first (kernel loading, cuBLASLt plans)
  int device = 0;
  // Both models can record a CUDA event after every op of every layer (GpuModelConfig::op_times):
  // each repeat then times a pair without the events (the totals, LayerMeasurement::short_ms,
  // long_ms) and a pair with them (the per-op times, short_op_ms ..., and their own totals,
  // short_evented_ms, long_evented_ms).
  bool per_op = false;
  std::function<void(const std::string&)> progress;  // one line per step of a long run (may be empty)
};

struct LayerTimings {
  std::string device;                               // GPU name
  std::string gemm_planning;                        // GpuModel::gemm_planning() of the longer window
  std::vector<validate::LayerMeasurement> batches;  // in the order of the batches given
};

// Builds the two models (the policy's layers [first, first + short) and [first, first + long),
// random weights: timing does not depend on values; KV blocks for the largest batch), then per
// batch runs the warm-up forwards and `repeats` timed pairs, which model runs first alternating. No
// sequence emits a token (no LM head). Throws InputError when the models do not fit the GPU.
LayerTimings time_layers(const sim::Experiment& exp, const validate::LayerWindow& window,
                         const std::vector<validate::LayerBatch>& batches, const LayerTimingOptions& opt);

}  // namespace fdc::engine
