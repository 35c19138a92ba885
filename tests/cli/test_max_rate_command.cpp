// `fdcsim max-rate` as a user runs it: exit codes, messages, the table and the JSON file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/max_rate_command.h"
#include "core/config.h"
#include "tests/captured_output.h"
#include "tests/test_paths.h"

using namespace fdc;

namespace {
using Output = test::CapturedRun;
Output max_rate(const cli::MaxRateCommandOptions& o) {
  return test::captured([&] { return cli::run_max_rate(o); });
}
// The embedded default (Llama-2-13B) on one A100 with few requests: a probe takes milliseconds.
cli::MaxRateCommandOptions small() {
  cli::MaxRateCommandOptions o;
  o.overrides = {"workload.num_requests=300"};
  o.gpus = 1;
  return o;
}
}  // namespace

TEST_CASE("max-rate: none vs FDC side by side, with every probe in the JSON file") {
  cli::MaxRateCommandOptions o = small();
  o.policies = {"none", "fdc-uniform-50"};
  o.tol = 0.05;
  o.json_out = (std::filesystem::temp_directory_path() / "fdcsim-max-rate-test.json").string();
  Output r = max_rate(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("SLO: TTFT <= 5000 ms and TPOT <= 200 ms for >= 90% of requests") != std::string::npos);
  CHECK(r.out.find("vs none") != std::string::npos);
  CHECK(r.out.find("(--gpus 1)") != std::string::npos);
  CHECK(r.err.find("fdcsim max-rate: fdc-uniform-50: probe 1 at 6 req/s") != std::string::npos);
  Json j = load_json_file(o.json_out);
  REQUIRE(j["searches"].size() == 2);
  CHECK(j["searches"][0]["policy"] == "none");
  CHECK(j["searches"][1]["policy"] == "fdc-uniform-50");
  for (const auto& s : j["searches"]) {
    CHECK(s["status"] == "found");
    CHECK(s["upper_rate_per_s"].get<double>() - s["rate_per_s"].get<double>() <= 0.05 * s["rate_per_s"].get<double>());
    CHECK(s["at_rate"]["attainment"].get<double>() >= 0.9);
    CHECK(s["probes"].size() >= 3);
  }
  // FDC at 50% holds twice the KV cache: it sustains at least the rate without compression.
  CHECK(j["searches"][1]["rate_per_s"].get<double>() >= j["searches"][0]["rate_per_s"].get<double>());
}

TEST_CASE("max-rate: policies compared with a cost profile given by its path") {
  // Each policy's search re-reads the resolved config, which must name the profile by a path that
  // finds it again (not by the file's stem, which is no embedded profile).
  namespace fs = std::filesystem;
  const fs::path copy = fs::temp_directory_path() / "fdcsim-max-rate-my-a100.json";
  fs::copy_file(test::source_path("configs/profiles/a100-extrapolated.json"), copy,
                fs::copy_options::overwrite_existing);
  cli::MaxRateCommandOptions o = small();
  o.overrides.push_back("costmodel.kind=profile");
  o.overrides.push_back("costmodel.profile=" + copy.string());
  o.policies = {"none", "fdc-uniform-50"};
  o.tol = 0.1;
  Output r = max_rate(o);
  CHECK(r.err.find("no such cost profile") == std::string::npos);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("fdc-uniform-50") != std::string::npos);
  fs::remove(copy);
}

TEST_CASE("max-rate: bad input exits 2 naming the option or key; an SLO met nowhere exits 1") {
  SUBCASE("attainment out of range") {
    cli::MaxRateCommandOptions o = small();
    o.attainment = 0;
    Output r = max_rate(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("--attainment: expected a fraction in (0, 1]") != std::string::npos);
  }
  SUBCASE("arrivals without a rate") {
    cli::MaxRateCommandOptions o = small();
    o.overrides.push_back("workload.arrival={\"process\":\"burst\"}");
    Output r = max_rate(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/workload/arrival/process: max-rate searches workload.arrival.rate_per_s") != std::string::npos);
  }
  SUBCASE("a zero SLO") {
    cli::MaxRateCommandOptions o = small();
    o.overrides.push_back("slo.ttft_ms=0");
    Output r = max_rate(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/slo/ttft_ms: expected a number > 0") != std::string::npos);
  }
  SUBCASE("an unknown policy to compare") {
    cli::MaxRateCommandOptions o = small();
    o.policies = {"none", "fdc-nonsense"};
    Output r = max_rate(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("fdc-nonsense") != std::string::npos);
    CHECK(r.err.find("probe") == std::string::npos);  // refused before any probe ran
  }
  SUBCASE("an SLO no rate can meet") {
    cli::MaxRateCommandOptions o = small();
    o.overrides.push_back("slo.ttft_ms=0.001");
    o.max_doublings = 2;
    Output r = max_rate(o);
    CHECK(r.code == cli::kExitNotMet);
    CHECK(r.out.find("no rate meets the SLO down to") != std::string::npos);
  }
}

TEST_CASE("max-rate --band: slower iterations lower the rate, faster ones raise it, on top of a config's time_scale") {
  cli::MaxRateCommandOptions o = small();
  o.tol = 0.01;
  o.band_pct = 5;
  o.json_out = (std::filesystem::temp_directory_path() / "fdcsim-max-rate-band.json").string();
  Output r = max_rate(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("band: the search again with every iteration 5% longer and 5% shorter") != std::string::npos);
  CHECK(r.err.find("(iterations x 1.05): probe 1") != std::string::npos);
  Json j = load_json_file(o.json_out);
  REQUIRE(j["searches"].size() == 1);
  const Json& s = j["searches"][0];
  const double mid = s["rate_per_s"].get<double>();
  CHECK(s["band"]["iteration_time_fraction"] == 0.05);
  REQUIRE(s["band"]["slower"]["status"] == "found");
  REQUIRE(s["band"]["faster"]["status"] == "found");
  const double slow = s["band"]["slower"]["rate_per_s"].get<double>(),
               fast = s["band"]["faster"]["rate_per_s"].get<double>();
  CHECK(slow < mid);
  CHECK(fast > mid);
  // A config already 5% slow: its central search is the band's slower end above.
  cli::MaxRateCommandOptions slowed = small();
  slowed.tol = 0.01;
  slowed.overrides.push_back("costmodel.time_scale=1.05");
  slowed.json_out = (std::filesystem::temp_directory_path() / "fdcsim-max-rate-slowed.json").string();
  REQUIRE(max_rate(slowed).code == cli::kExitOk);
  CHECK(load_json_file(slowed.json_out)["searches"][0]["rate_per_s"].get<double>() == doctest::Approx(slow));
}

TEST_CASE("max-rate --vary: one search per value, rows named by it, the setting in the JSON") {
  cli::MaxRateCommandOptions o = small();
  o.tol = 0.05;
  o.vary = {"scheduler.chunked_prefill=false,true"};
  o.json_out = (std::filesystem::temp_directory_path() / "fdcsim-max-rate-vary.json").string();
  Output r = max_rate(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("  variant ") != std::string::npos);
  CHECK(r.out.find("vs false") != std::string::npos);
  CHECK(r.out.find("\n  true ") != std::string::npos);
  Json j = load_json_file(o.json_out);
  REQUIRE(j["searches"].size() == 2);
  CHECK(j["searches"][0]["variant"] == Json{{"scheduler.chunked_prefill", false}});
  CHECK(j["searches"][1]["variant"] == Json{{"scheduler.chunked_prefill", true}});
  CHECK(j["searches"][1]["probes"][0]["rate_per_s"] == j["searches"][0]["probes"][0]["rate_per_s"]);
}
