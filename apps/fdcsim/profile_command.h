// `fdcsim profile`: runs every microbenchmark the cost model needs (layer ops and collectives) over
// grids built from the model configs and FDC ranks, within a time budget, and writes a raw profile
// (Google Benchmark JSON + provenance; docs/profile.md). Only CUDA builds can run it; in a CPU-only
// build --dry-run still writes the plan (plan.json) and a run says it needs CUDA (exit code 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct ProfileOptions {
  double budget_s = 600;
  std::string out_dir;                 // "" = profile-<UTC date-time> in the current folder
  std::vector<std::string> models;     // "" = every embedded model
  std::vector<int64_t> tokens;         // empty = the default grid
  std::vector<double> rank_fractions;  // empty = 1, 0.75, 0.5, 0.25
  std::vector<int> tp;                 // empty = 1, 2, 4, 8
  std::vector<double> attn_lo_fractions;  // empty = 0, 0.4, 0.7 (GridOptions)
  std::vector<int> attn_prefill_seqs;     // empty = 1, 4, 8 (GridOptions)
  std::vector<int> attn_prefill_tokens;   // empty = 128, 512, 2048, 8192
  std::vector<int> attn_prefill_prefix;   // empty = 0, 1024, 4096
  double attn_lo_rank_share = 0.5;
  std::vector<std::string> attn_policies;  // decode attention also at these policies' rank tables
  int gpus = 0;                        // 0 = every visible GPU
  double min_time_s = 0.05;
  int64_t sweep_max_bytes = int64_t{1} << 30;
  std::vector<std::string> filters;  // --filter, repeatable
  std::string gemm_weights = "cold";  // "cold" (copies cycled past the L2) or "hot"
  int repetitions = 1;                // runs of every case (fit takes the median)
  bool dry_run = false;
  bool quiet = false;
  std::string command_line;  // recorded in the provenance
};

void add_profile_command(CLI::App& app, ProfileOptions& opts);
int run_profile(const ProfileOptions& opts);

}  // namespace fdc::cli
