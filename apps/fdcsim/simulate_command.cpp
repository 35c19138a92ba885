#include "apps/fdcsim/simulate_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "apps/fdcsim/band_option.h"
#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/run_guarded.h"
#include "apps/fdcsim/summary_table.h"
#include "core/error.h"
#include "sim/experiment.h"
#include "sim/simulator.h"

namespace fdc::cli {

void add_simulate_command(CLI::App& app, SimulateOptions& o) {
  CLI::App* sub = app.add_subcommand("simulate", "Simulate a serving cluster on a workload (one experiment config)");
  sub->add_option("--config,-c", o.config,
                  "Experiment JSON file (see docs/config.md), or the name of an embedded experiment "
                  "(default, sharegpt-p4de-16); without it the embedded default runs "
                  "(Llama-2-13B, FDC 50%, one p4de server, ShareGPT-like Poisson load)");
  sub->add_option("--set", o.overrides,
                  "Override a config value: --set scheduler.max_num_seqs=128 (value parsed as JSON, else a string); "
                  "repeatable");
  sub->add_option("--out,-o", o.out_dir, "Output folder (default: results/<experiment name>)");
  sub->add_option("--trace-out", o.trace_out,
                  "Also write a Chrome/Perfetto trace of iterations (JSON) to this file; capped at "
                  "outputs.trace_max_iterations iterations");
  sub->add_option("--timeline-out", o.timeline_out,
                  "Also write the run's timeline (JSON lines: every iteration's batch and time, every request's "
                  "token times; docs/validate.md); steps every iteration");
  sub->add_option("--gpus", o.gpus,
                  "Simulate one server of N GPUs (hardware.gpus_per_server=N, cluster.servers=1), as `validate "
                  "--gpus N` runs the engine")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--quiet,-q", o.quiet, "Print nothing on stdout; errors still go to stderr");
  sub->add_flag("--progress", o.progress, "Show the progress bar even when stderr is not a terminal");
  add_band_option(sub, o.band_pct,
                  "Also simulate with every iteration PCT percent longer and shorter (costmodel.time_scale) and "
                  "report the band of throughput, SLO attainment and latencies (summary.json `band`): how far "
                  "the answer moves for a cost model off by that much");
}

namespace {

class ProgressBar {
 public:
  ProgressBar(bool enabled, uint64_t expected) : enabled_(enabled), expected_(expected) {}
  void update(const sim::Progress& p, bool final_update) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    if (!final_update && (elapsed < 1.0 || std::chrono::duration<double>(now - last_).count() < 0.2)) return;
    if (final_update && !shown_) return;  // runs under a second show no bar
    last_ = now;
    shown_ = true;
    const double frac =
        expected_ ? std::min(1.0, static_cast<double>(p.completed) / static_cast<double>(expected_)) : 0;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %5.1f%%  %llu arrived, %llu done, simulated %.1f s, wall %.1f s", bar.c_str(),
                 frac * 100.0, static_cast<unsigned long long>(p.arrived), static_cast<unsigned long long>(p.completed),
                 p.now.seconds(), elapsed);
    if (final_update) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  uint64_t expected_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

std::unique_ptr<std::ofstream> open_out(const std::filesystem::path& p) {
  auto f = std::make_unique<std::ofstream>(p, std::ios::binary);
  if (!*f) throw std::ios_base::failure(p.string() + ": cannot open for writing");
  return f;
}

// The band's figures of one run's summary: throughput, SLO attainment and goodput, latency P50 / P99.
Json band_figures(const Json& s) {
  Json f{{"requests_per_s", s["throughput"]["requests_per_s"]},
         {"slo_attainment", s["slo"]["attainment"]},
         {"goodput_requests_per_s", s["slo"]["goodput_requests_per_s"]}};
  for (const char* name : {"ttft", "tbt", "tpot", "jct"})
    f[name] = {{"p50_ms", s["latency"][name]["p50_ms"]}, {"p99_ms", s["latency"][name]["p99_ms"]}};
  return f;
}

// The band's smallest and largest value of each figure over the run and its two ends (a queue near
// saturation need not move monotonically with the scale).
void print_band(std::ostream& os, const Json& band, const Json& central) {
  const Json runs[] = {central, band["slower"], band["faster"]};
  auto range = [&](const auto& get, const char* f) {
    double lo = get(runs[0]), hi = lo;
    for (const Json& r : runs) lo = std::min(lo, get(r)), hi = std::max(hi, get(r));
    char a[40], b[40];
    std::snprintf(a, sizeof a, f, lo);
    std::snprintf(b, sizeof b, f, hi);
    return std::string(a) + " .. " + b;
  };
  auto key = [](const char* k, double unit = 1) { return [=](const Json& r) { return unit * r[k].get<double>(); }; };
  auto latency = [](const char* name, const char* q) {
    return [=](const Json& r) { return r[name][q].get<double>(); };
  };
  const double pct = 100 * band["iteration_time_fraction"].get<double>();
  char line[240];
  std::snprintf(line, sizeof line, "\n  band: every iteration %g%% longer .. %g%% shorter (costmodel.time_scale)\n",
                pct, pct);
  os << line;
  os << "  throughput " << range(key("requests_per_s"), "%.3f") << " req/s; SLO "
     << range(key("slo_attainment", 100), "%.1f%%") << " met, goodput " << range(key("goodput_requests_per_s"), "%.3f")
     << " req/s\n";
  for (const char* name : {"ttft", "tbt", "tpot", "jct"}) {
    std::snprintf(line, sizeof line, "  %-10s P50 %-24s P99 %s ms\n", name,
                  range(latency(name, "p50_ms"), "%.2f").c_str(), range(latency(name, "p99_ms"), "%.2f").c_str());
    os << line;
  }
}

}  // namespace

int run_simulate(const SimulateOptions& o) {
  return run_guarded([&]() -> int {
    sim::Experiment exp = sim::load_experiment(o.config, o.overrides, o.gpus);
    auto cost = sim::make_cost_model(exp);
    const std::filesystem::path out =
        o.out_dir.empty() ? std::filesystem::path("results") / exp.name : std::filesystem::path(o.out_dir);
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) {
      std::cerr << "fdcsim: " << out.string() << ": cannot create output folder: " << ec.message() << "\n";
      return kExitIo;
    }
    auto req_csv = exp.outputs.per_request_csv ? open_out(out / "requests.csv") : nullptr;
    auto kv_csv = open_out(out / "kv_utilization.csv");
    std::unique_ptr<std::ofstream> trace = o.trace_out.empty() ? nullptr : open_out(o.trace_out);
    std::unique_ptr<std::ofstream> timeline = o.timeline_out.empty() ? nullptr : open_out(o.timeline_out);

    sim::Simulator simulator(exp, *cost, sim::OutputStreams{req_csv.get(), kv_csv.get(), trace.get(), timeline.get()});
    // The resolved config is complete once the simulator is built; write it before running.
    {
      auto f = open_out(out / "config.resolved.json");
      *f << exp.resolved.dump(2) << "\n";
    }
    uint64_t expected = 0;
    if (exp.resolved.contains("workload") && exp.resolved["workload"].contains("num_requests") &&
        exp.resolved["workload"]["num_requests"].is_number_unsigned())
      expected = exp.resolved["workload"]["num_requests"].get<uint64_t>();
    ProgressBar bar(!o.quiet && (o.progress || isatty(STDERR_FILENO)), expected);
    const auto t0 = std::chrono::steady_clock::now();
    bool done = false;
    simulator.run([&](const sim::Progress& p) { bar.update(p, done); });
    done = true;
    bar.update(sim::Progress{simulator.totals().arrived, simulator.totals().completed, Nanos(0)}, true);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    Json summary = simulator.summary();
    if (o.band_pct) {
      const double f = *o.band_pct / 100;
      Json band{{"iteration_time_fraction", f}};
      for (const auto& [key, scale] : {std::pair<const char*, double>{"slower", 1 + f}, {"faster", 1 - f}}) {
        std::vector<std::string> sets = o.overrides;
        char set[80];
        std::snprintf(set, sizeof set, "costmodel.time_scale=%.17g", exp.time_scale * scale);
        sets.emplace_back(set);
        if (!o.quiet) std::cerr << "fdcsim simulate: band: every iteration x " << scale << "\n" << std::flush;
        sim::Experiment e = sim::load_experiment(o.config, sets, o.gpus);
        auto c = sim::make_cost_model(e);
        sim::Simulator s(e, *c, sim::OutputStreams{nullptr, nullptr, nullptr, nullptr});
        s.run();
        band[key] = band_figures(s.summary());
      }
      summary["band"] = band;
    }
    {
      auto f = open_out(out / "summary.json");
      *f << summary.dump(2) << "\n";
    }
    for (auto* f : {req_csv.get(), kv_csv.get(), trace.get(), timeline.get()}) {
      if (f && !f->flush()) throw std::ios_base::failure("an output file could not be written in " + out.string());
    }
    if (!o.quiet) {
      print_summary_table(std::cout, summary);
      if (summary.contains("band")) print_band(std::cout, summary["band"], band_figures(summary));
      std::cout << "\n  outputs in " << out.string() << ": summary.json, config.resolved.json, kv_utilization.csv"
                << (req_csv ? ", requests.csv" : "") << (trace ? ", trace " + o.trace_out : "") << "\n";
    }
    const auto& t = simulator.totals();
    char line[200];
    std::snprintf(line, sizeof line,
                  "fdcsim: simulated %llu requests, %llu events in %.3f s wall (%.0f events/s, %.0f requests/s)\n",
                  static_cast<unsigned long long>(t.arrived), static_cast<unsigned long long>(t.events), wall,
                  static_cast<double>(t.events) / std::max(wall, 1e-9),
                  static_cast<double>(t.arrived) / std::max(wall, 1e-9));
    std::cerr << line;
    return kExitOk;
  });
}

}  // namespace fdc::cli
