// `fdcsim min-servers` as a user runs it: exit codes, messages, the table and the JSON file.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/min_servers_command.h"
#include "core/config.h"
#include "tests/captured_output.h"

using namespace fdc;

namespace {
using Output = test::CapturedRun;
Output min_servers(const cli::MinServersCommandOptions& o) {
  return test::captured([&] { return cli::run_min_servers(o); });
}
// The embedded default (Llama-2-13B on p4de servers of 8 A100s) at 30 req/s: more than one server.
cli::MinServersCommandOptions busy() {
  cli::MinServersCommandOptions o;
  o.overrides = {"workload.num_requests=3000", "workload.arrival.rate_per_s=30"};
  return o;
}
}  // namespace

TEST_CASE("min-servers: none vs FDC side by side, with servers, GPUs and price, and every probe in the JSON file") {
  cli::MinServersCommandOptions o = busy();
  o.policies = {"none", "fdc-uniform-50"};
  o.json_out = (std::filesystem::temp_directory_path() / "fdcsim-min-servers-test.json").string();
  Output r = min_servers(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("SLO: TTFT <= 5000 ms and TPOT <= 200 ms for >= 90% of requests; 3000 requests per probe") !=
        std::string::npos);
  CHECK(r.out.find("$ per hour") != std::string::npos);
  CHECK(r.out.find("vs none") != std::string::npos);
  CHECK(r.err.find("fdcsim min-servers: none: probe 1 with 1 servers (8 GPUs)") != std::string::npos);
  Json j = load_json_file(o.json_out);
  REQUIRE(j["searches"].size() == 2);
  CHECK(j["searches"][0]["policy"] == "none");
  CHECK(j["searches"][1]["policy"] == "fdc-uniform-50");
  for (const auto& s : j["searches"]) {
    CHECK(s["status"] == "found");
    const int64_t n = s["servers"].get<int64_t>();
    CHECK(s["at_servers"]["servers"] == n);
    CHECK(s["at_servers"]["gpus"] == 8 * n);
    CHECK(s["at_servers"]["price_per_hour_usd"].get<double>() > 0);
    CHECK(s["at_servers"]["attainment"].get<double>() >= 0.9);
    CHECK(s["longer_workload"]["num_requests"] == 6000);
    // One server fewer was tried and failed.
    bool fewer_failed = false;
    for (const auto& p : s["probes"]) fewer_failed = fewer_failed || (p["servers"] == n - 1 && !p["meets"]);
    CHECK(fewer_failed);
  }
  // FDC at 50% holds twice the KV cache: it needs no more servers than no compression.
  CHECK(j["searches"][1]["servers"].get<int64_t>() < j["searches"][0]["servers"].get<int64_t>());
}

TEST_CASE("min-servers: bad input exits 2 naming the option or key; a count met nowhere exits 1") {
  SUBCASE("attainment out of range") {
    cli::MinServersCommandOptions o = busy();
    o.attainment = 1.5;
    Output r = min_servers(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("--attainment: expected a fraction in (0, 1]") != std::string::npos);
  }
  SUBCASE("--max-servers below --servers-lo") {
    cli::MinServersCommandOptions o = busy();
    o.servers_lo = 4;
    o.max_servers = 2;
    Output r = min_servers(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("--max-servers: expected at least --servers-lo (4), found 2") != std::string::npos);
  }
  SUBCASE("an unknown policy to compare is refused before any probe") {
    cli::MinServersCommandOptions o = busy();
    o.policies = {"none", "fdc-nonsense"};
    Output r = min_servers(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("fdc-nonsense") != std::string::npos);
    CHECK(r.err.find("probe") == std::string::npos);
  }
  SUBCASE("a JSON file that cannot be written") {
    cli::MinServersCommandOptions o = busy();
    o.json_out = "/nonexistent-dir/x.json";
    Output r = min_servers(o);
    CHECK(r.code == cli::kExitIo);
    CHECK(r.err.find("/nonexistent-dir/x.json") != std::string::npos);
  }
  SUBCASE("an SLO no count can meet") {
    cli::MinServersCommandOptions o = busy();
    o.overrides.push_back("slo.ttft_ms=0.001");
    o.max_servers = 3;
    Output r = min_servers(o);
    CHECK(r.code == cli::kExitNotMet);
    CHECK(r.out.find("no server count up to 3 meets the SLO") != std::string::npos);
    CHECK(r.out.find("> 3") != std::string::npos);
  }
}

TEST_CASE("min-servers --vary: every hardware and policy combination, labelled, with the settings in the JSON") {
  cli::MinServersCommandOptions o = busy();
  o.vary = {"hardware=p4de,h200x8"};
  o.policies = {"none", "fdc-uniform-50"};
  o.json_out = (std::filesystem::temp_directory_path() / "fdcsim-min-servers-vary.json").string();
  Output r = min_servers(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("  variant ") != std::string::npos);
  CHECK(r.out.find("vs p4de, none") != std::string::npos);
  CHECK(r.out.find("\n  h200x8, fdc-uniform-50 ") != std::string::npos);
  CHECK(r.err.find("fdcsim min-servers: h200x8, none: probe 1 with 1 servers") != std::string::npos);
  Json j = load_json_file(o.json_out);
  REQUIRE(j["searches"].size() == 4);
  CHECK(j["searches"][2]["variant"] == Json{{"hardware", "h200x8"}, {"policy", "none"}});
  CHECK(j["searches"][2]["policy"] == "none");
  // The same search as a run of that hardware alone.
  cli::MinServersCommandOptions alone = busy();
  alone.overrides.push_back("hardware=h200x8");
  alone.overrides.push_back("policy=none");
  alone.json_out = (std::filesystem::temp_directory_path() / "fdcsim-min-servers-alone.json").string();
  REQUIRE(min_servers(alone).code == cli::kExitOk);
  CHECK(load_json_file(alone.json_out)["searches"][0]["probes"] == j["searches"][2]["probes"]);
}

TEST_CASE("min-servers --band: slower iterations need no fewer servers, faster ones no more") {
  cli::MinServersCommandOptions o = busy();
  o.policies = {"none", "fdc-uniform-50"};
  o.band_pct = 10;
  o.json_out = (std::filesystem::temp_directory_path() / "fdcsim-min-servers-band.json").string();
  Output r = min_servers(o);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("band: the search again with every iteration 10% longer and 10% shorter") != std::string::npos);
  CHECK(r.err.find("fdcsim min-servers: none (iterations x 1.1): probe 1") != std::string::npos);
  Json j = load_json_file(o.json_out);
  REQUIRE(j["searches"].size() == 2);
  for (const auto& s : j["searches"]) {
    const Json& b = s["band"];
    CHECK(b["iteration_time_fraction"] == 0.1);
    CHECK(b["slower"]["servers"].get<int64_t>() >= s["servers"].get<int64_t>());
    CHECK(b["faster"]["servers"].get<int64_t>() <= s["servers"].get<int64_t>());
    CHECK(b["slower"]["policy"] == s["policy"]);
  }
  // The central searches are those of a run without --band.
  cli::MinServersCommandOptions plain = busy();
  plain.policies = o.policies;
  plain.json_out = (std::filesystem::temp_directory_path() / "fdcsim-min-servers-noband.json").string();
  REQUIRE(min_servers(plain).code == cli::kExitOk);
  const Json p = load_json_file(plain.json_out);
  for (size_t i = 0; i < 2; ++i) CHECK(p["searches"][i]["probes"] == j["searches"][i]["probes"]);
}
