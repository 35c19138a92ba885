// `fdcsim validate`: compare a measured timeline (from the GPU engine) with the simulator's
// prediction of the same run. With --config instead of --measured it first runs the engine on this
// machine's GPUs (CUDA builds) and then compares.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/fdcsim/engine_command.h"

namespace fdc::cli {

struct ValidateOptions {
  std::string measured;                // measured timeline (JSON lines); "" = run the engine first
  EngineCommandOptions engine;         // --config, --set and the engine's options
  std::string out_dir;                 // "" = results/validate-<experiment name>
  std::optional<double> band_pct;      // --band: also predict with every iteration +-this percent
};

void add_validate_command(CLI::App& app, ValidateOptions& opts);
int run_validate(const ValidateOptions& opts);

}  // namespace fdc::cli
