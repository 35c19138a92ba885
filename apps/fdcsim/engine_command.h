// `fdcsim engine`: serves an experiment's workload on this machine's GPUs with the validation
// engine (validate/engine/) and writes the measured timeline. Only CUDA builds can run it; in a
// CPU-only build the command exists and says so (exit code 2). `fdcsim validate --config` runs it
// and then compares.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kernels/attention/plan.h"

namespace fdc::cli {

struct EngineCommandOptions {
  std::string config;                  // experiment (embedded name or path)
  std::vector<std::string> overrides;  // --set
  int gpus = 0;                        // > 0: one server of this many GPUs (hardware.gpus_per_server, servers=1)
  std::string weights;                 // safetensors; "" = random weights
  std::string timeline_out;            // "" = results/engine-<experiment>/timeline.jsonl
  int device = 0;
  double timeout_s = 3600;
  bool quiet = false;
  kernels::attn::DecodePath decode_path = kernels::attn::DecodePath::kAuto;  // --decode-kernel
};

// Adds the engine's options to a command (shared by `engine` and `validate`).
void add_engine_options(CLI::App* sub, EngineCommandOptions& o, bool config_required);
void add_engine_command(CLI::App& app, EngineCommandOptions& o);
int run_engine_command(const EngineCommandOptions& o);
// Runs the engine and returns the timeline path (throws on errors; CPU builds: InputError).
std::string run_engine_to_timeline(const EngineCommandOptions& o);

}  // namespace fdc::cli
