// The highest rate meeting an SLO: the bracket-and-bisect search on synthetic attainment curves,
// on a simulated case whose threshold is known in closed form, and its refusals of bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "sim/max_rate.h"
#include "tests/input_error.h"
#include "tests/sim/sim_fixtures.h"

using namespace fdc;
using test::input_error_of;

namespace {

// A probe function from an attainment curve; throughput is the rate, capped at `capacity`.
sim::RateProbeFn curve(double (*attainment)(double), double capacity = 1e9) {
  return [=](double rate) {
    sim::RateProbe p;
    p.attainment = attainment(rate);
    p.completed = 100;
    p.slo_met = static_cast<uint64_t>(std::lround(100 * p.attainment));
    p.throughput_per_s = std::min(rate, capacity);
    p.goodput_per_s = p.attainment * p.throughput_per_s;
    return p;
  };
}

// Checks the result brackets the crossover: lo met, hi failed, both were probed, and the bracket
// is as narrow as asked.
void check_bracket(const sim::MaxRateResult& r, double tol) {
  REQUIRE(r.status == sim::MaxRateStatus::kFound);
  CHECK(r.rate_per_s < r.upper_rate_per_s);
  CHECK(r.upper_rate_per_s - r.rate_per_s <= tol * r.rate_per_s);
  bool lo_seen = false, hi_seen = false;
  for (const auto& p : r.probes) {
    if (p.rate_per_s == r.rate_per_s) lo_seen = p.meets;
    if (p.rate_per_s == r.upper_rate_per_s) hi_seen = !p.meets;
    // No probe that met lies above one that failed within the bracket's ends.
    if (p.meets) CHECK(p.rate_per_s <= r.rate_per_s);
  }
  CHECK(lo_seen);
  CHECK(hi_seen);
  CHECK(r.at_rate().meets);
}

}  // namespace

TEST_CASE("max-rate: a step in attainment is found within the tolerance, from below and from above") {
  auto step = [](double r) { return r <= 3.7 ? 0.95 : 0.5; };
  sim::MaxRateOptions o;
  SUBCASE("start below: doubling, then bisection") {
    sim::MaxRateResult r = sim::search_max_rate(curve(step), 1.0, o);
    check_bracket(r, o.tol);
    CHECK(r.rate_per_s <= 3.7);
    CHECK(r.upper_rate_per_s > 3.7);
    // 1, 2, 4 bracket [2, 4]; bisection to 2% of ~3.7 needs 5 more (width 2 / 2^5 = 0.0625 < 0.074).
    CHECK(r.probes[0].rate_per_s == 1.0);
    CHECK(r.probes[1].rate_per_s == 2.0);
    CHECK(r.probes[2].rate_per_s == 4.0);
    CHECK(r.probes.size() == 8);
  }
  SUBCASE("start above: 80% of the failing run's throughput, then bisection") {
    sim::MaxRateResult r = sim::search_max_rate(curve(step, 4.0), 100.0, o);
    check_bracket(r, o.tol);
    CHECK(r.rate_per_s <= 3.7);
    CHECK(r.upper_rate_per_s > 3.7);
    CHECK(r.probes[1].rate_per_s == doctest::Approx(3.2));
  }
  SUBCASE("a run completing well under the rate is flagged as not steady") {
    sim::MaxRateResult steady = sim::search_max_rate(curve(step), 1.0, o);
    CHECK(steady.warning().empty());
    CHECK_FALSE(steady.to_json().contains("warning"));
    sim::MaxRateResult short_run = sim::search_max_rate(curve(step, 3.0), 1.0, o);  // completes 3 req/s at most
    CHECK(short_run.warning().find("before reaching a steady state") != std::string::npos);
    CHECK(short_run.to_json().contains("warning"));
  }
  SUBCASE("a tighter tolerance narrows the bracket around the same step") {
    o.tol = 0.001;
    sim::MaxRateResult r = sim::search_max_rate(curve(step), 1.0, o);
    check_bracket(r, o.tol);
    CHECK(r.rate_per_s == doctest::Approx(3.7).epsilon(0.001));
  }
}

TEST_CASE("max-rate: a smooth monotone curve: the bracket contains the exact crossover") {
  // attainment = exp(-rate / 10) crosses 0.9 at 10 ln(1/0.9) = 1.05361 req/s.
  auto smooth = [](double r) { return std::exp(-r / 10.0); };
  const double crossover = 10.0 * std::log(1.0 / 0.9);
  for (double start : {0.01, 0.5, 1.0, 7.0, 300.0}) {
    CAPTURE(start);
    sim::MaxRateResult r = sim::search_max_rate(curve(smooth), start, sim::MaxRateOptions{});
    check_bracket(r, 0.02);
    CHECK(r.rate_per_s <= crossover);
    CHECK(r.upper_rate_per_s > crossover);
  }
}

TEST_CASE("max-rate: given rates, lower bounds and no rate at all") {
  auto step = [](double r) { return r <= 3.7 ? 1.0 : 0.0; };
  auto always = [](double) { return 1.0; };
  auto never = [](double) { return 0.5; };
  sim::MaxRateOptions o;
  SUBCASE("--rate-lo and --rate-hi: bisection straight away") {
    o.rate_lo = 3.0;
    o.rate_hi = 5.0;
    sim::MaxRateResult r = sim::search_max_rate(curve(step), 1.0, o);
    check_bracket(r, o.tol);
    CHECK(r.probes[0].rate_per_s == 3.0);
    CHECK(r.probes[1].rate_per_s == 5.0);
    CHECK(r.probes[2].rate_per_s == 4.0);
  }
  SUBCASE("--rate-hi that still meets: doubled from there") {
    o.rate_lo = 1.0;
    o.rate_hi = 2.0;
    sim::MaxRateResult r = sim::search_max_rate(curve(step), 1.0, o);
    check_bracket(r, o.tol);
    CHECK(r.probes[2].rate_per_s == 4.0);
  }
  SUBCASE("unbounded: met after every doubling is a lower bound, after max_doublings probes up") {
    o.max_doublings = 5;
    sim::MaxRateResult r = sim::search_max_rate(curve(always), 1.0, o);
    CHECK(r.status == sim::MaxRateStatus::kLowerBound);
    CHECK(r.rate_per_s == 32.0);
    CHECK(r.probes.size() == 6);
    CHECK(r.message().find("lower bound") != std::string::npos);
    CHECK(r.to_json()["status"] == "lower_bound");
  }
  SUBCASE("no rate meets: 80% of throughput, then halving, then give up naming the lowest rate") {
    o.max_doublings = 3;
    sim::MaxRateResult r = sim::search_max_rate(curve(never, 4.0), 8.0, o);
    CHECK(r.status == sim::MaxRateStatus::kNoneMeets);
    REQUIRE(r.probes.size() == 5);  // 8, then 3.2, 1.6, 0.8, 0.4
    CHECK(r.probes[1].rate_per_s == doctest::Approx(3.2));
    CHECK(r.rate_per_s == doctest::Approx(0.4));
    CHECK(r.message().find("no rate meets the SLO down to 0.4 req/s") != std::string::npos);
  }
  SUBCASE("a --rate-lo that fails ends the search at once") {
    o.rate_lo = 2.0;
    sim::MaxRateResult r = sim::search_max_rate(curve(never), 1.0, o);
    CHECK(r.status == sim::MaxRateStatus::kNoneMeets);
    CHECK(r.probes.size() == 1);
    CHECK(r.message().find("down to 2 req/s") != std::string::npos);
  }
  SUBCASE("a run that completed nothing never meets") {
    auto empty = [](double) { return sim::RateProbe{}; };
    o.max_doublings = 0;
    CHECK(sim::search_max_rate(empty, 1.0, o).status == sim::MaxRateStatus::kNoneMeets);
  }
}

TEST_CASE("max-rate: bad options name the option") {
  auto with = [](auto set) {
    sim::MaxRateOptions o;
    set(o);
    return input_error_of([&] { sim::check_max_rate_options(o); });
  };
  CHECK(with([](sim::MaxRateOptions& o) { o.attainment = 0; }).find("--attainment: expected a fraction in (0, 1]") ==
        0);
  CHECK(with([](sim::MaxRateOptions& o) { o.attainment = 1.5; }).find("--attainment") == 0);
  CHECK(with([](sim::MaxRateOptions& o) { o.attainment = 1.0; }).empty());
  CHECK(with([](sim::MaxRateOptions& o) { o.tol = 0; }).find("--tol") == 0);
  CHECK(with([](sim::MaxRateOptions& o) { o.rate_lo = -1; }).find("--rate-lo: expected a rate > 0") == 0);
  CHECK(with([](sim::MaxRateOptions& o) { o.rate_hi = 0; }).find("--rate-hi") == 0);
  CHECK(with([](sim::MaxRateOptions& o) {
          o.rate_lo = 4;
          o.rate_hi = 2;
        }).find("--rate-lo 4 must be below --rate-hi 2") == 0);
  CHECK(with([](sim::MaxRateOptions& o) { o.max_doublings = -1; }).find("--max-doublings") == 0);
}

namespace {

// Ten requests of 100 prompt tokens and one output token at fixed gaps g = 1/rate; each iteration
// costs 1 ms per new token, so a request alone takes d = 100 ms and batches cost the same per
// request. For g >= d every TTFT is d. For 8d/9 < g < d each request still runs alone, right after
// the one before it: request k (k = 1..10) has TTFT d + (k-1)(d-g). With slo.ttft_ms = 1.5 d, it
// meets iff (k-1)(d-g) <= d/2, and at least 9 of 10 meet iff g >= 15d/16: the highest rate meeting
// a 90% target is 16 / (15 d) = 10.667 req/s.
sim::ExperimentInput toy_input() {
  Json j = test::toy_experiment(1000, 16);
  j["workload"] = {{"num_requests", 10},
                   {"lengths", {{"source", "fixed"}, {"prompt_tokens", 100}, {"output_tokens", 1}}},
                   {"arrival", {{"process", "fixed_rate"}, {"rate_per_s", 2.0}}}};
  j["slo"] = {{"ttft_ms", 150.0}, {"tpot_ms", 1000.0}};
  return sim::ExperimentInput{j, "toy.json", ""};
}
const sim::CostModelFactory kToyCost = [](const sim::Experiment&) {
  return std::make_unique<test::ToyCostModel>(0, 1'000'000);
};
constexpr double kToyMaxRate = 16.0 / 15.0 / 0.1;

}  // namespace

TEST_CASE("max-rate on the simulator: the threshold reasoned out by hand") {
  const sim::ExperimentInput in = toy_input();
  CHECK(sim::max_rate_start(in) == 2.0);
  // Just below the threshold 9 of 10 meet, just above 8 do; far below all do.
  CHECK(sim::simulate_at_rate(in, 5.0, kToyCost).slo_met == 10);
  CHECK(sim::simulate_at_rate(in, kToyMaxRate * 0.995, kToyCost).slo_met == 9);
  CHECK(sim::simulate_at_rate(in, kToyMaxRate * 1.005, kToyCost).slo_met == 8);

  sim::MaxRateOptions o;
  o.tol = 0.01;
  int calls = 0;
  sim::MaxRateResult r = sim::search_max_rate(
      in, o, [&](const sim::RateProbe&, double, double) { ++calls; }, kToyCost);
  check_bracket(r, o.tol);
  CHECK(r.policy == "none");
  CHECK(calls == static_cast<int>(r.probes.size()));
  CHECK(r.probes[0].rate_per_s == 2.0);  // the config's own rate first
  CHECK(r.rate_per_s <= kToyMaxRate);
  CHECK(r.upper_rate_per_s > kToyMaxRate);
  CHECK(r.at_rate().attainment == doctest::Approx(0.9));
  CHECK(r.at_rate().completed == 10);
  // Every probe's figures are the simulation's own.
  for (const auto& p : r.probes) CHECK(p.meets == (p.rate_per_s <= kToyMaxRate));

  // The same search at a 100% target: 10 of 10 meet iff 9(d-g) <= d/2, g >= 17d/18.
  o.attainment = 1.0;
  sim::MaxRateResult all = sim::search_max_rate(in, o, {}, kToyCost);
  check_bracket(all, o.tol);
  CHECK(all.rate_per_s <= 18.0 / 17.0 / 0.1);
  CHECK(all.upper_rate_per_s > 18.0 / 17.0 / 0.1);

  // Through JSON text and back (how the ranks of an MPI launch send results): exact.
  for (const sim::MaxRateResult* res : {&r, &all}) {
    const sim::MaxRateResult back = sim::MaxRateResult::from_json(Json::parse(res->to_json().dump()));
    CHECK(back.to_json() == res->to_json());
    CHECK(back.status == res->status);
    CHECK(back.rate_per_s == res->rate_per_s);
    CHECK(back.upper_rate_per_s == res->upper_rate_per_s);
    REQUIRE(back.probes.size() == res->probes.size());
    for (size_t i = 0; i < back.probes.size(); ++i) {
      CHECK(back.probes[i].attainment == res->probes[i].attainment);
      CHECK(back.probes[i].ttft_p90_ms == res->probes[i].ttft_p90_ms);
      CHECK(back.probes[i].completed == res->probes[i].completed);
    }
  }
  Json broken = r.to_json();
  broken["status"] = "almost";
  CHECK_THROWS_AS(sim::MaxRateResult::from_json(broken), InternalError);
  broken = r.to_json();
  broken["probes"][0].erase("goodput_per_s");
  CHECK_THROWS_AS(sim::MaxRateResult::from_json(broken), InternalError);
  broken = r.to_json();
  broken["probes"][0]["completed"] = "ten";
  CHECK_THROWS_AS(sim::MaxRateResult::from_json(broken), InternalError);
}

TEST_CASE("max-rate on the simulator: configs it cannot search are refused naming the key") {
  sim::ExperimentInput in = toy_input();
  SUBCASE("no SLO in the config") {
    in.config.erase("slo");
    CHECK(input_error_of([&] {
            sim::max_rate_start(in);
          }).find("toy.json: /slo/ttft_ms: max-rate needs an explicit SLO") == 0);
    in.config["slo"] = {{"ttft_ms", 100.0}};
    CHECK(input_error_of([&] {
            sim::max_rate_start(in);
          }).find("toy.json: /slo/tpot_ms: max-rate needs an explicit SLO") == 0);
  }
  SUBCASE("a zero SLO") {
    in.config["slo"]["tpot_ms"] = 0;
    CHECK(input_error_of([&] { sim::max_rate_start(in); }).find("/slo/tpot_ms: expected a number > 0") !=
          std::string::npos);
  }
  SUBCASE("arrivals without a rate") {
    in.config["workload"]["arrival"] = {{"process", "burst"}};
    const std::string e = input_error_of([&] { sim::max_rate_start(in); });
    CHECK(e.find("toy.json: /workload/arrival/process: max-rate searches workload.arrival.rate_per_s") == 0);
    CHECK(e.find("\"burst\"") != std::string::npos);
  }
  SUBCASE("gamma arrivals are rate-driven") {
    in.config["workload"]["arrival"] = {{"process", "gamma"}, {"rate_per_s", 3.0}, {"cv", 2.0}};
    CHECK(sim::max_rate_start(in) == 3.0);
  }
}
