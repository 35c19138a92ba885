// Runs a ProfilePlan on the GPUs of this server and writes the raw profile:
//   <out>/ops.json            Google Benchmark JSON of the single-GPU cases (GPU 0)
//   <out>/attention.json      Google Benchmark JSON of the attention cases (GPU 0)
//   <out>/comm-<g>gpu.json    Google Benchmark JSON of the cases on g GPUs (rank 0's report)
//   <out>/provenance.json     GPU, driver, CUDA, cuBLAS, NCCL, clocks, date, commit, command line
//   <out>/plan.json           the grid: cases run and skipped, with the reasons
// One process per GPU (kernels/comm/launcher.h): this process only forks, so it never initialises
// CUDA itself. Every Google Benchmark JSON also carries the provenance in its "context".
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "bench/ops/profile_plan.h"

namespace fdc::profile {

struct RunOptions {
  std::string out_dir;
  std::string command_line;
  std::chrono::steady_clock::time_point deadline;  // cases not started by then are skipped
  double min_time_s = 0.05;
  bool quiet = false;  // no console table from Google Benchmark
  // GEMM cases cycle through copies of their weights so that none is read from the L2 (as in a
  // forward pass); false times one weight matrix over and over (it stays in the L2 when it fits).
  bool gemm_cold_weights = true;
  // Runs of every case (ProfilePlan::repetitions): among the single-GPU cases Google Benchmark's
  // repetitions, interleaved at random; on several GPUs each case registered that many times in
  // one shuffled order on every rank (a collective must start on all ranks together; Google
  // Benchmark's interleaving draws its order per process), with the counter `fdc_repeats`.
  int repetitions = 1;
};

// GPUs visible to CUDA, probed in a child process (0 when there is no driver or device).
int probe_gpu_count();

// Runs the whole plan. Returns 0 when every part ran and every correctness check passed.
int run_plan(const ProfilePlan& plan, const RunOptions& o);

// Parts, each inside its own process (used by run_plan and the standalone benchmark programs).
nlohmann::json collect_provenance(const std::string& command_line);
int run_single_gpu_part(const ProfilePlan& plan, const RunOptions& o, const std::string& json_path,
                        const std::vector<std::string>& extra_benchmark_args);
int run_attention_part(const ProfilePlan& plan, const RunOptions& o, const std::string& json_path);
int run_multi_gpu_part(const ProfilePlan& plan, int gpus, int rank, const std::string& nccl_token, const RunOptions& o,
                       const std::string& json_path);

}  // namespace fdc::profile
