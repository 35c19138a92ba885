#include "apps/fdcsim/min_servers_command.h"

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
#include "sim/min_servers.h"

namespace fdc::cli {

void add_min_servers_command(CLI::App& app, MinServersCommandOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "min-servers",
      "Find the fewest servers (cluster.servers) at which the config's workload, as given (any arrival process, "
      "replayed traces too), meets its SLO (slo.ttft_ms, slo.tpot_ms) for a target fraction of requests: doubling, "
      "then bisection, each probe a full simulation with the config's seed. Progress on stderr, the result table "
      "(servers, GPUs, price per hour) on stdout. Exit 1 when no count tried meets the SLO.");
  sub->add_option("--config,-c", o.config,
                  "Experiment JSON file or embedded experiment name, as for simulate (none = default); it must set "
                  "slo.ttft_ms and slo.tpot_ms");
  sub->add_option("--set", o.overrides, "Override a config value, KEY=VALUE (as for simulate); repeatable");
  sub->add_option("--attainment", o.attainment, "Target fraction of completed requests meeting the SLO, in (0, 1]")
      ->capture_default_str();
  sub->add_option("--servers-lo", o.servers_lo,
                  "The first server count tried (a count that meets there is an upper "
                  "bound)")
      ->capture_default_str();
  sub->add_option("--max-servers", o.max_servers, "The most servers tried before the search gives up (exit 1)")
      ->capture_default_str();
  sub->add_option("--compare-policy", o.policies,
                  "Run the same search for each of these policies (repeatable, or a comma list: "
                  "none,fdc-uniform-50) and print them side by side")
      ->delimiter(',');
  sub->add_option("--vary", o.vary,
                  "KEY=V1,V2,...: run the same search for each value of this config key (repeatable; with several "
                  "keys and --compare-policy, every combination), e.g. --vary hardware=p4de,p5; a value that is JSON "
                  "as a whole is one value");
  sub->add_option("--json-out", o.json_out, "Write every probe and the result to this JSON file");
  add_band_option(sub, o.band_pct,
                  "Also search with every iteration PCT percent longer and shorter (costmodel.time_scale) and print "
                  "the band of server counts: how far the answer moves for a cost model off by that much");
  sub->add_option("--jobs,-j", o.jobs,
                  "Run the independent searches (one per variant, and with --band its two ends) on up to this many "
                  "threads; every result is the same as with 1 (default: the machine's hardware threads)")
      ->check(CLI::PositiveNumber);
}

namespace {

// labels: each search's row name (its policy, or with --vary its variant's values).
void print_table(std::ostream& os, const std::vector<sim::MinServersResult>& results,
                 const std::vector<std::string>& labels, const char* label_title) {
  const int width = label_width(labels);
  const sim::MinServersResult* base =
      results.size() > 1 && results[0].status == sim::MinServersStatus::kFound ? &results[0] : nullptr;
  char line[240];
  std::snprintf(line, sizeof line, "  %-*s %9s %6s %12s %11s %16s %7s%s\n", width, label_title, "servers", "GPUs",
                "$ per hour", "attainment", "goodput (req/s)", "probes", base ? ("   vs " + labels[0]).c_str() : "");
  os << line;
  for (size_t i = 0; i < results.size(); ++i) {
    const sim::MinServersResult& r = results[i];
    const sim::RateProbe& p = r.at_servers();
    std::string servers = std::to_string(r.servers), vs;
    if (r.status == sim::MinServersStatus::kUpperBound) servers = "<= " + servers;
    if (r.status == sim::MinServersStatus::kNoneMeets) servers = "> " + servers;
    if (base && r.status != sim::MinServersStatus::kNoneMeets) {
      char b[32];
      std::snprintf(b, sizeof b, "   %s%.2fx", r.status == sim::MinServersStatus::kUpperBound ? "<= " : "",
                    static_cast<double>(r.servers) / static_cast<double>(base->servers));
      vs = b;
    }
    char price[32] = "-";
    if (p.price_per_hour_usd > 0) std::snprintf(price, sizeof price, "%.2f", p.price_per_hour_usd);
    std::snprintf(line, sizeof line, "  %-*s %9s %6lld %12s %10.1f%% %16.3f %7zu%s\n", width, labels[i].c_str(),
                  servers.c_str(), static_cast<long long>(p.gpus), price, 100 * p.attainment, p.goodput_per_s,
                  r.probes.size(), vs.c_str());
    os << line;
  }
  os << "\n";
  for (size_t i = 0; i < results.size(); ++i) {
    os << "  " << labels[i] << ": " << results[i].message() << "\n";
    if (const std::string w = results[i].warning(); !w.empty()) os << "  " << labels[i] << ": WARNING: " << w << "\n";
  }
}

}  // namespace

int run_min_servers(const MinServersCommandOptions& o) {
  return run_guarded([&]() -> int {
    // Everything checked before the first probe runs, on every rank of an MPI launch alike
    // (apps/fdcsim/mpi_ranks.h); rank 0 alone writes the JSON file.
    sim::MinServersOptions mo;
    sim::ExperimentInput base;
    std::vector<sim::Variant> variants;
    std::vector<std::string> labels;
    std::unique_ptr<std::ofstream> json_file;
    const bool rank0 = mpi_ranks().rank == 0;
    all_ranks([&] {
      mo.attainment = o.attainment;
      mo.servers_lo = o.servers_lo;
      mo.max_servers = o.max_servers;
      sim::check_min_servers_options(mo);
      base = sim::read_experiment_input(o.config, o.overrides);
      variants = sim::variants_of(base, o.vary, o.policies);
      for (const auto& v : variants) {
        const std::string policy = sim::min_servers_check(v.input);
        labels.push_back(o.vary.empty() ? policy : v.label);
      }
      if (!o.json_out.empty() && rank0) {
        json_file = std::make_unique<std::ofstream>(o.json_out, std::ios::binary);
        if (!*json_file) throw std::ios_base::failure(o.json_out + ": cannot open for writing");
      }
    });

    // The searches, each independent: per variant the cost model's own times and, with --band, the
    // slower and faster ends; on up to --jobs threads (and over the ranks of an MPI launch), every
    // result as a run in order gives.
    const double band = o.band_pct ? *o.band_pct / 100 : 0.0;
    const BandRuns runs = with_band_ends(variants, labels, o.band_pct);
    const size_t per_variant = runs.per_input;
    const std::vector<sim::ExperimentInput>& search_inputs = runs.inputs;
    const std::vector<std::string>& search_labels = runs.labels;
    std::vector<sim::MinServersResult> searched(search_inputs.size());
    std::mutex stderr_mutex;  // one progress line at a time from the searches' threads
    const std::vector<std::string> found = run_tasks_over_ranks(search_inputs.size(), o.jobs, [&](size_t i) {
      int n = 0;
      const std::string& policy = search_labels[i];
      auto progress = [&](const sim::RateProbe& p, int64_t failed, int64_t met) {
        char line[320];
        std::snprintf(line, sizeof line,
                      "fdcsim min-servers: %s: probe %d with %lld servers (%lld GPUs): attainment %.1f%% (%s), "
                      "goodput %.3f req/s, throughput %.3f of %.3f req/s offered; bracket [%s, %s]\n",
                      policy.c_str(), ++n, static_cast<long long>(p.servers), static_cast<long long>(p.gpus),
                      100 * p.attainment, p.meets ? "meets" : "fails", p.goodput_per_s, p.throughput_per_s,
                      p.offered_per_s, failed > 0 ? std::to_string(failed).c_str() : "?",
                      met > 0 ? std::to_string(met).c_str() : "?");
        const std::lock_guard<std::mutex> lock(stderr_mutex);
        std::cerr << line << std::flush;
      };
      return sim::search_min_servers(search_inputs[i], mo, progress).to_json().dump();
    });
    for (size_t i = 0; i < found.size(); ++i) searched[i] = sim::MinServersResult::from_json(Json::parse(found[i]));
    std::vector<sim::MinServersResult> results;
    for (size_t i = 0; i < variants.size(); ++i) results.push_back(searched[i * per_variant]);

    bool none = false;
    for (const auto& r : results) none = none || r.status == sim::MinServersStatus::kNoneMeets;
    if (!rank0) return none ? kExitNotMet : kExitOk;  // rank 0 reports

    const Json& slo = base.config["slo"];
    const std::string name = base.config.value("name", "unnamed");
    std::cout << "fdcsim min-servers: " << name << " (" << base.source << ")\n"
              << "  SLO: TTFT <= " << slo["ttft_ms"].dump() << " ms and TPOT <= " << slo["tpot_ms"].dump()
              << " ms for >= " << 100 * o.attainment << "% of requests";
    if (base.config.contains("workload") && base.config["workload"].contains("num_requests"))
      std::cout << "; " << base.config["workload"]["num_requests"].dump() << " requests per probe";
    std::cout << "\n\n";
    print_table(std::cout, results, labels, o.vary.empty() ? "policy" : "variant");
    // A search's count as the band prints it: "3", "<= 3", "> 4096".
    auto count_text = [](const sim::MinServersResult& r) {
      const std::string n = std::to_string(r.servers);
      switch (r.status) {
        case sim::MinServersStatus::kFound:
          break;
        case sim::MinServersStatus::kUpperBound:
          return "<= " + n;
        case sim::MinServersStatus::kNoneMeets:
          return "> " + n;
      }
      return n;
    };
    if (o.band_pct) {
      std::cout << "\n  band: the search again with every iteration " << 100 * band << "% longer and " << 100 * band
                << "% shorter (costmodel.time_scale)\n";
      for (size_t i = 0; i < variants.size(); ++i) {
        char line[240];
        std::snprintf(line, sizeof line, "  %-*s %s .. %s servers (%s at the cost model's own times)\n",
                      label_width(labels), labels[i].c_str(), count_text(searched[i * per_variant + 1]).c_str(),
                      count_text(searched[i * per_variant + 2]).c_str(), count_text(results[i]).c_str());
        std::cout << line;
      }
    }

    if (json_file) {
      Json j{{"experiment", name},
             {"source", base.source},
             {"slo", {{"ttft_ms", slo["ttft_ms"]}, {"tpot_ms", slo["tpot_ms"]}}},
             {"target_attainment", o.attainment},
             {"servers_lo", o.servers_lo},
             {"max_servers", o.max_servers},
             {"searches", Json::array()}};
      for (size_t i = 0; i < results.size(); ++i) {
        Json r = results[i].to_json();
        if (!variants[i].settings.empty()) r["variant"] = variants[i].settings;
        if (o.band_pct)
          r["band"] = {{"iteration_time_fraction", band},
                       {"slower", searched[i * per_variant + 1].to_json()},
                       {"faster", searched[i * per_variant + 2].to_json()}};
        j["searches"].push_back(std::move(r));
      }
      *json_file << j.dump(2) << "\n";
      if (!json_file->flush()) throw std::ios_base::failure(o.json_out + ": could not be written");
    }
    return none ? kExitNotMet : kExitOk;
  });
}

}  // namespace fdc::cli
