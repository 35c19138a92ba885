// `fdcsim sweep` as a user runs it: one simulation per combination, the table, the CSV and JSON
// files with every run's figures exactly as `simulate` gives them, threads without effect on the
// output, and bad input.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/sweep_command.h"
#include "core/config.h"
#include "sim/experiment.h"
#include "sim/simulator.h"
#include "tests/captured_output.h"

using namespace fdc;

namespace {
test::CapturedRun sweep(const cli::SweepOptions& o) {
  return test::captured([&] { return cli::run_sweep(o); });
}
cli::SweepOptions rates_by_policy() {
  cli::SweepOptions o;
  o.overrides = {"workload.num_requests=400"};
  o.vary = {"workload.arrival.rate_per_s=4,12"};
  o.policies = {"none", "fdc-uniform-50"};
  return o;
}
std::string temp(const std::string& name) { return (std::filesystem::temp_directory_path() / name).string(); }
std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
// The summary `simulate` gives for the default with these overrides.
Json simulate_summary(const std::vector<std::string>& overrides) {
  sim::Experiment e = sim::load_experiment("", overrides);
  auto cost = sim::make_cost_model(e);
  sim::Simulator s(e, *cost, sim::OutputStreams{});
  s.run();
  return s.summary();
}
}  // namespace

TEST_CASE("sweep: every rate and policy, the table, and CSV and JSON figures equal to simulate's") {
  cli::SweepOptions o = rates_by_policy();
  o.csv_out = temp("fdcsim-sweep-test.csv");
  o.json_out = temp("fdcsim-sweep-test.json");
  o.jobs = 1;
  const test::CapturedRun r = sweep(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("4 runs; SLO TTFT <= 5000 ms and TPOT <= 200 ms") != std::string::npos);
  CHECK(r.out.find("  variant = workload.arrival.rate_per_s, policy\n") != std::string::npos);
  for (const char* row : {"  4, none ", "  4, fdc-uniform-50 ", "  12, none ", "  12, fdc-uniform-50 "})
    CHECK(r.out.find(row) != std::string::npos);
  CHECK(r.err.find("fdcsim sweep: 12, none: ") != std::string::npos);

  const Json j = load_json_file(o.json_out);
  REQUIRE(j["runs"].size() == 4);
  CHECK(j["runs"][2]["label"] == "12, none");
  CHECK(j["runs"][2]["variant"] == Json{{"workload.arrival.rate_per_s", 12}, {"policy", "none"}});
  // Each run is the simulation of that variant: the summary simulate gives, to the bit.
  const Json direct = simulate_summary({"workload.num_requests=400", "workload.arrival.rate_per_s=12", "policy=none"});
  CHECK(j["runs"][2]["summary"]["throughput"] == direct["throughput"]);
  CHECK(j["runs"][2]["summary"]["latency"] == direct["latency"]);
  CHECK(j["runs"][2]["summary"]["requests"] == direct["requests"]);

  // The CSV: a header with the varied keys in the order given, then one row per run.
  std::istringstream csv(read_text(o.csv_out));
  std::string header, line;
  std::getline(csv, header);
  CHECK(header.rfind("variant,workload.arrival.rate_per_s,policy,servers,gpus,", 0) == 0);
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  REQUIRE(rows.size() == 4);
  CHECK(rows[2].rfind("\"12, none\",12,none,1,8,", 0) == 0);
  // Its throughput column holds the summary's number as JSON writes it.
  std::vector<std::string> names, fields;
  for (std::istringstream h(header); std::getline(h, line, ',');) names.push_back(line);
  // Fields after the quoted label.
  const std::string after_label = rows[2].substr(rows[2].find("\",") + 2);
  for (std::istringstream f(after_label); std::getline(f, line, ',');) fields.push_back(line);
  const auto col = std::find(names.begin(), names.end(), "throughput_requests_per_s") - names.begin();
  REQUIRE(static_cast<size_t>(col) < names.size());
  CHECK(fields[static_cast<size_t>(col) - 1] == direct["throughput"]["requests_per_s"].dump());

  // Without compression 12 req/s overloads the server; FDC 50% holds it (twice the KV cache).
  CHECK(j["runs"][2]["summary"]["slo"]["attainment"].get<double>() <
        j["runs"][3]["summary"]["slo"]["attainment"].get<double>());
}

TEST_CASE("sweep: --jobs changes nothing but the order of the progress lines") {
  cli::SweepOptions o = rates_by_policy();
  o.json_out = temp("fdcsim-sweep-j1.json");
  o.csv_out = temp("fdcsim-sweep-j1.csv");
  o.jobs = 1;
  const test::CapturedRun one = sweep(o);
  o.json_out = temp("fdcsim-sweep-j3.json");
  o.csv_out = temp("fdcsim-sweep-j3.csv");
  o.jobs = 3;
  const test::CapturedRun three = sweep(o);
  REQUIRE(one.code == cli::kExitOk);
  REQUIRE(three.code == cli::kExitOk);
  CHECK(one.out == three.out);
  CHECK(read_text(temp("fdcsim-sweep-j1.json")) == read_text(temp("fdcsim-sweep-j3.json")));
  CHECK(read_text(temp("fdcsim-sweep-j1.csv")) == read_text(temp("fdcsim-sweep-j3.csv")));
}

TEST_CASE("sweep --band: every run at its two ends, each figure's band around the run's own value") {
  cli::SweepOptions o = rates_by_policy();
  o.band_pct = 5.0;
  o.csv_out = temp("fdcsim-sweep-band.csv");
  o.json_out = temp("fdcsim-sweep-band.json");
  const test::CapturedRun r = sweep(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("4 runs (12 simulations with the band's ends)") != std::string::npos);
  CHECK(r.out.find("band: every iteration 5% longer .. 5% shorter") != std::string::npos);
  CHECK(r.err.find("fdcsim sweep: 12, none (iterations x 1.05): ") != std::string::npos);
  const Json j = load_json_file(o.json_out);
  REQUIRE(j["runs"].size() == 4);
  for (const Json& run : j["runs"]) {
    REQUIRE(run.contains("band"));
    CHECK(run["band"]["iteration_time_fraction"] == 0.05);
    // Longer iterations, longer decode gaps: TBT P50 moves with the scale (no queue in the way).
    const auto tbt = [](const Json& s) { return s["latency"]["tbt"]["p50_ms"].get<double>(); };
    CHECK(tbt(run["band"]["slower"]) > tbt(run["summary"]));
    CHECK(tbt(run["band"]["faster"]) < tbt(run["summary"]));
  }
  // The CSV's band columns hold the smallest and largest of the three runs.
  std::istringstream csv(read_text(o.csv_out));
  std::string header, line;
  std::getline(csv, header);
  std::vector<std::string> names;
  for (std::istringstream h(header); std::getline(h, line, ',');) names.push_back(line);
  const auto col = [&](const std::string& n) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  REQUIRE(col("ttft_p99_ms_band_hi") < names.size());
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  REQUIRE(rows.size() == 4);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<std::string> f{""};  // the quoted label holds a comma: skip it
    for (std::istringstream s(rows[i].substr(rows[i].find("\",") + 2)); std::getline(s, line, ',');) f.push_back(line);
    const Json& run = j["runs"][i];
    for (const std::string n : {"ttft_p99_ms", "slo_attainment"}) {
      CAPTURE(n);
      const double lo = std::stod(f[col(n + "_band_lo")]), mid = std::stod(f[col(n)]),
                   hi = std::stod(f[col(n + "_band_hi")]);
      CHECK(lo <= mid);
      CHECK(mid <= hi);
    }
    const double ttft_hi = std::stod(f[col("ttft_p99_ms_band_hi")]);
    double expected = run["summary"]["latency"]["ttft"]["p99_ms"].get<double>();
    for (const char* end : {"slower", "faster"})
      expected = std::max(expected, run["band"][end]["latency"]["ttft"]["p99_ms"].get<double>());
    CHECK(ttft_hi == expected);
  }
}

TEST_CASE("sweep: a single run, bad values and unwritable files") {
  SUBCASE("no --vary: the config alone, named by its policy, with its policy in the CSV") {
    cli::SweepOptions o;
    o.overrides = {"workload.num_requests=100"};
    o.csv_out = temp("fdcsim-sweep-one.csv");
    const test::CapturedRun r = sweep(o);
    REQUIRE(r.code == cli::kExitOk);
    CHECK(r.out.find("1 runs;") != std::string::npos);
    CHECK(r.out.find("  policy ") != std::string::npos);
    CHECK(r.out.find("  fdc-uniform-50 ") != std::string::npos);
    CHECK(read_text(o.csv_out).rfind("variant,policy_name,servers,", 0) == 0);
  }
  SUBCASE("a value the config refuses: exit 2 naming the key, before any run") {
    cli::SweepOptions o = rates_by_policy();
    o.vary = {"scheduler.max_num_seqs=8,many"};
    const test::CapturedRun r = sweep(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("max_num_seqs") != std::string::npos);
    CHECK(r.err.find("fdcsim sweep: ") == std::string::npos);
  }
  SUBCASE("--vary without a value") {
    cli::SweepOptions o = rates_by_policy();
    o.vary = {"workload.arrival.rate_per_s"};
    const test::CapturedRun r = sweep(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("--vary") != std::string::npos);
  }
  SUBCASE("a CSV file that cannot be written: exit 4 naming it") {
    cli::SweepOptions o = rates_by_policy();
    o.csv_out = "/nonexistent-dir/sweep.csv";
    const test::CapturedRun r = sweep(o);
    CHECK(r.code == cli::kExitIo);
    CHECK(r.err.find("/nonexistent-dir/sweep.csv") != std::string::npos);
  }
}
