// `fdcsim validate`: compare a measured timeline (from the GPU engine) with the simulator's
// prediction of the same run.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct ValidateOptions {
  std::string measured;                // measured timeline (JSON lines)
  std::vector<std::string> overrides;  // --set on the timeline's config (e.g. another cost model)
  std::string out_dir;                 // "" = results/validate-<experiment name>
  bool quiet = false;
};

void add_validate_command(CLI::App& app, ValidateOptions& opts);
int run_validate(const ValidateOptions& opts);

}  // namespace fdc::cli
