// `fdcsim fit INPUT... --out FILE`: fits a profile from raw `fdcsim profile` folders and Vidur
// profiling CSVs; `fdcsim fit --derive --from PROFILE --hardware HW --out FILE`: a profile for an
// unmeasured GPU from a measured one by spec-sheet ratios (extrapolated);
// `fdcsim fit --from PROFILE --overhead-from TIMELINE... --out FILE`: the profile with its
// per-iteration overhead calibrated from engine runs (validate/calibrate.h);
// `fdcsim fit --from PROFILE --in-layer-from REPORT... --out FILE`: its GEMMs calibrated on layers
// measured per op (validate/calibrate_in_layer.h; with --overhead-from too, this comes first);
// `--attn-in-layer-from REPORT...` likewise for its prefill attention, `--decode-in-layer-from
// REPORT...` for its decode attention kernels (an extra time per call; docs/fit.md);
// `fdcsim profile-report PROFILE`: prints each op's form, coverage and held-out error.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct FitOptions {
  std::vector<std::string> raw_dirs;  // raw folders, Vidur CSVs or folders of them
  std::vector<std::string> whole_ops_from;  // raw folders among raw_dirs whose ops are taken from them alone
  std::string out;
  std::string gpu;  // GPU name when no input names one (Vidur CSVs)
  bool derive = false;
  std::string from;                        // --derive: the measured profile (name or path)
  std::string hardware;                    // --derive: the target hardware config (name or path)
  std::string from_hardware;               // --derive: the measured GPU's hardware config ("" = the one naming --from)
  std::vector<std::string> overhead_from;  // engine timelines calibrating --from's iteration overhead
  bool overhead_prefill = false;           // ... with a term for the prefill rows' op time (docs/fit.md)
  std::vector<std::string> in_layer_from;  // layer-check --per-op reports calibrating --from's GEMMs in a layer
  std::vector<std::string> attn_in_layer_from;  // ... calibrating --from's prefill attention in a layer
  std::vector<std::string> elementwise_in_layer_from;  // ... its norms, RoPE, KV append, residual, activation
  std::vector<std::string> decode_in_layer_from;       // ... its decode attention kernels' extra time per call
  bool decode_units = false;      // price the balanced decode plan's units in the decode law (docs/fit.md)
  bool prefill_makespan = false;  // try the prefill law with its blocks' makespan over the SMs (docs/fit.md)
  std::string residuals;          // CSV of every case's held-out prediction ("" = none)
};

struct ProfileReportOptions {
  std::string profile;
  std::vector<std::string> against;  // raw folders to score the profile's laws on (not fitted to them)
};

void add_fit_command(CLI::App& app, FitOptions& opts);
void add_profile_report_command(CLI::App& app, ProfileReportOptions& opts);
int run_fit(const FitOptions& opts);
int run_profile_report(const ProfileReportOptions& opts);

}  // namespace fdc::cli
