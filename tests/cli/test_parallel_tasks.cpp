// The independent searches of max-rate and min-servers on several threads: every task runs once,
// the first failure in task order is what the caller sees, and the commands' results do not
// depend on --jobs.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/max_rate_command.h"
#include "apps/fdcsim/min_servers_command.h"
#include "apps/fdcsim/parallel_tasks.h"
#include "core/config.h"
#include "tests/captured_output.h"

using namespace fdc;

TEST_CASE("run_tasks: every task once, on one thread or several") {
  for (int jobs : {1, 2, 8}) {
    std::vector<std::atomic<int>> runs(37);
    cli::run_tasks(runs.size(), jobs, [&](size_t i) { ++runs[i]; });
    for (const auto& r : runs) CHECK(r == 1);
  }
  int none = 0;
  cli::run_tasks(0, 4, [&](size_t) { ++none; });
  CHECK(none == 0);
  CHECK(cli::default_jobs() >= 1);
}

TEST_CASE("run_tasks: the lowest-numbered failure is rethrown, whatever the threads") {
  for (int jobs : {1, 2, 4}) {
    std::string what;
    try {
      cli::run_tasks(6, jobs, [](size_t i) {
        if (i == 1 || i == 3) throw std::runtime_error("task " + std::to_string(i));
      });
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == "task 1");
  }
}

TEST_CASE("max-rate and min-servers: --jobs changes nothing in the results") {
  const auto dir = std::filesystem::temp_directory_path();
  auto max_rate_json = [&](int jobs) {
    cli::MaxRateCommandOptions o;
    o.overrides = {"workload.num_requests=300"};
    o.gpus = 1;
    o.tol = 0.05;
    o.band_pct = 5;
    o.policies = {"none", "fdc-uniform-50", "fdc-hybrid"};
    o.jobs = jobs;
    o.json_out = (dir / ("fdcsim-jobs-max-rate-" + std::to_string(jobs) + ".json")).string();
    const auto r = test::captured([&] { return cli::run_max_rate(o); });
    REQUIRE(r.code == cli::kExitOk);
    return std::make_pair(r.out, load_json_file(o.json_out));
  };
  const auto one = max_rate_json(1), four = max_rate_json(4);
  CHECK(one.first == four.first);  // the table on stdout
  CHECK(one.second == four.second);
  CHECK(one.second["searches"].size() == 3);

  auto min_servers_json = [&](int jobs) {
    cli::MinServersCommandOptions o;
    o.overrides = {"workload.num_requests=1000", "workload.arrival.rate_per_s=20"};
    o.policies = {"none", "fdc-uniform-50", "fdc-hybrid"};
    o.jobs = jobs;
    o.json_out = (dir / ("fdcsim-jobs-min-servers-" + std::to_string(jobs) + ".json")).string();
    const auto r = test::captured([&] { return cli::run_min_servers(o); });
    REQUIRE(r.code == cli::kExitOk);
    return std::make_pair(r.out, load_json_file(o.json_out));
  };
  const auto s1 = min_servers_json(1), s3 = min_servers_json(3);
  CHECK(s1.first == s3.first);
  CHECK(s1.second == s3.second);
}
