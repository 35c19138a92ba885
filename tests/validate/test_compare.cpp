// The comparison half of validation, from timelines the simulator writes.
#include <doctest/doctest.h>

#include <sstream>

#include "core/error.h"
#include "sim/simulator.h"
#include "sim/timeline.h"
#include "tests/sim/sim_fixtures.h"
#include "validate/compare.h"

using namespace fdc;

namespace {
Json small_experiment() {
  return Json{{"name", "val"},
              {"seed", 4},
              {"model", "llama-2-7b"},
              {"hardware", "p5"},
              {"policy", "fdc-uniform-50"},
              {"cluster", {{"servers", 1}, {"tp", 2}}},
              {"scheduler", {{"chunked_prefill", true}, {"max_batched_tokens", 1024}}},
              {"workload",
               {{"num_requests", 120},
                {"lengths", {{"source", "sharegpt_embedded"}}},
                {"max_prompt_tokens", 2000},
                {"max_output_tokens", 300},
                {"arrival", {{"process", "poisson"}, {"rate_per_s", 30.0}}}}}};
}

sim::Timeline run_timeline(const costmodel::CostModel* cost_override, uint64_t* iterations = nullptr) {
  sim::Experiment e = sim::load_experiment_json(small_experiment(), "val.json", "");
  auto cost = sim::make_cost_model(e);
  std::stringstream text;
  sim::Simulator s(e, cost_override ? *cost_override : *cost, {nullptr, nullptr, nullptr, &text});
  s.run();
  if (iterations) *iterations = s.totals().iterations;
  return sim::parse_timeline(text, "timeline");
}
}  // namespace

TEST_CASE("a timeline records every iteration and every request of the run") {
  uint64_t iterations = 0;
  sim::Timeline t = run_timeline(nullptr, &iterations);
  CHECK(t.header.source == "simulator");
  CHECK(t.header.replicas == 4);
  CHECK(t.iterations.size() == iterations);
  CHECK(t.requests.size() == 120);
  for (const auto& r : t.requests) {
    CHECK(r.completed);
    CHECK(r.token_ns.size() == static_cast<size_t>(r.output));
    CHECK(r.token_ns.front() > r.arrival_ns);
  }
  CHECK(t.header.config["workload"]["num_requests"] == 120);
}

TEST_CASE("the same run compared with itself has no error") {
  sim::Timeline t = run_timeline(nullptr);
  sim::Experiment e = sim::load_experiment_json(small_experiment(), "val.json", "");
  auto cost = sim::make_cost_model(e);
  validate::Report r = validate::compare(t, t, *cost);
  CHECK(r.iterations.all.count == t.iterations.size());
  CHECK(r.iterations.all.worst_abs == doctest::Approx(0.0));
  CHECK(r.iteration_target_met());
  CHECK(r.request_target_met());
  CHECK(r.blocks_equal());
  CHECK(r.requests.percentiles.at("ttft")[0].error() == 0.0);
  // Every iteration's prediction by op adds up to its prediction, and records the batch.
  REQUIRE(r.iterations.predicted_op_s.size() == t.iterations.size());
  for (size_t i = 0; i < t.iterations.size(); ++i) {
    double sum = 0;
    for (double s : r.iterations.predicted_op_s[i]) sum += s;
    CHECK(sum == doctest::Approx(r.iterations.predicted_s[i]).epsilon(1e-6));  // the total is whole ns
    CHECK(r.iterations.seqs[i] == t.iterations[i].batch.totals.num_seqs);
    CHECK(r.iterations.new_tokens[i] == t.iterations[i].batch.totals.new_tokens);
  }
}

TEST_CASE("a time model 10% fast shows as -9.09% on every iteration and fails the targets") {
  // "Measured": 1.1 ms + 11 us per token. Predicted: 1 ms + 10 us per token (exactly 1/1.1).
  test::ToyCostModel slow(1'100'000, 11'000), fast(1'000'000, 10'000);
  sim::Timeline measured = run_timeline(&slow);
  sim::Timeline predicted = run_timeline(&fast);
  validate::Report r = validate::compare(measured, predicted, fast);
  CHECK(r.iterations.all.median_abs == doctest::Approx(1.0 - 1.0 / 1.1));
  CHECK(r.iterations.all.worst_abs == doctest::Approx(1.0 - 1.0 / 1.1));
  CHECK(r.iterations.all.mean == doctest::Approx(1.0 / 1.1 - 1.0));
  CHECK_FALSE(r.iteration_target_met());
  // Faster iterations: shorter request latencies predicted.
  CHECK(r.requests.percentiles.at("tbt")[0].error() < -0.05);
  CHECK(r.requests.percentiles.at("jct")[0].error() < 0.0);
  CHECK_FALSE(r.request_target_met());
}

TEST_CASE("bad timelines are refused with file and line") {
  auto error_of = [](const std::string& text) {
    std::istringstream in(text);
    try {
      sim::parse_timeline(in, "t.jsonl");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("") == "t.jsonl: empty timeline (no header line)");
  CHECK(error_of("{\"type\":\"iteration\"}\n").find("t.jsonl:1: the first line must be the header") == 0);
  const std::string header =
      "{\"type\":\"header\",\"format\":\"fdcsim-timeline\",\"version\":1,\"source\":\"engine\",\"device\":\"H100\","
      "\"replicas\":1,\"kv_blocks_per_replica\":10,\"block_size\":16,\"config\":{}}\n";
  CHECK(error_of(header + "not json\n").find("t.jsonl:2: not a JSON object") == 0);
  CHECK(error_of(header +
                 "{\"type\":\"request\",\"id\":0,\"replica\":0,\"status\":\"completed\",\"arrival_ns\":0,\"prompt\":3,"
                 "\"output\":2,\"first_scheduled_ns\":0,\"token_ns\":[5],\"preemptions\":0}\n")
            .find("t.jsonl:2: 1 token times for 2 output tokens") == 0);
  CHECK(error_of(header + "{\"type\":\"iteration\",\"replica\":0,\"start_ns\":0,\"duration_ns\":0,\"seqs\":[[1,0,1]]}\n")
            .find("t.jsonl:2: duration_ns must be > 0") == 0);
}
