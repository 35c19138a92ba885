// `fdcsim simulate`: run one experiment and write its outputs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct SimulateOptions {
  std::string config;                  // "" = embedded default
  std::vector<std::string> overrides;  // --set key=value
  std::string out_dir;                 // "" = results/<experiment name>
  std::string trace_out;               // Chrome trace file ("" = none)
  std::string timeline_out;            // JSON-lines timeline file ("" = none)
  int gpus = 0;                        // > 0: one server of this many GPUs
  bool quiet = false;
  bool progress = false;  // force the progress bar even when stderr is not a terminal
  std::optional<double> band_pct;  // --band: also simulate with every iteration +-this percent
};

void add_simulate_command(CLI::App& app, SimulateOptions& opts);
// Runs the command; returns the process exit code. Messages go to stderr, the summary to stdout.
int run_simulate(const SimulateOptions& opts);

}  // namespace fdc::cli
