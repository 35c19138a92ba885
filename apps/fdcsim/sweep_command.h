// `fdcsim sweep`: one simulation per combination of --vary values (and --compare-policy policies),
// side by side: a table of throughput, SLO attainment and latency percentiles on stdout, every
// run's figures as CSV and its whole summary as JSON. The runs are independent: on the local cores
// (--jobs) and over the ranks of an MPI launch (apps/fdcsim/mpi_ranks.h), with the same output.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct SweepOptions {
  std::string config;                  // "" = embedded default
  std::vector<std::string> overrides;  // --set key=value
  std::vector<std::string> policies;   // --compare-policy (repeatable or comma list); empty = the config's
  std::vector<std::string> vary;       // --vary KEY=V1,V2 (sim::variants_of)
  int gpus = 0;                        // > 0: one server of this many GPUs (as simulate --gpus)
  std::string csv_out;                 // "" = none
  std::string json_out;                // "" = none
  std::optional<double> band_pct;      // --band: every run again with every iteration +-this percent
  int jobs = 1;                        // threads for the runs (the command line's default: default_jobs())
};

void add_sweep_command(CLI::App& app, SweepOptions& opts);
// Returns 0, 2 on bad input, 4 when an output file cannot be written.
int run_sweep(const SweepOptions& opts);

}  // namespace fdc::cli
