// fdc_ops_bench: the single-GPU op benchmarks on the performance report's grid (Llama-2-13B,
// tp 1, tokens 1024..16384, ranks 128/96/64/32), on GPU 0, with Google Benchmark's own flags
// (--benchmark_filter, --benchmark_out=..., ...). `fdcsim profile` runs the full grid.
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "bench/ops/profile_plan.h"
#include "bench/ops/runner.h"
#include "core/error.h"

int main(int argc, char** argv) {
  try {
    fdc::profile::GridOptions g;
    g.models = {"llama-2-13b"};
    g.tokens = {1024, 4096, 16384};
    g.tp = {1};
    g.rank_fractions = {1.0, 0.75, 0.5, 0.25};
    g.max_gpus = 1;
    g.budget_s = 1e9;
    g.attention = false;  // fdcsim profile runs the attention grid (attention.json)
    const fdc::profile::ProfilePlan plan = fdc::profile::make_profile_plan(g);
    fdc::profile::RunOptions o;
    o.deadline = std::chrono::steady_clock::now() + std::chrono::hours(24);
    std::string cmd;
    for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
    o.command_line = cmd;
    return fdc::profile::run_single_gpu_part(plan, o, "", std::vector<std::string>(argv + 1, argv + argc));
  } catch (const fdc::InputError& e) {
    std::fprintf(stderr, "fdc_ops_bench: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fdc_ops_bench: %s\n", e.what());
    return 3;
  }
}
