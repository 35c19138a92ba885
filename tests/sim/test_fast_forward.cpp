// Fast-forward over steady decode stretches gives exactly the results of stepping one iteration at
// a time: summary, per-request rows and KV samples, byte for byte.
#include <doctest/doctest.h>

#include <boost/random/uniform_int_distribution.hpp>
#include <sstream>

#include "core/rng.h"
#include "sim/simulator.h"
#include "tests/sim/sim_fixtures.h"

using namespace fdc;

namespace {
struct Outputs {
  std::string summary, requests, kv;
  uint64_t events = 0;
};

Outputs run(Json j, bool fast_forward, const std::vector<traces::RequestSpec>* reqs,
            const costmodel::CostModel* cost_override = nullptr) {
  j["simulator"] = {{"fast_forward", fast_forward}};
  sim::Experiment e = sim::load_experiment_json(j, "ff.json", "");
  if (reqs) e.workload = std::make_unique<test::ListSource>(*reqs);
  auto cost = sim::make_cost_model(e);
  std::ostringstream req, kv;
  sim::Simulator s(e, cost_override ? *cost_override : *cost, {&req, &kv, nullptr});
  s.run();
  Json summary = s.summary();
  // A fitted profile's out-of-range report counts the cost model's evaluations, which
  // fast-forwarding saves; everything else must be identical.
  if (summary["cost_model"].contains("outside_measured")) summary["cost_model"].erase("outside_measured");
  return {summary.dump(2), req.str(), kv.str(), s.totals().events};
}

void check_same(const Json& j, const std::vector<traces::RequestSpec>* reqs = nullptr,
                const costmodel::CostModel* cost = nullptr) {
  Outputs step = run(j, false, reqs, cost);
  Outputs fast = run(j, true, reqs, cost);
  CHECK(step.summary == fast.summary);
  CHECK(step.requests == fast.requests);
  CHECK(step.kv == fast.kv);
  CHECK(fast.events < step.events);  // the shortcut did take effect
}

Json sharegpt(const std::string& policy, bool chunked, const std::string& router, double rate) {
  return Json{{"name", "ff"},
              {"seed", 5},
              {"model", "llama-2-13b"},
              {"hardware", "p4de"},
              {"policy", policy},
              {"cluster", {{"servers", 1}, {"router", router}}},
              {"scheduler", {{"chunked_prefill", chunked}, {"max_batched_tokens", chunked ? 512 : 4096}}},
              {"outputs", {{"kv_sample_interval_ms", 100.0}}},
              {"workload",
               {{"num_requests", 1500},
                {"lengths", {{"source", "sharegpt_embedded"}}},
                {"max_prompt_tokens", 3072},
                {"max_output_tokens", 1024},
                {"arrival", {{"process", "poisson"}, {"rate_per_s", rate}}}}}};
}
}  // namespace

TEST_CASE("fast-forward equals stepping: ShareGPT loads, both schedulers, every router, FDC policies") {
  for (const char* policy : {"none", "fdc-uniform-50", "fdc-hybrid"}) {
    for (bool chunked : {false, true}) {
      for (std::string router : {"round_robin", "least_outstanding", "kv_aware"}) {
        for (double rate : {4.0, 40.0}) {  // light load, and overload with preemptions
          CAPTURE(policy);
          CAPTURE(chunked);
          CAPTURE(router);
          CAPTURE(rate);
          check_same(sharegpt(policy, chunked, router, rate));
        }
      }
    }
  }
}

TEST_CASE("fast-forward equals stepping under heavy preemption, bursts and equal timestamps") {
  for (bool chunked : {false, true}) {
    for (const char* router : {"least_outstanding", "kv_aware"}) {
      CAPTURE(chunked);
      CAPTURE(router);
      Json j = test::toy_experiment(40, 4, chunked, chunked ? 32 : 200);
      j["hardware"]["gpus_per_server"] = 2;
      j["cluster"] = {{"servers", 2}, {"router", router}};
      Rng rng(9);
      boost::random::uniform_int_distribution<int> prompt(1, 80), output(1, 60), gap(0, 3);
      std::vector<traces::RequestSpec> reqs;
      int64_t t = 0;
      for (uint64_t i = 0; i < 500; ++i) {
        t += gap(rng) * 1'000'000;  // many arrivals share a timestamp, and land on iteration ends
        reqs.push_back({i, Nanos(t), prompt(rng), output(rng)});
      }
      test::ToyCostModel cost(1'000'000, 0, 0);  // every iteration 1 ms: ends coincide with arrivals
      check_same(j, &reqs, &cost);
      test::ToyCostModel cost2(500'000, 5'000, 100);
      check_same(j, &reqs, &cost2);
    }
  }
}

TEST_CASE("fast-forward equals stepping with the fitted cost model (costmodel.kind \"profile\")") {
  for (const char* policy : {"none", "fdc-hybrid"}) {
    for (bool chunked : {false, true}) {
      for (double rate : {4.0, 40.0}) {
        CAPTURE(policy);
        CAPTURE(chunked);
        CAPTURE(rate);
        Json j = sharegpt(policy, chunked, "least_outstanding", rate);
        j["costmodel"] = {{"kind", "profile"}};
        // Fewer requests than the roofline cases: every decode step of the profile asks decode
        // attention's neighbours (attention_neighbours), which costs more than a law.
        j["workload"]["num_requests"] = 500;
        check_same(j);
      }
    }
  }
}
