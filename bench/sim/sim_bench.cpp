// Simulator speed: ShareGPT-length requests on 16 p4de servers (128 A100s, 128 Llama-2-13B
// replicas, FDC 50%) at 220 req/s, near the cluster's capacity (about 230 req/s). Reports
// requests/s and events/s of simulation, and how the cost grows from 100k to 1M requests.
//   build/bench/sim/fdc_sim_bench --benchmark_filter=Simulate
#include <benchmark/benchmark.h>

#include <cstdint>

#include "sim/experiment.h"
#include "sim/simulator.h"

namespace {

void BM_SimulateShareGPTp4de16(benchmark::State& state) {
  const auto requests = static_cast<uint64_t>(state.range(0));
  const bool fast_forward = state.range(1) != 0;
  uint64_t events = 0, iterations = 0;
  for (auto _ : state) {
    state.PauseTiming();
    fdc::sim::Experiment e = fdc::sim::load_experiment(
        "sharegpt-p4de-16", {"workload.num_requests=" + std::to_string(requests), "workload.arrival.rate_per_s=220",
                             "simulator.fast_forward=" + std::string(fast_forward ? "true" : "false")});
    auto cost = fdc::sim::make_cost_model(e);
    fdc::sim::Simulator sim(e, *cost, {});
    state.ResumeTiming();
    sim.run();
    events = sim.totals().events;
    iterations = sim.totals().iterations;
    benchmark::DoNotOptimize(events);
  }
  state.counters["requests_per_s"] = benchmark::Counter(
      static_cast<double>(requests) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["events_per_s"] = benchmark::Counter(
      static_cast<double>(events) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["iterations_simulated"] = static_cast<double>(iterations);
}

}  // namespace

// Arguments: requests, fast_forward (1 = on, the default; 0 = step every iteration).
BENCHMARK(BM_SimulateShareGPTp4de16)
    ->ArgsProduct({{100000, 200000, 500000, 1000000}, {1}})
    ->Args({100000, 0})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->UseRealTime();

BENCHMARK_MAIN();
