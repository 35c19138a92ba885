// `fdcsim max-rate`: the highest Poisson (or other rate-driven) arrival rate at which the config's
// SLO is met for a target fraction of requests, by bracketing and bisection over full simulations
// (sim/max_rate.h); optionally for several policies side by side.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct MaxRateCommandOptions {
  std::string config;                  // "" = embedded default
  std::vector<std::string> overrides;  // --set key=value
  double attainment = 0.9;             // target fraction meeting the SLO
  double tol = 0.02;                   // relative bracket width at the end
  std::optional<double> rate_lo, rate_hi;
  int max_doublings = 8;
  int gpus = 0;                       // > 0: one server of this many GPUs, as validate/engine --gpus
  std::vector<std::string> policies;  // --compare-policy (repeatable or comma list); empty = the config's
  std::vector<std::string> vary;      // --vary KEY=V1,V2 (sim::variants_of)
  std::string json_out;               // "" = none
  std::optional<double> band_pct;     // --band: also search with every iteration +-this percent
  int jobs = 1;  // threads for the independent searches (the command line's default: default_jobs())
};

void add_max_rate_command(CLI::App& app, MaxRateCommandOptions& opts);
// Returns 0 when every search found a rate (or a lower bound), kExitNotMet when some policy meets
// the SLO at no rate tried, 2 on bad input, 4 when --json-out cannot be written.
int run_max_rate(const MaxRateCommandOptions& opts);

}  // namespace fdc::cli
