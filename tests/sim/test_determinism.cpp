// The same config and seed give byte-identical outputs; another seed gives others.
#include <doctest/doctest.h>

#include <sstream>

#include "sim/simulator.h"

using namespace fdc;

namespace {
struct Outputs {
  std::string summary, requests, kv, trace;
};
Outputs run(uint64_t seed, const std::string& policy) {
  Json j = {{"name", "det"},
            {"seed", seed},
            {"model", "llama-2-7b"},
            {"hardware", "p5"},
            {"policy", policy},
            {"cluster", {{"servers", 1}, {"tp", 2}, {"router", "least_outstanding"}}},
            {"scheduler", {{"chunked_prefill", true}, {"max_batched_tokens", 2048}}},
            {"outputs", {{"kv_sample_interval_ms", 250.0}}},
            {"workload",
             {{"num_requests", 400},
              {"lengths", {{"source", "sharegpt_embedded"}}},
              {"max_prompt_tokens", 3000},
              {"max_output_tokens", 1000},
              {"arrival", {{"process", "gamma"}, {"rate_per_s", 20.0}, {"cv", 2.0}}}}}};
  sim::Experiment e = sim::load_experiment_json(j, "det.json", "");
  auto cost = sim::make_cost_model(e);
  std::ostringstream req, kv, trace;
  sim::Simulator s(e, *cost, {&req, &kv, &trace});
  s.run();
  return {s.summary().dump(2), req.str(), kv.str(), trace.str()};
}
}  // namespace

TEST_CASE("byte-identical outputs for the same config and seed") {
  Outputs a = run(11, "fdc-hybrid");
  Outputs b = run(11, "fdc-hybrid");
  CHECK(a.summary == b.summary);
  CHECK(a.requests == b.requests);
  CHECK(a.kv == b.kv);
  CHECK(a.trace == b.trace);
  CHECK(a.requests.size() > 400 * 40);
  CHECK(a.trace.find("\"ph\":\"X\"") != std::string::npos);
  Outputs c = run(12, "fdc-hybrid");
  CHECK(a.requests != c.requests);
}
