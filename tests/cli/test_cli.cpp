// The simulate command as a user runs it: exit codes and messages for bad input.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/fdcsim/band_option.h"
#include "apps/fdcsim/engine_command.h"
#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/simulate_command.h"
#include "apps/fdcsim/validate_command.h"
#include "core/config.h"
#include "tests/test_paths.h"

using namespace fdc;

namespace {
struct Result {
  int code;
  std::string err;
};
Result simulate(const std::string& config, std::vector<std::string> sets) {
  static int n = 0;
  cli::SimulateOptions o;
  o.config = config;
  o.overrides = std::move(sets);
  o.out_dir = (std::filesystem::temp_directory_path() / ("fdcsim-cli-test-" + std::to_string(n++))).string();
  o.quiet = true;
  std::ostringstream err;
  auto* old = std::cerr.rdbuf(err.rdbuf());
  int code = cli::run_simulate(o);
  std::cerr.rdbuf(old);
  return {code, err.str()};
}
std::string write_temp(const std::string& name, const std::string& text) {
  auto p = std::filesystem::temp_directory_path() / name;
  std::ofstream(p) << text;
  return p.string();
}
}  // namespace

TEST_CASE("the embedded default runs and writes its outputs") {
  Result r = simulate("", {"workload.num_requests=50"});
  CHECK(r.code == cli::kExitOk);
}

TEST_CASE("bad input: non-zero exit and a message naming the file and key or line") {
  SUBCASE("unknown key") {
    Result r = simulate("", {"scheduler.max_num_seq=12"});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/scheduler/max_num_seq: unknown key") != std::string::npos);
  }
  SUBCASE("wrong type") {
    Result r = simulate("", {"scheduler.max_num_seqs=\"many\""});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/scheduler/max_num_seqs: expected an integer >= 1, found a string") != std::string::npos);
  }
  SUBCASE("negative and zero rates") {
    for (const char* v : {"-2", "0"}) {
      Result r = simulate("", {std::string("workload.arrival.rate_per_s=") + v});
      CHECK(r.code == cli::kExitBadInput);
      CHECK(r.err.find("/workload/arrival/rate_per_s: expected a number > 0") != std::string::npos);
    }
  }
  SUBCASE("missing trace") {
    Result r = simulate("", {"workload.lengths={\"source\":\"length_csv\",\"path\":\"/nonexistent/trace.csv\"}"});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/nonexistent/trace.csv") != std::string::npos);
  }
  SUBCASE("empty trace") {
    std::string p = write_temp("fdcsim-empty.csv", "");
    Result r = simulate("", {"workload.lengths={\"source\":\"length_csv\",\"path\":\"" + p + "\"}"});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find(p) != std::string::npos);
  }
  SUBCASE("malformed trace line") {
    std::string p = write_temp(
        "fdcsim-bad.csv", "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n10,5,15,2\n12,abc,15,2\n");
    Result r = simulate("", {"workload.lengths={\"source\":\"length_csv\",\"path\":\"" + p + "\"}"});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find(p + ":3") != std::string::npos);
  }
  SUBCASE("malformed config file") {
    std::string p = write_temp("fdcsim-bad.json", "{\n \"seed\": 1,\n}\n");
    Result r = simulate(p, {});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find(p + ":3:") != std::string::npos);
  }
  SUBCASE("missing config file") {
    Result r = simulate("/nonexistent/exp.json", {});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/nonexistent/exp.json: cannot open") != std::string::npos);
  }
  SUBCASE("model that does not fit") {
    Result r = simulate("", {"model=llama-2-70b"});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("does not fit") != std::string::npos);
  }
  SUBCASE("policy that does not fit the model") {
    Result r = simulate("", {"model=llama-2-7b", "policy=fdc-table-llama-2-13b"});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("model llama-2-7b has 32") != std::string::npos);
  }
}

TEST_CASE("engine and validate refuse what they cannot run, before touching a GPU") {
  std::ostringstream err;
  auto* old = std::cerr.rdbuf(err.rdbuf());
  // The default experiment has 8 replicas; the engine runs one (CUDA builds refuse that, CPU-only
  // builds refuse the engine itself): exit 2 either way, with a message.
  cli::EngineCommandOptions e;
  e.config = "default";
  e.timeline_out = (std::filesystem::temp_directory_path() / "fdcsim-engine-refused.jsonl").string();
  e.quiet = true;
  const int engine_code = cli::run_engine_command(e);
  const std::string engine_err = err.str();
  err.str("");
  cli::ValidateOptions v;  // neither a measured timeline nor a config
  const int validate_code = cli::run_validate(v);
  std::cerr.rdbuf(old);
  CHECK(engine_code == cli::kExitBadInput);
  const bool one_replica = engine_err.find("the engine runs one replica; this experiment has 8") != std::string::npos;
  const bool no_cuda = engine_err.find("built without CUDA") != std::string::npos;
  CHECK((one_replica || no_cuda));
  CHECK(validate_code == cli::kExitBadInput);
  CHECK(err.str().find("give --measured TIMELINE") != std::string::npos);
}

TEST_CASE("validate --band: the saved run against itself lies inside the band, which widens with the percent") {
  const auto dir = std::filesystem::temp_directory_path() / "fdcsim-cli-band";
  std::filesystem::remove_all(dir);
  cli::SimulateOptions s;
  s.overrides = {"workload.num_requests=120", "cluster.servers=1"};
  s.out_dir = (dir / "sim").string();
  s.timeline_out = (dir / "run.jsonl").string();
  s.quiet = true;
  REQUIRE(cli::run_simulate(s) == cli::kExitOk);
  auto band_of = [&](double pct) {
    cli::ValidateOptions v;
    v.measured = s.timeline_out;
    v.band_pct = pct;
    v.engine.quiet = true;
    v.out_dir = (dir / ("band-" + std::to_string(pct))).string();
    REQUIRE(cli::run_validate(v) == cli::kExitOk);
    for (const char* file : {"iterations.csv", "requests.csv", "iteration_times.svg", "request_cdfs.svg"})
      CHECK(std::filesystem::file_size(std::filesystem::path(v.out_dir) / file) > 0);
    std::ifstream f(std::filesystem::path(v.out_dir) / "validation.json");
    return Json::parse(f)["band"];
  };
  const Json narrow = band_of(1), wide = band_of(10);
  CHECK(narrow["iteration_time_fraction"] == 0.01);
  CHECK(narrow["target_metrics_inside"] == 6);  // the central prediction is the run itself
  CHECK(narrow["target_metrics"] == 6);
  for (const char* m : {"ttft", "tbt", "jct"}) {
    const Json& n = narrow["requests"][m]["p50_ms"];
    const Json& w = wide["requests"][m]["p50_ms"];
    CHECK(n["lo"].get<double>() <= n["measured"].get<double>());
    CHECK(n["hi"].get<double>() >= n["measured"].get<double>());
    CHECK(w["lo"].get<double>() <= n["lo"].get<double>());
    CHECK(w["hi"].get<double>() >= n["hi"].get<double>());
    CHECK(w["hi"].get<double>() > w["lo"].get<double>());
  }
  CHECK(wide["throughput_requests_per_s"]["inside"] == true);
}

TEST_CASE("simulate --band: the runs with slower and faster iterations, the slower one equal to a time_scale run") {
  const auto dir = std::filesystem::temp_directory_path() / "fdcsim-cli-sim-band";
  std::filesystem::remove_all(dir);
  cli::SimulateOptions s;
  s.overrides = {"workload.num_requests=150", "cluster.servers=1"};
  s.out_dir = (dir / "band").string();
  s.band_pct = 5;
  s.quiet = true;
  REQUIRE(cli::run_simulate(s) == cli::kExitOk);
  std::ifstream f(dir / "band" / "summary.json");
  const Json summary = Json::parse(f);
  const Json& band = summary["band"];
  CHECK(band["iteration_time_fraction"] == 0.05);
  const Json &slow = band["slower"], &fast = band["faster"];
  CHECK(slow["jct"]["p50_ms"].get<double>() > summary["latency"]["jct"]["p50_ms"].get<double>());
  CHECK(fast["jct"]["p50_ms"].get<double>() < summary["latency"]["jct"]["p50_ms"].get<double>());
  CHECK(slow["tpot"]["p50_ms"].get<double>() > fast["tpot"]["p50_ms"].get<double>());

  cli::SimulateOptions slowed = s;
  slowed.band_pct.reset();
  slowed.overrides.push_back("costmodel.time_scale=1.05");
  slowed.out_dir = (dir / "slowed").string();
  REQUIRE(cli::run_simulate(slowed) == cli::kExitOk);
  std::ifstream g(dir / "slowed" / "summary.json");
  const Json other = Json::parse(g);
  CHECK_FALSE(other.contains("band"));
  CHECK(other["latency"]["ttft"]["p99_ms"] == slow["ttft"]["p99_ms"]);
  CHECK(other["throughput"]["requests_per_s"] == slow["requests_per_s"]);
  CHECK(other["cost_model"]["time_scale"] == 1.05);
}

TEST_CASE("--band takes a percent in (0, 50] and says what it found otherwise") {
  for (const char* bad : {"0", "-1", "50.5", "two"}) {
    CLI::App app;
    std::optional<double> pct;
    cli::add_band_option(&app, pct, "band");
    const std::string arg = bad;
    std::vector<std::string> args = {arg, "--band"};  // CLI11 parses a reversed vector
    try {
      app.parse(args);
      FAIL("accepted --band " << bad);
    } catch (const CLI::ValidationError& e) {
      CHECK(std::string(e.what()).find("expected a percent of iteration time in (0, 50], found " + arg) !=
            std::string::npos);
    }
  }
  CLI::App app;
  std::optional<double> pct;
  cli::add_band_option(&app, pct, "band");
  std::vector<std::string> args = {"2.5", "--band"};
  app.parse(args);
  REQUIRE(pct);
  CHECK(*pct == 2.5);
}
