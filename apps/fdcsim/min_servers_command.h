// `fdcsim min-servers`: the fewest servers (cluster.servers) at which the config's workload meets
// its SLO for a target fraction of requests, by doubling and bisection over full simulations
// (sim/min_servers.h); optionally for several policies side by side, with their GPUs and price.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct MinServersCommandOptions {
  std::string config;                  // "" = embedded default
  std::vector<std::string> overrides;  // --set key=value
  double attainment = 0.9;             // target fraction meeting the SLO
  int servers_lo = 1;
  int max_servers = 4096;
  std::vector<std::string> policies;  // --compare-policy (repeatable or comma list); empty = the config's
  std::vector<std::string> vary;      // --vary KEY=V1,V2 (sim::variants_of)
  std::string json_out;               // "" = none
  std::optional<double> band_pct;     // --band: also search with every iteration +-this percent
  int jobs = 1;                       // threads for the searches (the command line's default: default_jobs())
};

void add_min_servers_command(CLI::App& app, MinServersCommandOptions& opts);
// Returns 0 when every search found a count (or an upper bound), kExitNotMet when some policy meets
// the SLO with no count tried, 2 on bad input, 4 when --json-out cannot be written.
int run_min_servers(const MinServersCommandOptions& opts);

}  // namespace fdc::cli
