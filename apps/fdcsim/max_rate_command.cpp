#include "apps/fdcsim/max_rate_command.h"

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
#include "sim/experiment.h"
#include "sim/max_rate.h"

namespace fdc::cli {

void add_max_rate_command(CLI::App& app, MaxRateCommandOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "max-rate",
      "Find the highest arrival rate (workload.arrival.rate_per_s) at which the config's SLO (slo.ttft_ms, "
      "slo.tpot_ms) is met for a target fraction of requests: bracketing, then bisection, each probe a full "
      "simulation with the config's seed. Progress on stderr, the result table on stdout. Exit 1 when no rate "
      "tried meets the SLO.");
  sub->add_option("--config,-c", o.config,
                  "Experiment JSON file or embedded experiment name, as for simulate (none = default); it must set "
                  "slo.ttft_ms and slo.tpot_ms and have a rate-driven arrival process (poisson, gamma, fixed_rate)");
  sub->add_option("--set", o.overrides, "Override a config value, KEY=VALUE (as for simulate); repeatable");
  sub->add_option("--attainment", o.attainment, "Target fraction of completed requests meeting the SLO, in (0, 1]")
      ->capture_default_str();
  sub->add_option("--tol", o.tol, "Stop when the bracket is this narrow, relative to its lower end (0.02 = 2%)")
      ->capture_default_str();
  sub->add_option("--rate-lo", o.rate_lo,
                  "Lowest rate to try, req/s; it must meet the SLO (else: exit 1). Default: start from the config's "
                  "rate and halve as needed");
  sub->add_option("--rate-hi", o.rate_hi,
                  "A rate to try first from above, req/s (doubled while it still meets the SLO). Default: from the "
                  "config's rate");
  sub->add_option("--max-doublings", o.max_doublings,
                  "How many times the rate may double up (or halve down) from its start before the search reports "
                  "a lower bound (or no rate)")
      ->capture_default_str();
  sub->add_option("--compare-policy", o.policies,
                  "Run the same search for each of these policies (repeatable, or a comma list: "
                  "none,fdc-uniform-50) and print them side by side")
      ->delimiter(',');
  sub->add_option("--gpus", o.gpus,
                  "Simulate one server of N GPUs (hardware.gpus_per_server=N, cluster.servers=1), as `validate "
                  "--gpus N` runs the engine")
      ->check(CLI::PositiveNumber);
  sub->add_option("--vary", o.vary,
                  "KEY=V1,V2,...: run the same search for each value of this config key (repeatable; with several "
                  "keys and --compare-policy, every combination), e.g. --vary hardware=p4de,p5; a value that is JSON "
                  "as a whole is one value");
  sub->add_option("--json-out", o.json_out, "Write every probe and the result to this JSON file");
  sub->add_option("--jobs,-j", o.jobs,
                  "Run the independent searches (one per variant, and with --band its two ends) on up to this many "
                  "threads; every result is the same as with 1 (default: the machine's hardware threads)")
      ->check(CLI::PositiveNumber);
  add_band_option(sub, o.band_pct,
                  "Also search with every iteration PCT percent longer and shorter (costmodel.time_scale) and print "
                  "the band of rates: how far the answer moves for a cost model off by that much");
}

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// labels: each search's row name (its policy, or with --vary its variant's values).
void print_table(std::ostream& os, const std::vector<sim::MaxRateResult>& results,
                 const std::vector<std::string>& labels, const char* label_title) {
  const int width = label_width(labels);
  const bool compare = results.size() > 1;
  const sim::MaxRateResult* base = compare && results[0].status == sim::MaxRateStatus::kFound ? &results[0] : nullptr;
  char line[240];
  std::snprintf(line, sizeof line, "  %-*s %16s %10s %11s %16s %7s%s\n", width, label_title, "max rate (req/s)",
                "fails at", "attainment", "goodput (req/s)", "probes", base ? ("   vs " + labels[0]).c_str() : "");
  os << line;
  for (size_t i = 0; i < results.size(); ++i) {
    const sim::MaxRateResult& r = results[i];
    const sim::RateProbe& p = r.at_rate();
    std::string rate, fails = "-", vs;
    switch (r.status) {
      case sim::MaxRateStatus::kFound:
        rate = fmt("%.3f", r.rate_per_s);
        fails = fmt("%.3f", r.upper_rate_per_s);
        break;
      case sim::MaxRateStatus::kLowerBound:
        rate = ">= " + fmt("%.3f", r.rate_per_s);
        break;
      case sim::MaxRateStatus::kNoneMeets:
        rate = "none";
        fails = fmt("%.3f", r.rate_per_s);
        break;
    }
    if (base && r.status != sim::MaxRateStatus::kNoneMeets)
      vs = (r.status == sim::MaxRateStatus::kLowerBound ? "   >= " : "   ") +
           fmt("%.2fx", r.rate_per_s / base->rate_per_s);
    std::snprintf(line, sizeof line, "  %-*s %16s %10s %10.1f%% %16.3f %7zu%s\n", width, labels[i].c_str(),
                  rate.c_str(), fails.c_str(), 100 * p.attainment, p.goodput_per_s, r.probes.size(), vs.c_str());
    os << line;
  }
  os << "\n";
  for (size_t i = 0; i < results.size(); ++i) {
    os << "  " << labels[i] << ": " << results[i].message() << "\n";
    if (const std::string w = results[i].warning(); !w.empty()) os << "  " << labels[i] << ": WARNING: " << w << "\n";
  }
}

// A search's rate as the table prints it: "5.195", ">= 512.000", "none".
std::string rate_text(const sim::MaxRateResult& r) {
  switch (r.status) {
    case sim::MaxRateStatus::kFound:
      return fmt("%.3f", r.rate_per_s);
    case sim::MaxRateStatus::kLowerBound:
      return ">= " + fmt("%.3f", r.rate_per_s);
    case sim::MaxRateStatus::kNoneMeets:
      break;
  }
  return "none";
}

struct BandResult {
  sim::MaxRateResult slower, faster;  // every iteration (1 + f) and (1 - f) times as long
};

}  // namespace

int run_max_rate(const MaxRateCommandOptions& o) {
  return run_guarded([&]() -> int {
    // Everything checked before the first probe runs, on every rank of an MPI launch alike
    // (apps/fdcsim/mpi_ranks.h); rank 0 alone writes the JSON file.
    sim::MaxRateOptions mo;
    sim::ExperimentInput base;
    std::vector<sim::Variant> variants;
    std::vector<std::string> policy_names, labels;
    std::unique_ptr<std::ofstream> json_file;
    const bool rank0 = mpi_ranks().rank == 0;
    all_ranks([&] {
      mo.attainment = o.attainment;
      mo.tol = o.tol;
      mo.rate_lo = o.rate_lo;
      mo.rate_hi = o.rate_hi;
      mo.max_doublings = o.max_doublings;
      sim::check_max_rate_options(mo);
      base = sim::read_experiment_input(o.config, o.overrides);
      sim::max_rate_start(base);  // the SLO must be in the config itself, before --gpus resolves it
      base = sim::on_one_server(std::move(base), o.gpus);  // as the engine runs it
      variants = sim::variants_of(base, o.vary, o.policies);
      policy_names.resize(variants.size());
      for (size_t i = 0; i < variants.size(); ++i) {
        sim::max_rate_start(variants[i].input, &policy_names[i]);
        labels.push_back(o.vary.empty() ? policy_names[i] : variants[i].label);
      }
      if (!o.json_out.empty() && rank0) {
        json_file = std::make_unique<std::ofstream>(o.json_out, std::ios::binary);
        if (!*json_file) throw std::ios_base::failure(o.json_out + ": cannot open for writing");
      }
    });

    const Json& slo = base.config["slo"];
    const std::string name = base.config.value("name", "unnamed");
    const double band = o.band_pct ? *o.band_pct / 100 : 0.0;
    std::mutex stderr_mutex;  // one progress line at a time from the searches' threads
    auto search = [&](const sim::ExperimentInput& in, const std::string& policy) {
      int n = 0;
      auto progress = [&](const sim::RateProbe& p, double lo, double hi) {
        char line[300];
        std::snprintf(line, sizeof line,
                      "fdcsim max-rate: %s: probe %d at %.4g req/s: attainment %.1f%% (%s), goodput %.3f req/s, "
                      "throughput %.3f req/s; bracket [%s, %s]\n",
                      policy.c_str(), ++n, p.rate_per_s, 100 * p.attainment, p.meets ? "meets" : "fails",
                      p.goodput_per_s, p.throughput_per_s, lo > 0 ? fmt("%.4g", lo).c_str() : "?",
                      hi > 0 ? fmt("%.4g", hi).c_str() : "?");
        const std::lock_guard<std::mutex> lock(stderr_mutex);
        std::cerr << line << std::flush;
      };
      return sim::search_max_rate(in, mo, progress);
    };
    // The searches, each independent: per policy the cost model's own times and, with --band, the
    // slower and faster ends; on up to --jobs threads (and over the ranks of an MPI launch), every
    // result as a run in order gives.
    const BandRuns runs = with_band_ends(variants, labels, o.band_pct);
    const std::vector<std::string> found = run_tasks_over_ranks(
        runs.inputs.size(), o.jobs, [&](size_t k) { return search(runs.inputs[k], runs.labels[k]).to_json().dump(); });
    std::vector<sim::MaxRateResult> searched;
    for (const std::string& f : found) searched.push_back(sim::MaxRateResult::from_json(Json::parse(f)));
    std::vector<sim::MaxRateResult> results;
    std::vector<BandResult> bands;
    const size_t per_policy = runs.per_input;
    for (size_t i = 0; i < variants.size(); ++i) {
      results.push_back(std::move(searched[i * per_policy]));
      if (o.band_pct) {
        BandResult b{std::move(searched[i * per_policy + 1]), std::move(searched[i * per_policy + 2])};
        b.slower.policy = b.faster.policy = results.back().policy;
        bands.push_back(std::move(b));
      }
    }

    bool none = false;
    for (const auto& r : results) none = none || r.status == sim::MaxRateStatus::kNoneMeets;
    if (!rank0) return none ? kExitNotMet : kExitOk;  // rank 0 reports

    std::cout << "fdcsim max-rate: " << name << " (" << base.source << ")\n"
              << "  SLO: TTFT <= " << fmt("%g", slo["ttft_ms"].get<double>())
              << " ms and TPOT <= " << fmt("%g", slo["tpot_ms"].get<double>())
              << " ms for >= " << fmt("%g", 100 * o.attainment) << "% of requests; bisection to "
              << fmt("%g", 100 * o.tol) << "%";
    if (base.config.contains("workload") && base.config["workload"].contains("num_requests"))
      std::cout << "; " << base.config["workload"]["num_requests"].dump() << " requests per probe";
    std::cout << "\n\n";
    print_table(std::cout, results, labels, o.vary.empty() ? "policy" : "variant");
    if (o.band_pct) {
      std::cout << "\n  band: the search again with every iteration " << fmt("%g", 100 * band) << "% longer and "
                << fmt("%g", 100 * band) << "% shorter (costmodel.time_scale)\n";
      for (size_t i = 0; i < bands.size(); ++i) {
        char line[240];
        std::snprintf(line, sizeof line, "  %-*s %s .. %s req/s (%s at the cost model's own times)\n",
                      label_width(labels), labels[i].c_str(), rate_text(bands[i].slower).c_str(),
                      rate_text(bands[i].faster).c_str(), rate_text(results[i]).c_str());
        std::cout << line;
      }
    }

    if (json_file) {
      Json j{{"experiment", name},
             {"source", base.source},
             {"slo", {{"ttft_ms", slo["ttft_ms"]}, {"tpot_ms", slo["tpot_ms"]}}},
             {"target_attainment", o.attainment},
             {"tol", o.tol},
             {"max_doublings", o.max_doublings},
             {"searches", Json::array()}};
      if (o.rate_lo) j["rate_lo"] = *o.rate_lo;
      if (o.rate_hi) j["rate_hi"] = *o.rate_hi;
      for (size_t i = 0; i < results.size(); ++i) {
        Json r = results[i].to_json();
        if (!variants[i].settings.empty()) r["variant"] = variants[i].settings;
        if (o.band_pct)
          r["band"] = {{"iteration_time_fraction", band},
                       {"slower", bands[i].slower.to_json()},
                       {"faster", bands[i].faster.to_json()}};
        j["searches"].push_back(std::move(r));
      }
      *json_file << j.dump(2) << "\n";
      if (!json_file->flush()) throw std::ios_base::failure(o.json_out + ": could not be written");
    }
    return none ? kExitNotMet : kExitOk;
  });
}

}  // namespace fdc::cli
