// SLO attainment and goodput in the comparison: counted by hand on small timelines, and equal to
// the simulator's own count on a simulated one.
#include <doctest/doctest.h>

#include <sstream>

#include "sim/simulator.h"
#include "sim/timeline.h"
#include "tests/sim/sim_fixtures.h"
#include "validate/compare.h"

using namespace fdc;

namespace {
constexpr int64_t kMs = 1'000'000;

sim::RequestRecord completed(uint64_t id, int64_t arrival_ms, std::vector<int64_t> token_ms) {
  sim::RequestRecord r;
  r.id = id;
  r.completed = true;
  r.arrival_ns = arrival_ms * kMs;
  r.prompt = 10;
  r.output = static_cast<int32_t>(token_ms.size());
  r.first_scheduled_ns = r.arrival_ns;
  for (int64_t t : token_ms) r.token_ns.push_back(t * kMs);
  return r;
}

// TTFT / TPOT (ms): 100/50, 300/0 (one token), 100/200, 50/250; and a rejected request.
sim::Timeline measured_timeline() {
  sim::Timeline t;
  t.requests.push_back(completed(0, 0, {100, 150, 200}));
  t.requests.push_back(completed(1, 0, {300}));
  t.requests.push_back(completed(2, 100, {200, 400}));
  t.requests.push_back(completed(3, 200, {250, 260, 270, 1000}));
  sim::RequestRecord rej;
  rej.id = 4;
  rej.reason = "too_long";
  rej.arrival_ns = 0;
  t.requests.push_back(rej);
  return t;
}
// Everything fast: TTFT 10 ms, TPOT 10 ms; four requests over 0.5 s.
sim::Timeline predicted_timeline() {
  sim::Timeline t;
  t.requests.push_back(completed(0, 0, {10, 20, 30}));
  t.requests.push_back(completed(1, 0, {10}));
  t.requests.push_back(completed(2, 100, {110, 120}));
  t.requests.push_back(completed(3, 470, {480, 490, 500}));
  return t;
}
}  // namespace

TEST_CASE("SLO attainment and goodput of a handmade timeline") {
  const sim::Timeline m = measured_timeline();
  SUBCASE("TTFT <= 200 ms and TPOT <= 100 ms: only request 0 meets both") {
    validate::SloFigures f = validate::slo_figures(m, sim::SloConfig{200, 100});
    CHECK(f.completed == 4);  // the rejected request is not counted
    CHECK(f.met == 1);
    CHECK(f.ttft_met == 3);  // all but request 1 (300 ms)
    CHECK(f.tpot_met == 2);  // requests 0 (50 ms) and 1 (one token)
    CHECK(f.attainment == 0.25);
    CHECK(f.goodput_rps == doctest::Approx(1.0));  // 1 met over 0 .. 1000 ms
  }
  SUBCASE("limits are inclusive, as in the simulator: TTFT 100 ms meets ttft_ms = 100") {
    validate::SloFigures f = validate::slo_figures(m, sim::SloConfig{100, 250});
    CHECK(f.ttft_met == 3);  // 100, 100, 50
    CHECK(f.tpot_met == 4);  // 50, 0, 200, 250
    CHECK(f.met == 3);
    CHECK(f.attainment == 0.75);
    CHECK(f.goodput_rps == doctest::Approx(3.0));
  }
  SUBCASE("TPOT is the mean gap after the first token, not the largest") {
    // Request 3: gaps 10, 10, 730 ms, mean 250 ms.
    CHECK(validate::slo_figures(m, sim::SloConfig{1000, 249.999}).tpot_met == 3);
    CHECK(validate::slo_figures(m, sim::SloConfig{1000, 250}).tpot_met == 4);
  }
}

TEST_CASE("the comparison reports SLO figures measured vs predicted, in the report and its JSON") {
  const sim::Timeline m = measured_timeline(), p = predicted_timeline();
  validate::SloComparison c = validate::compare_slo(m, p, sim::SloConfig{200, 100});
  CHECK(c.measured.attainment == 0.25);
  CHECK(c.predicted.attainment == 1.0);
  CHECK(c.attainment_difference() == doctest::Approx(0.75));
  CHECK(c.predicted.goodput_rps == doctest::Approx(8.0));  // 4 met over 0 .. 500 ms
  CHECK(c.goodput().error() == doctest::Approx(7.0));

  test::ToyCostModel cost(1000, 10);  // the timelines have no iterations to cost
  validate::Report with = validate::compare(m, p, cost, sim::SloConfig{200, 100});
  REQUIRE(with.slo.has_value());
  Json j = with.to_json();
  CHECK(j["slo"]["ttft_ms"] == 200.0);
  CHECK(j["slo"]["measured"]["met"] == 1);
  CHECK(j["slo"]["measured"]["attainment"] == 0.25);
  CHECK(j["slo"]["predicted"]["attainment"] == 1.0);
  CHECK(j["slo"]["predicted"]["goodput_requests_per_s"].get<double>() == doctest::Approx(8.0));
  CHECK(j["slo"]["attainment_difference"].get<double>() == doctest::Approx(0.75));
  validate::Report without = validate::compare(m, p, cost);
  CHECK_FALSE(without.slo.has_value());
  CHECK_FALSE(without.to_json().contains("slo"));
}

TEST_CASE("a simulator timeline's SLO count equals the simulator's own") {
  Json cfg = {{"name", "slo"},
              {"seed", 3},
              {"model", "llama-2-7b"},
              {"hardware", "p5"},
              {"policy", "none"},
              {"workload",
               {{"num_requests", 80},
                {"lengths", {{"source", "sharegpt_embedded"}}},
                {"max_prompt_tokens", 2000},
                {"max_output_tokens", 300},
                {"arrival", {{"process", "poisson"}, {"rate_per_s", 60.0}}}}},
              {"slo", {{"ttft_ms", 45.0}, {"tpot_ms", 9.0}}}};
  sim::Experiment e = sim::load_experiment_json(cfg, "slo.json", "");
  auto cost = sim::make_cost_model(e);
  std::stringstream text;
  sim::Simulator s(e, *cost, {nullptr, nullptr, nullptr, &text});
  s.run();
  const sim::Timeline t = sim::parse_timeline(text, "timeline");
  validate::SloFigures f = validate::slo_figures(t, e.slo);
  CHECK(f.completed == static_cast<int64_t>(s.totals().completed));
  CHECK(f.met == static_cast<int64_t>(s.totals().slo_met));
  // A case that tells: some requests meet and some do not.
  CHECK(f.met > 0);
  CHECK(f.met < f.completed);
  CHECK(f.attainment == doctest::Approx(s.summary()["slo"]["attainment"].get<double>()));
}

TEST_CASE("sustained throughput: output tokens until the last request is first scheduled, in mean requests") {
  // Four requests at t = 0 (a burst) with 2, 1, 2 and 3 tokens (mean 2); the last is first
  // scheduled at 400 ms. Tokens by then (the limit inclusive): 100, 300, 400 and 400 ms = 4, that is
  // 2 mean requests in 0.4 s.
  sim::Timeline t;
  t.requests.push_back(completed(0, 0, {100, 300}));
  t.requests.push_back(completed(1, 0, {400}));
  t.requests.push_back(completed(2, 0, {450, 900}));
  t.requests.push_back(completed(3, 0, {400, 500, 2000}));
  t.requests[2].first_scheduled_ns = 200 * kMs;
  t.requests[3].first_scheduled_ns = 400 * kMs;
  CHECK(validate::sustained_throughput(t) == doctest::Approx(2 / 0.4));
  // Plain throughput includes the drain: 4 requests over 0 .. 2 s.
  const validate::RequestErrors e = validate::compare_requests(t, t);
  CHECK(e.throughput_rps.measured == doctest::Approx(2.0));
  CHECK(e.sustained_rps.measured == doctest::Approx(5.0));
  CHECK(e.sustained_rps.error() == 0.0);
  CHECK(e.sustained_loaded());
  SUBCASE("every request scheduled at its arrival: no window, no figure") {
    for (auto& r : t.requests) r.first_scheduled_ns = r.arrival_ns;
    CHECK(validate::sustained_throughput(t) == 0.0);
    CHECK_FALSE(validate::compare_requests(t, t).sustained_loaded());
  }
  SUBCASE("a window that holds almost no decode: a rate, but no capacity") {
    // The last request first scheduled at 1 s, and only one token (of 8, mean 2) emitted by then:
    // 0.5 mean requests in 1 s, against 4 requests completed over 0 .. 2 s.
    sim::Timeline w;
    w.requests.push_back(completed(0, 0, {1900, 1950}));
    w.requests.push_back(completed(1, 0, {1950}));
    w.requests.push_back(completed(2, 0, {100, 1960}));
    w.requests.push_back(completed(3, 0, {1990, 1995, 2000}));
    w.requests[3].first_scheduled_ns = 1000 * kMs;
    const validate::RequestErrors early = validate::compare_requests(w, w);
    CHECK(early.sustained_rps.measured == doctest::Approx(0.5));
    CHECK(early.throughput_rps.measured == doctest::Approx(2.0));
    CHECK_FALSE(early.sustained_loaded());
  }
}

TEST_CASE("a predicted percentile read as a quantile of the measured distribution") {
  // One request of 100 gaps: 98 of 10 ms, one of 40 ms and one of `last_ms` (a tail with a step).
  auto run = [](int64_t last_ms) {
    std::vector<int64_t> tokens{10};
    for (int i = 1; i <= 100; ++i) tokens.push_back(tokens.back() + (i == 50 ? 40 : i == 80 ? last_ms : 10));
    sim::Timeline t;
    t.requests.push_back(completed(0, 0, tokens));
    return t;
  };
  const sim::Timeline measured = run(60), predicted = run(40);
  const validate::RequestErrors e = validate::compare_requests(measured, predicted);
  const auto& p99 = e.percentiles.at("tbt")[2];
  // Measured P99 interpolates 40 .. 60 ms at rank 98.01 of 0 .. 99: 40.2 ms; predicted 40 ms.
  CHECK(p99.measured == doctest::Approx(0.0402));
  CHECK(p99.predicted == doctest::Approx(0.040));
  // 40 ms in the measured gaps: 98 below, one equal (counted half): the measured P98.5.
  CHECK(p99.measured_quantile == doctest::Approx(0.985));
  // The P50s agree (10 ms, which 98 of the 100 measured gaps equal): (0 + 98 / 2) / 100.
  CHECK(e.percentiles.at("tbt")[0].error() == 0.0);
  CHECK(e.percentiles.at("tbt")[0].measured_quantile == doctest::Approx(0.49));
  // The other way round: 40.2 ms is above every gap of the 40 / 40 run, quantile 1.
  const validate::RequestErrors back = validate::compare_requests(predicted, measured);
  CHECK(back.percentiles.at("tbt")[2].measured_quantile == doctest::Approx(1.0));
  validate::Report r;
  r.requests = e;
  CHECK(r.to_json()["requests"]["tbt"]["p99"]["predicted_as_measured_quantile"].get<double>() ==
        doctest::Approx(0.985));
}
