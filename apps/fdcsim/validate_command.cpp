#include "apps/fdcsim/validate_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "apps/fdcsim/band_option.h"
#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/run_guarded.h"
#include "core/error.h"
#include "sim/experiment.h"
#include "sim/simulator.h"
#include "sim/timeline.h"
#include "validate/compare.h"
#include "validate/report_files.h"

namespace fdc::cli {

void add_validate_command(CLI::App& app, ValidateOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "validate", "Compare a measured timeline with the simulator's prediction of the same config and workload");
  auto* measured = sub->add_option("--measured,-m", o.measured, "Measured timeline (JSON lines, docs/validate.md)");
  add_engine_options(sub, o.engine, false);
  sub->get_option("--config")->description(
      "Run the engine on this machine's GPUs for this experiment first (CUDA builds), then compare");
  measured->excludes(sub->get_option("--config"));
  sub->get_option("--set")->description(
      "Override one config value, KEY=VALUE; repeatable. With --config: of the experiment (engine and prediction "
      "alike); with --measured: of the timeline's config, for the prediction (e.g. another cost model)");
  sub->add_option("--out,-o", o.out_dir, "Output folder (default: results/validate-<experiment name>)");
  add_band_option(sub, o.band_pct,
                  "Also predict the run with every iteration PCT percent shorter and longer (costmodel.time_scale) "
                  "and report each request metric's band and whether the measured value lies in it");
}

namespace {

void print_report(std::ostream& os, const validate::Report& r, const std::string& device,
                  const std::optional<validate::PredictionBand>& band) {
  char line[200];
  os << "fdcsim validate: measured on " << (device.empty() ? "(unnamed device)" : device) << "\n\n";
  os << "  iteration time error   count    median       P90     worst   mean (signed)\n";
  auto row = [&](const char* name, const validate::ErrorStats& s) {
    std::snprintf(line, sizeof line, "  %-20s %7zu %8.2f%% %8.2f%% %8.2f%% %+8.2f%%\n", name, s.count,
                  100 * s.median_abs, 100 * s.p90_abs, 100 * s.worst_abs, 100 * s.mean);
    os << line;
  };
  row("all", r.iterations.all);
  row("prefill", r.iterations.prefill);
  row("decode", r.iterations.decode);
  row("mixed", r.iterations.mixed);
  // Where along the batch size the steps are off (a bias over a range of sizes is what a queue
  // integrates).
  auto by_size = [&](const char* title, const std::vector<validate::SizeBin>& bins) {
    if (bins.empty()) return;
    std::snprintf(line, sizeof line, "\n  %-26s    count   summed error   median |error|\n", title);
    os << line;
    for (const validate::SizeBin& b : bins) {
      const std::string range = b.lo == b.hi ? std::to_string(b.lo) : std::to_string(b.lo) + "-" + std::to_string(b.hi);
      std::snprintf(line, sizeof line, "  %-24s %8zu %+12.2f%% %14.2f%%\n", range.c_str(), b.count,
                    100 * b.summed_error, 100 * b.median_abs);
      os << line;
    }
  };
  by_size("decode steps by sequences", validate::decode_by_sequences(r.iterations));
  by_size("prefill steps by tokens", validate::prefill_by_tokens(r.iterations));
  os << "\n  request metric (ms)    measured  predicted    error   = measured";
  if (band) {
    std::snprintf(line, sizeof line, "   band, iterations +-%g%%", 100 * band->fraction);
    os << line;
  }
  os << "\n";
  const char* qn[] = {"P50", "P90", "P99"};
  // " [lo, hi] in" / " [lo, hi] OUT" after a row, with --band.
  auto band_cell = [&](const validate::MetricBand& b, double unit, const char* f) {
    char lo[32], hi[32];
    std::snprintf(lo, sizeof lo, f, b.lo * unit);
    std::snprintf(hi, sizeof hi, f, b.hi * unit);
    return "   [" + std::string(lo) + ", " + hi + "] " + (b.inside() ? "in" : "OUT");
  };
  for (const auto& [metric, arr] : r.requests.percentiles) {
    for (size_t i = 0; i < 3; ++i) {
      std::snprintf(line, sizeof line, "  %-4s %-4s %17.2f %10.2f %+8.2f%%", metric.c_str(), qn[i],
                    arr[i].measured * 1e3, arr[i].predicted * 1e3, 100 * arr[i].error());
      os << line;
      // Where the prediction lies in the measured distribution: P99 predicted as the measured P99.4.
      if (arr[i].measured_quantile >= 0) {
        std::snprintf(line, sizeof line, "   P%-7.4g", 100 * arr[i].measured_quantile);
        os << line;
      }
      if (band && band->percentiles.count(metric)) os << band_cell(band->percentiles.at(metric)[i], 1e3, "%.2f");
      os << "\n";
    }
  }
  std::snprintf(line, sizeof line, "  throughput (req/s) %12.3f %10.3f %+8.2f%%", r.requests.throughput_rps.measured,
                r.requests.throughput_rps.predicted, 100 * r.requests.throughput_rps.error());
  os << line << (band ? band_cell(band->throughput_rps, 1, "%.3f") : std::string()) << "\n";
  std::snprintf(line, sizeof line, "  sustained (req/s)  %12.3f %10.3f %+8.2f%%   (until the last request was scheduled)\n",
                r.requests.sustained_rps.measured, r.requests.sustained_rps.predicted, 100 * r.requests.sustained_rps.error());
  os << line;
  if (r.requests.sustained_rps.measured > 0 && !r.requests.sustained_loaded())
    os << "    (under half the throughput: every request was scheduled early, so this is no capacity; a burst "
          "needs more requests than the server holds at once)\n";
  if (r.slo) {
    const auto& s = *r.slo;
    std::snprintf(line, sizeof line, "  SLO (TTFT <= %g ms, TPOT <= %g ms)\n", s.slo.ttft_ms, s.slo.tpot_ms);
    os << line;
    std::snprintf(line, sizeof line, "  attainment         %11.1f%% %9.1f%% %+7.1f pp", 100 * s.measured.attainment,
                  100 * s.predicted.attainment, 100 * s.attainment_difference());
    os << line << (band && band->slo_attainment ? band_cell(*band->slo_attainment, 100, "%.1f%%") : std::string())
       << "\n";
    auto share = [](int64_t n, int64_t of) {
      return of > 0 ? 100.0 * static_cast<double>(n) / static_cast<double>(of) : 0.0;
    };
    std::snprintf(line, sizeof line, "    TTFT met         %11.1f%% %9.1f%%\n",
                  share(s.measured.ttft_met, s.measured.completed), share(s.predicted.ttft_met, s.predicted.completed));
    os << line;
    std::snprintf(line, sizeof line, "    TPOT met         %11.1f%% %9.1f%%\n",
                  share(s.measured.tpot_met, s.measured.completed), share(s.predicted.tpot_met, s.predicted.completed));
    os << line;
    std::snprintf(line, sizeof line, "  goodput (req/s)    %12.3f %10.3f %+8.2f%%\n", s.measured.goodput_rps,
                  s.predicted.goodput_rps, 100 * s.goodput().error());
    os << line;
  }
  os << "\n";
  os << "  KV blocks per replica: measured " << r.measured_blocks << ", predicted " << r.predicted_blocks
     << (r.blocks_equal() ? " (equal)" : " (DIFFERENT)") << "\n";
  os << "  targets: iteration median <= " << 100 * r.targets.iteration_median
     << "% and P90 <= " << 100 * r.targets.iteration_p90 << "%: " << (r.iteration_target_met() ? "met" : "NOT met")
     << "; request P50/P99 within " << 100 * r.targets.request_percentile
     << "%: " << (r.request_target_met() ? "met" : "NOT met") << "\n";
  if (band)
    os << "  band: " << band->target_metrics_inside() << " of the 6 (TTFT, TBT, JCT at P50 and P99) measured within "
       << "the predictions with every iteration " << 100 * band->fraction << "% shorter to " << 100 * band->fraction
       << "% longer\n";
}

// The request metrics of the prediction with costmodel.time_scale = time_scale.
validate::RequestErrors predict_scaled(const Json& config, const std::string& source, const std::string& base,
                                       double time_scale, const sim::Timeline& measured,
                                       std::optional<validate::SloComparison>& slo) {
  Json c = config;
  c["costmodel"]["time_scale"] = time_scale;
  sim::Experiment e =
      sim::load_experiment_json(c, source + " with costmodel.time_scale=" + std::to_string(time_scale), base);
  auto cost = sim::make_cost_model(e);
  std::stringstream text;
  sim::Simulator simulator(e, *cost, sim::OutputStreams{nullptr, nullptr, nullptr, &text});
  simulator.run();
  const sim::Timeline predicted = sim::parse_timeline(text, "predicted timeline (band)");
  if (slo) slo = validate::compare_slo(measured, predicted, e.slo);
  return validate::compare_requests(measured, predicted);
}

}  // namespace

int run_validate(const ValidateOptions& o) {
  return run_guarded([&]() -> int {
    if (o.measured.empty() && o.engine.config.empty())
      throw InputError("validate: give --measured TIMELINE (compare a saved run) or --config EXPERIMENT (run the "
                       "engine here first)");
    std::string measured_path = o.measured;
    if (measured_path.empty()) {
      EngineCommandOptions eo = o.engine;
      const std::filesystem::path dir = o.out_dir.empty() ? std::filesystem::path() : std::filesystem::path(o.out_dir);
      if (!dir.empty()) eo.timeline_out = (dir / "measured_timeline.jsonl").string();
      measured_path = run_engine_to_timeline(eo);
    }
    sim::Timeline measured = sim::read_timeline(measured_path);
    Json config = measured.header.config;
    if (!o.measured.empty())
      for (const auto& s : o.engine.overrides) apply_override(config, s);
    const std::string base = std::filesystem::path(measured_path).parent_path().string();
    sim::Experiment exp = sim::load_experiment_json(config, measured_path + " (header config)", base);
    auto cost = sim::make_cost_model(exp);
    const std::filesystem::path out = o.out_dir.empty() ? std::filesystem::path("results") / ("validate-" + exp.name)
                                                        : std::filesystem::path(o.out_dir);
    std::filesystem::create_directories(out);

    std::stringstream predicted_text;
    sim::Simulator simulator(exp, *cost, sim::OutputStreams{nullptr, nullptr, nullptr, &predicted_text});
    simulator.run();
    {
      std::ofstream f(out / "predicted_timeline.jsonl");
      f << predicted_text.str();
    }
    sim::Timeline predicted = sim::parse_timeline(predicted_text, "predicted timeline");
    validate::Report report = validate::compare(measured, predicted, *cost, exp.slo);

    std::optional<validate::PredictionBand> band;
    if (o.band_pct) {
      const double f = *o.band_pct / 100;
      std::vector<validate::RequestErrors> predictions{report.requests};
      std::vector<validate::SloComparison> slos;
      if (report.slo) slos.push_back(*report.slo);
      for (double scale : {1 - f, 1 + f}) {
        if (!o.engine.quiet)
          std::cerr << "fdcsim validate: band: predicting with every iteration x " << scale << "\n" << std::flush;
        std::optional<validate::SloComparison> slo;
        if (report.slo) slo.emplace();
        predictions.push_back(
            predict_scaled(config, measured_path + " (header config)", base, exp.time_scale * scale, measured, slo));
        if (slo) slos.push_back(*slo);
      }
      band = validate::prediction_band(f, predictions, slos);
    }

    Json j = report.to_json();
    if (band) j["band"] = band->to_json();
    j["measured_timeline"] = measured_path;
    j["device"] = measured.header.device;
    j["cost_model"] = cost->describe();
    // Queries of the simulation and of the measured iterations alike, answered outside the
    // profile's measured grid.
    j["cost_model_outside_measured"] = sim::range_uses_json(cost->outside_measured());
    std::ofstream(out / "validation.json") << j.dump(2) << "\n";
    {
      std::ofstream f(out / "iterations.csv");
      validate::write_iterations_csv(f, report.iterations);
    }
    {
      std::ofstream f(out / "requests.csv");
      validate::write_requests_csv(f, measured, predicted);
    }
    {
      std::ofstream f(out / "iteration_times.svg");
      validate::write_iteration_scatter_svg(f, report.iterations);
    }
    {
      std::ofstream f(out / "request_cdfs.svg");
      validate::write_request_cdfs_svg(f, validate::request_samples(measured), validate::request_samples(predicted));
    }
    if (!o.engine.quiet) {
      print_report(std::cout, report, measured.header.device, band);
      for (const auto& u : cost->outside_measured()) {
        char line[120];
        std::snprintf(line, sizeof line, "  outside the measured grid: %s in %.1f%% of %lld queries, e.g. ", u.op.c_str(),
                      100.0 * static_cast<double>(u.outside) / static_cast<double>(u.queries),
                      static_cast<long long>(u.queries));
        std::cout << line << u.example << "\n";
      }
      std::cout << "\n  outputs in " << out.string()
                << ": validation.json, iterations.csv, requests.csv, iteration_times.svg, request_cdfs.svg, "
                   "predicted_timeline.jsonl\n";
    }
    return kExitOk;
  });
}

}  // namespace fdc::cli
