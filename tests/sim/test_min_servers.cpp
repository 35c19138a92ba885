// The fewest servers meeting an SLO: the doubling-and-bisection search on synthetic probes, on a
// simulated case whose answer is reasoned out by hand (and checked against every count), the
// longer-workload check, and refusals of bad input.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "sim/min_servers.h"
#include "tests/input_error.h"
#include "tests/sim/sim_fixtures.h"

using namespace fdc;
using test::input_error_of;

namespace {

// Every count from `enough` on meets (attainment 1), fewer miss (0.5).
sim::ServersProbeFn threshold(int64_t enough, std::vector<int64_t>* seen = nullptr) {
  return [=](int64_t servers) {
    if (seen) seen->push_back(servers);
    sim::RateProbe p;
    p.completed = 100;
    p.attainment = servers >= enough ? 1.0 : 0.5;
    p.gpus = 8 * servers;
    return p;
  };
}

}  // namespace

TEST_CASE("min-servers: doubling brackets the count, bisection over the integers finds it") {
  sim::MinServersOptions o;
  SUBCASE("5 servers: 1, 2, 4, 8, then 6 and 5") {
    std::vector<int64_t> seen;
    sim::MinServersResult r = sim::search_min_servers(threshold(5, &seen), o);
    CHECK(r.status == sim::MinServersStatus::kFound);
    CHECK(r.servers == 5);
    CHECK(seen == std::vector<int64_t>{1, 2, 4, 8, 6, 5});
    CHECK(r.at_servers().meets);
    CHECK(r.at_servers().gpus == 40);
    CHECK(r.message() == "fewest servers meeting the SLO for 90% of requests: 5 (40 GPUs); 4 fail");
    CHECK(r.warning().empty());  // no longer run on synthetic probes
  }
  SUBCASE("every count from 1 meets: one probe") {
    sim::MinServersResult r = sim::search_min_servers(threshold(1), o);
    CHECK(r.status == sim::MinServersStatus::kFound);
    CHECK(r.servers == 1);
    CHECK(r.probes.size() == 1);
  }
  SUBCASE("a power of two: found by doubling, confirmed by bisecting down to it") {
    std::vector<int64_t> seen;
    sim::MinServersResult r = sim::search_min_servers(threshold(16, &seen), o);
    CHECK(r.servers == 16);
    CHECK(seen == std::vector<int64_t>{1, 2, 4, 8, 16, 12, 14, 15});
  }
  SUBCASE("--servers-lo that already meets is an upper bound") {
    o.servers_lo = 3;
    sim::MinServersResult r = sim::search_min_servers(threshold(2), o);
    CHECK(r.status == sim::MinServersStatus::kUpperBound);
    CHECK(r.servers == 3);
    CHECK(r.message().find("3 servers (24 GPUs), the fewest tried: an upper bound") != std::string::npos);
  }
  SUBCASE("--servers-lo that fails: the search goes on from it") {
    o.servers_lo = 3;
    std::vector<int64_t> seen;
    sim::MinServersResult r = sim::search_min_servers(threshold(10, &seen), o);
    CHECK(r.servers == 10);
    CHECK(seen == std::vector<int64_t>{3, 6, 12, 9, 10});
  }
  SUBCASE("no count up to --max-servers: the last tried is the cap itself") {
    o.max_servers = 20;
    std::vector<int64_t> seen;
    sim::MinServersResult r = sim::search_min_servers(threshold(100, &seen), o);
    CHECK(r.status == sim::MinServersStatus::kNoneMeets);
    CHECK(r.servers == 20);
    CHECK(seen == std::vector<int64_t>{1, 2, 4, 8, 16, 20});
    CHECK(r.message().find("no server count up to 20 meets the SLO for 90% of requests (attainment there 50%") == 0);
  }
  SUBCASE("a run that completes nothing does not meet") {
    sim::MinServersResult r = sim::search_min_servers([](int64_t) { return sim::RateProbe{}; }, o);
    CHECK(r.status == sim::MinServersStatus::kNoneMeets);
  }
}

TEST_CASE("min-servers: bad options name the option") {
  auto with = [](auto set) {
    sim::MinServersOptions o;
    set(o);
    return input_error_of([&] { sim::check_min_servers_options(o); });
  };
  CHECK(with([](sim::MinServersOptions& o) { o.attainment = 0; }).find("--attainment: expected a fraction") == 0);
  CHECK(with([](sim::MinServersOptions& o) { o.servers_lo = 0; }) ==
        "--servers-lo: expected a server count >= 1, found 0");
  CHECK(with([](sim::MinServersOptions& o) {
          o.servers_lo = 8;
          o.max_servers = 4;
        }) == "--max-servers: expected at least --servers-lo (8), found 4");
  CHECK(with([](sim::MinServersOptions&) {}).empty());
}

namespace {

// Ten requests of 100 prompt tokens and one output token, 25 ms apart; each iteration costs 1 ms
// per new token, so a request alone takes d = 100 ms, and queued requests batched together cost
// the same per request. One GPU per server, one replica each; round robin gives each of n servers
// every n-th request, g = n x 25 ms apart. With g >= d every TTFT is d; with g < d the k-th request
// of a server waits (k - 1)(d - g) more. With slo.ttft_ms = 1.5 d and a 100% target: n = 4 (g = d)
// meets; n = 3 (g = 75 ms, four requests on the first server: the fourth waits 75 ms) fails.
sim::ExperimentInput toy_input() {
  Json j = test::toy_experiment(1000, 16);
  j["workload"] = {{"num_requests", 10},
                   {"lengths", {{"source", "fixed"}, {"prompt_tokens", 100}, {"output_tokens", 1}}},
                   {"arrival", {{"process", "fixed_rate"}, {"rate_per_s", 40.0}}}};
  j["slo"] = {{"ttft_ms", 150.0}, {"tpot_ms", 1000.0}};
  return sim::ExperimentInput{j, "toy.json", ""};
}
const sim::CostModelFactory kToyCost = [](const sim::Experiment&) {
  return std::make_unique<test::ToyCostModel>(0, 1'000'000);
};

}  // namespace

TEST_CASE("min-servers on the simulator: the count reasoned out by hand, and the same as trying every count") {
  const sim::ExperimentInput in = toy_input();
  sim::MinServersOptions o;
  o.attainment = 1.0;
  int calls = 0;
  sim::MinServersResult r = sim::search_min_servers(
      in, o, [&](const sim::RateProbe&, int64_t, int64_t) { ++calls; }, kToyCost);
  REQUIRE(r.status == sim::MinServersStatus::kFound);
  CHECK(r.servers == 4);
  CHECK(r.policy == "none");
  CHECK(calls == static_cast<int>(r.probes.size()));
  CHECK(r.at_servers().gpus == 4);
  CHECK(r.at_servers().price_per_hour_usd == doctest::Approx(4.0));
  CHECK(r.at_servers().offered_per_s == doctest::Approx(40.0));
  // Each count alone: the first that meets is the answer.
  for (int64_t n = 1; n <= 6; ++n) {
    sim::ExperimentInput at = in;
    at.config["cluster"]["servers"] = n;
    const sim::RateProbe p = sim::simulate_slo(at, kToyCost);
    CHECK(p.servers == n);
    CHECK((p.attainment >= 1.0) == (n >= 4));
  }
  // Twice the requests at 4 servers: the same gaps, so it still meets; no warning.
  REQUIRE(r.longer.has_value());
  CHECK(r.longer_requests == 20);
  CHECK(r.longer->meets);
  CHECK(r.longer->completed == 20);
  CHECK(r.warning().empty());
  CHECK(r.to_json()["longer_workload"]["num_requests"] == 20);
}

TEST_CASE("min-servers on the simulator: a workload too short to fill the queues is warned about") {
  // 3 servers at 90%: nine of the ten requests meet (only the first server's fourth waits too
  // long), so 3 servers pass; with twenty requests each server's queue grows further and more miss.
  sim::MinServersResult r = sim::search_min_servers(toy_input(), sim::MinServersOptions{}, {}, kToyCost);
  REQUIRE(r.status == sim::MinServersStatus::kFound);
  CHECK(r.servers == 3);
  REQUIRE(r.longer.has_value());
  CHECK_FALSE(r.longer->meets);
  CHECK(r.warning().find("with twice the requests (20) 3 servers meet the SLO for only") == 0);
  CHECK(r.to_json()["warning"] == r.warning());

  // Through JSON text and back (how the ranks of an MPI launch send results): exact, the longer
  // run and its warning too.
  const sim::MinServersResult back = sim::MinServersResult::from_json(Json::parse(r.to_json().dump()));
  CHECK(back.to_json() == r.to_json());
  CHECK(back.servers == 3);
  REQUIRE(back.longer.has_value());
  CHECK(back.longer->attainment == r.longer->attainment);
  CHECK(back.longer_requests == 20);
  CHECK(back.warning() == r.warning());
  Json broken = r.to_json();
  broken["status"] = "maybe";
  CHECK_THROWS_AS(sim::MinServersResult::from_json(broken), InternalError);
  broken = r.to_json();
  broken["longer_workload"].erase("run");
  CHECK_THROWS_AS(sim::MinServersResult::from_json(broken), InternalError);
}

TEST_CASE("min-servers on the simulator: configs it cannot search are refused naming the key") {
  sim::ExperimentInput in = toy_input();
  in.config.erase("slo");
  CHECK(input_error_of([&] {
          sim::min_servers_check(in);
        }).find("toy.json: /slo/ttft_ms: min-servers needs an explicit SLO") == 0);
  CHECK(input_error_of([&] {
          sim::search_min_servers(in, sim::MinServersOptions{}, {}, kToyCost);
        }).find("toy.json: /slo/ttft_ms: min-servers needs an explicit SLO") == 0);
}
