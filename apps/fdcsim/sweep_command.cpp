#include "apps/fdcsim/sweep_command.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>

#include "apps/fdcsim/band_option.h"
#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/label_width.h"
#include "apps/fdcsim/mpi_ranks.h"
#include "apps/fdcsim/run_guarded.h"
#include "core/error.h"
#include "sim/experiment.h"
#include "sim/simulator.h"

namespace fdc::cli {

void add_sweep_command(CLI::App& app, SweepOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "sweep",
      "Simulate every combination of --vary values (and --compare-policy policies) and print them side by side: "
      "throughput, SLO attainment, TTFT / TBT / JCT percentiles; --csv-out writes every run's figures, --json-out "
      "every run's whole summary. Runs on the local cores (--jobs) and over the ranks of an MPI launch.");
  sub->add_option("--config,-c", o.config,
                  "Experiment JSON file or embedded experiment name, as for simulate (none = default)");
  sub->add_option("--set", o.overrides, "Override a config value, KEY=VALUE (as for simulate); repeatable");
  sub->add_option("--vary", o.vary,
                  "KEY=V1,V2,...: one run per value of this config key (repeatable; several keys and "
                  "--compare-policy give every combination), e.g. --vary workload.arrival.rate_per_s=2,4,8; a value "
                  "that is JSON as a whole is one value");
  sub->add_option("--compare-policy", o.policies,
                  "Run every combination with each of these policies (repeatable, or a comma list: "
                  "none,fdc-uniform-50)")
      ->delimiter(',');
  sub->add_option("--gpus", o.gpus, "Simulate one server of N GPUs (as simulate --gpus)")->check(CLI::PositiveNumber);
  sub->add_option("--csv-out", o.csv_out, "Write one row per run (its varied values and figures) to this CSV file");
  sub->add_option("--json-out", o.json_out, "Write every run's variant and whole summary to this JSON file");
  add_band_option(sub, o.band_pct,
                  "Also run every combination with every iteration PCT percent longer and shorter "
                  "(costmodel.time_scale) and report each figure's band over the three runs: how far the answer "
                  "moves for a cost model off by that much");
  sub->add_option("--jobs,-j", o.jobs,
                  "Run up to this many simulations at once; every result is the same as with 1 (default: the "
                  "machine's hardware threads)")
      ->check(CLI::PositiveNumber);
}

namespace {

// The figures of one run, as the table and the CSV show them: name, path in the summary.
struct Column {
  const char* name;
  std::vector<const char*> path;
};
const std::vector<Column>& csv_columns() {
  static const std::vector<Column> cols = {
      {"servers", {"cluster", "servers"}},
      {"gpus", {"cluster", "gpus"}},
      {"price_per_hour_usd", {"cluster", "price_per_hour_usd"}},
      {"arrived", {"requests", "arrived"}},
      {"completed", {"requests", "completed"}},
      {"rejected", {"requests", "rejected"}},
      {"preemptions", {"requests", "preemptions"}},
      {"throughput_requests_per_s", {"throughput", "requests_per_s"}},
      {"output_tokens_per_s", {"throughput", "output_tokens_per_s"}},
      {"goodput_requests_per_s", {"slo", "goodput_requests_per_s"}},
      {"slo_attainment", {"slo", "attainment"}},
      {"ttft_p50_ms", {"latency", "ttft", "p50_ms"}},
      {"ttft_p90_ms", {"latency", "ttft", "p90_ms"}},
      {"ttft_p99_ms", {"latency", "ttft", "p99_ms"}},
      {"tbt_p50_ms", {"latency", "tbt", "p50_ms"}},
      {"tbt_p90_ms", {"latency", "tbt", "p90_ms"}},
      {"tbt_p99_ms", {"latency", "tbt", "p99_ms"}},
      {"tpot_p50_ms", {"latency", "tpot", "p50_ms"}},
      {"tpot_p90_ms", {"latency", "tpot", "p90_ms"}},
      {"tpot_p99_ms", {"latency", "tpot", "p99_ms"}},
      {"jct_p50_ms", {"latency", "jct", "p50_ms"}},
      {"jct_p90_ms", {"latency", "jct", "p90_ms"}},
      {"jct_p99_ms", {"latency", "jct", "p99_ms"}},
      {"queue_p50_ms", {"latency", "queue", "p50_ms"}},
      {"queue_p99_ms", {"latency", "queue", "p99_ms"}},
      {"kv_mean_utilization", {"kv_cache", "mean_utilization"}},
      {"kv_max_utilization", {"kv_cache", "max_utilization"}},
      {"gpu_busy_fraction", {"gpu_busy_fraction"}},
      {"makespan_s", {"makespan_s"}},
  };
  return cols;
}

// The figures whose band --band reports (the table's, and CSV columns NAME_band_lo / _band_hi).
const std::vector<Column>& band_columns() {
  static const std::vector<Column> cols = {
      {"throughput_requests_per_s", {"throughput", "requests_per_s"}},
      {"slo_attainment", {"slo", "attainment"}},
      {"ttft_p50_ms", {"latency", "ttft", "p50_ms"}},
      {"ttft_p99_ms", {"latency", "ttft", "p99_ms"}},
      {"tbt_p99_ms", {"latency", "tbt", "p99_ms"}},
      {"jct_p50_ms", {"latency", "jct", "p50_ms"}},
  };
  return cols;
}

// The value at `path` in a run's summary; null when absent (a latency with no samples).
const Json& at(const Json& summary, const std::vector<const char*>& path) {
  static const Json null;
  const Json* j = &summary;
  for (const char* k : path) {
    if (!j->is_object() || !j->contains(k)) return null;
    j = &(*j)[k];
  }
  return *j;
}

double num(const Json& summary, const std::vector<const char*>& path) {
  const Json& v = at(summary, path);
  return v.is_number() ? v.get<double>() : 0.0;
}

// A CSV field: JSON numbers as JSON writes them (exact), strings quoted when they need it.
std::string csv_field(const Json& v) {
  if (v.is_null()) return "";
  std::string s = v.is_string() ? v.get<std::string>() : v.dump();
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void write_or_fail(std::ofstream& f, const std::string& path, const std::string& text) {
  f << text;
  if (!f.flush()) throw std::ios_base::failure(path + ": could not be written");
}

}  // namespace

int run_sweep(const SweepOptions& o) {
  return run_guarded([&]() -> int {
    // Everything checked before the first run, on every rank of an MPI launch alike; rank 0 alone
    // writes the output files.
    sim::ExperimentInput base;
    std::vector<sim::Variant> variants;
    std::vector<std::string> labels;
    std::unique_ptr<std::ofstream> csv_file, json_file;
    const bool rank0 = mpi_ranks().rank == 0;
    all_ranks([&] {
      base = sim::on_one_server(sim::read_experiment_input(o.config, o.overrides), o.gpus);
      variants = sim::variants_of(base, o.vary, o.policies);
      for (const auto& v : variants) {
        const sim::Experiment e = sim::load_experiment_json(v.input.config, v.input.source, v.input.base_dir);
        labels.push_back(v.label.empty() ? e.resolved["policy"].value("name", "run") : v.label);
      }
      if (!rank0) return;
      for (auto [path, file] : {std::pair{&o.csv_out, &csv_file}, std::pair{&o.json_out, &json_file}}) {
        if (path->empty()) continue;
        *file = std::make_unique<std::ofstream>(*path, std::ios::binary);
        if (!**file) throw std::ios_base::failure(*path + ": cannot open for writing");
      }
    });

    // The runs: per variant the cost model's own times and, with --band, the slower and faster ends.
    const double band = o.band_pct ? *o.band_pct / 100 : 0.0;
    const BandRuns runs = with_band_ends(variants, labels, o.band_pct);
    const size_t per_variant = runs.per_input;
    const std::vector<sim::ExperimentInput>& run_inputs = runs.inputs;
    const std::vector<std::string>& run_labels = runs.labels;
    std::mutex stderr_mutex;
    const std::vector<std::string> found = run_tasks_over_ranks(run_inputs.size(), o.jobs, [&](size_t i) {
      const sim::ExperimentInput& in = run_inputs[i];
      sim::Experiment e = sim::load_experiment_json(in.config, in.source, in.base_dir);
      auto cost = sim::make_cost_model(e);
      sim::Simulator s(e, *cost, sim::OutputStreams{});
      s.run();
      Json summary = s.summary();
      char line[320];
      std::snprintf(line, sizeof line,
                    "fdcsim sweep: %s: %.3f req/s, SLO met for %.1f%% of %llu completed, TTFT P99 %.1f ms\n",
                    run_labels[i].c_str(), num(summary, {"throughput", "requests_per_s"}),
                    100 * num(summary, {"slo", "attainment"}),
                    static_cast<unsigned long long>(num(summary, {"requests", "completed"})),
                    num(summary, {"latency", "ttft", "p99_ms"}));
      const std::lock_guard<std::mutex> lock(stderr_mutex);
      std::cerr << line << std::flush;
      return summary.dump();
    });
    if (!rank0) return kExitOk;  // rank 0 reports
    std::vector<Json> summaries, slower, faster;
    for (size_t i = 0; i < found.size(); ++i) {
      const size_t k = i % per_variant;
      (k == 0 ? summaries : k == 1 ? slower : faster).push_back(Json::parse(found[i]));
    }
    // A figure's smallest and largest value over a variant's run and its two ends (a queue near
    // saturation need not move monotonically with the scale).
    auto band_of = [&](size_t i, const Column& c) {
      double lo = num(summaries[i], c.path), hi = lo;
      for (const Json* s : {&slower[i], &faster[i]})
        lo = std::min(lo, num(*s, c.path)), hi = std::max(hi, num(*s, c.path));
      return std::pair{lo, hi};
    };

    // The SLO the runs were measured against (as resolved: the summary's), when they share one.
    auto slo_of = [](const Json& s) { return std::pair{num(s, {"slo", "ttft_ms"}), num(s, {"slo", "tpot_ms"})}; };
    bool one_slo = true;
    for (const Json& s : summaries) one_slo = one_slo && slo_of(s) == slo_of(summaries.front());
    std::cout << "fdcsim sweep: " << base.config.value("name", "unnamed") << " (" << base.source << "), "
              << variants.size() << " runs";
    if (o.band_pct) std::cout << " (" << run_inputs.size() << " simulations with the band's ends)";
    std::cout << "; ";
    if (one_slo)
      std::cout << "SLO TTFT <= " << slo_of(summaries.front()).first
                << " ms and TPOT <= " << slo_of(summaries.front()).second << " ms\n";
    else
      std::cout << "each run's own SLO (varied)\n";
    // The varied keys in the order given (then the policy): the label's values, the CSV's columns.
    std::vector<std::string> keys;
    for (const std::string& v : o.vary) {
      const std::string k = v.substr(0, v.find('='));
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    if (!o.policies.empty()) keys.push_back("policy");
    if (!o.vary.empty()) {
      std::cout << "  variant = ";
      for (size_t i = 0; i < keys.size(); ++i) std::cout << (i ? ", " : "") << keys[i];
      std::cout << "\n";
    }
    const int width = label_width(labels);
    std::cout << "\n";
    char line[400];
    std::snprintf(line, sizeof line, "  %-*s %9s %9s %8s %11s %11s %10s %11s %8s\n", width,
                  o.vary.empty() ? "policy" : "variant", "req/s", "goodput", "SLO met", "TTFT P50 ms", "TTFT P99 ms",
                  "TBT P99 ms", "JCT P50 ms", "preempt");
    std::cout << line;
    for (size_t i = 0; i < summaries.size(); ++i) {
      const Json& s = summaries[i];
      std::snprintf(line, sizeof line, "  %-*s %9.3f %9.3f %7.1f%% %11.1f %11.1f %10.1f %11.1f %8lld\n", width,
                    labels[i].c_str(), num(s, {"throughput", "requests_per_s"}),
                    num(s, {"slo", "goodput_requests_per_s"}), 100 * num(s, {"slo", "attainment"}),
                    num(s, {"latency", "ttft", "p50_ms"}), num(s, {"latency", "ttft", "p99_ms"}),
                    num(s, {"latency", "tbt", "p99_ms"}), num(s, {"latency", "jct", "p50_ms"}),
                    static_cast<long long>(num(s, {"requests", "preemptions"})));
      std::cout << line;
    }
    if (o.band_pct) {
      std::cout << "\n  band: every iteration " << 100 * band << "% longer .. " << 100 * band
                << "% shorter (costmodel.time_scale); smallest .. largest over the three runs\n";
      std::snprintf(line, sizeof line, "  %-*s %17s %18s %24s %22s\n", width, "", "SLO met", "req/s", "TTFT P99 ms",
                    "TBT P99 ms");
      std::cout << line;
      for (size_t i = 0; i < summaries.size(); ++i) {
        const auto cols = band_columns();
        const auto [s_lo, s_hi] = band_of(i, cols[1]);
        const auto [r_lo, r_hi] = band_of(i, cols[0]);
        const auto [t_lo, t_hi] = band_of(i, cols[3]);
        const auto [b_lo, b_hi] = band_of(i, cols[4]);
        std::snprintf(line, sizeof line, "  %-*s %6.1f .. %6.1f%% %7.3f .. %7.3f %10.1f .. %10.1f %9.1f .. %9.1f\n",
                      width, labels[i].c_str(), 100 * s_lo, 100 * s_hi, r_lo, r_hi, t_lo, t_hi, b_lo, b_hi);
        std::cout << line;
      }
    }

    if (csv_file) {
      // Columns: the label, one per varied key (and the policy), then the figures.
      std::string text = "variant";
      for (const auto& k : keys) text += "," + csv_field(k);
      if (std::find(keys.begin(), keys.end(), "policy") == keys.end()) text += ",policy_name";
      for (const auto& c : csv_columns()) text += std::string(",") + c.name;
      if (o.band_pct)
        for (const auto& c : band_columns()) text += std::string(",") + c.name + "_band_lo," + c.name + "_band_hi";
      text += "\n";
      for (size_t i = 0; i < summaries.size(); ++i) {
        text += csv_field(labels[i]);
        for (const auto& k : keys) text += "," + csv_field(variants[i].settings.value(k, Json()));
        if (std::find(keys.begin(), keys.end(), "policy") == keys.end())
          text += "," + csv_field(at(summaries[i], {"policy", "name"}));
        for (const auto& c : csv_columns()) text += "," + csv_field(at(summaries[i], c.path));
        if (o.band_pct)
          for (const auto& c : band_columns()) {
            const auto [lo, hi] = band_of(i, c);
            text += "," + Json(lo).dump() + "," + Json(hi).dump();
          }
        text += "\n";
      }
      write_or_fail(*csv_file, o.csv_out, text);
    }
    if (json_file) {
      Json j{{"experiment", base.config.value("name", "unnamed")}, {"source", base.source}, {"runs", Json::array()}};
      for (size_t i = 0; i < summaries.size(); ++i) {
        Json r{{"label", labels[i]}, {"variant", variants[i].settings}, {"summary", summaries[i]}};
        if (o.band_pct) r["band"] = {{"iteration_time_fraction", band}, {"slower", slower[i]}, {"faster", faster[i]}};
        j["runs"].push_back(std::move(r));
      }
      write_or_fail(*json_file, o.json_out, j.dump(2) + "\n");
    }
    return kExitOk;
  });
}

}  // namespace fdc::cli
