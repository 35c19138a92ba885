// `fdcsim layer-check`: the cost model's prediction of one transformer layer against that layer
// measured on this machine's GPU with the engine's kernels, for prefill, decode and mixed batches
// (validate/layer_check.h; docs/fit.md, "Layer-level check"). The batches, the experiment and the
// prediction are checked on any build; only CUDA builds measure, a CPU-only build says so (exit
// code 2). With --measured it re-predicts a saved report instead, on any build.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "validate/layer_check.h"

namespace fdc::cli {

struct LayerCheckOptions {
  std::string config;                  // experiment (embedded name or path); measures on this GPU
  std::string measured;                // a saved report to re-predict instead (excludes config)
  std::vector<std::string> overrides;  // --set: of the config, or of the report's config
  int gpus = 0;                        // > 0: one server of this many GPUs, as `engine --gpus`
  std::string batches = validate::kDefaultLayerBatches;
  std::string layers = "2,6";  // short and long layer counts
  int first_layer = 0;         // first policy layer of both models
  int repeats = 20;
  int warmup = 3;
  int device = 0;
  bool per_op = false;  // --per-op: measured time of every op of the layer beside its prediction
  std::string out;  // JSON report; "" = none
  bool quiet = false;
  std::string command_line;  // for the report's provenance
};

void add_layer_check_command(CLI::App& app, LayerCheckOptions& o);
int run_layer_check(const LayerCheckOptions& o);

}  // namespace fdc::cli
