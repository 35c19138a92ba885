// The comparison half of validation, from timelines the simulator writes.
#include <doctest/doctest.h>

#include <sstream>

#include "core/error.h"
#include "sim/simulator.h"
#include "sim/timeline.h"
#include "tests/input_error.h"
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
  std::string bad_kernels = header;
  bad_kernels.insert(bad_kernels.size() - 2, ",\"kernels\":\"CUDA cores\"");
  CHECK(error_of(bad_kernels).find("t.jsonl:1: key \"kernels\": expected an object, found") == 0);
}

TEST_CASE("an engine timeline's header says which kernels ran; timelines without it still read") {
  const Json kernels = {
      {"decode", "CUDA cores (40 layers)"}, {"decode_slot_index", "divide"}, {"gemm_planning", "tuned"}};
  std::stringstream with, without;
  sim::write_header(with, sim::TimelineHeader{"engine", "H100", 1, 10, 16, Json::object(), kernels});
  sim::write_header(without, sim::TimelineHeader{"engine", "H100", 1, 10, 16, Json::object(), Json()});
  CHECK(with.str().find("\"kernels\"") != std::string::npos);
  CHECK(without.str().find("\"kernels\"") == std::string::npos);
  CHECK(sim::parse_timeline(with, "a.jsonl").header.kernels == kernels);
  CHECK(sim::parse_timeline(without, "b.jsonl").header.kernels.is_null());
}

TEST_CASE("costmodel.time_scale: every iteration and op of the experiment's cost model scaled, a bad scale refused") {
  Json c = small_experiment();
  sim::Experiment plain = sim::load_experiment_json(c, "val.json", "");
  c["costmodel"]["time_scale"] = 1.25;
  sim::Experiment scaled = sim::load_experiment_json(c, "val.json", "");
  CHECK(scaled.time_scale == 1.25);
  CHECK(scaled.cost_info["time_scale"] == 1.25);
  CHECK_FALSE(plain.cost_info.contains("time_scale"));
  const auto a = sim::make_cost_model(plain), b = sim::make_cost_model(scaled);
  CHECK(b->describe().find("x 1.25 (costmodel.time_scale)") != std::string::npos);
  costmodel::Batch batch;
  batch.add({512, 0, true});
  batch.add({1, 900, true});
  costmodel::OpBreakdown pa, pb;
  const Nanos ta = a->iteration_time(batch, pa), tb = b->iteration_time(batch, pb);
  CHECK(static_cast<double>(tb.ns()) == doctest::Approx(1.25 * static_cast<double>(ta.ns())).epsilon(1e-9));
  CHECK(b->iteration_time(batch) == tb);
  for (size_t k = 0; k < pa.seconds.size(); ++k) CHECK(pb.seconds[k] == doctest::Approx(1.25 * pa.seconds[k]));
  costmodel::Batch decode;
  decode.add({1, 300, true});
  decode.add({1, 700, true});
  CHECK(static_cast<double>(b->decode_time_shifted(decode, 50).ns()) ==
        doctest::Approx(1.25 * static_cast<double>(a->decode_time_shifted(decode, 50).ns())).epsilon(1e-9));
  for (double bad : {0.0, -1.0}) {
    c["costmodel"]["time_scale"] = bad;
    const std::string msg = test::input_error_of([&] { sim::load_experiment_json(c, "val.json", ""); });
    CHECK(msg.find("val.json") != std::string::npos);
    CHECK(msg.find("time_scale") != std::string::npos);
  }
}

TEST_CASE("the prediction band: each metric's smallest and largest prediction, and whether the measured lies within") {
  auto run = [](double ttft50, double ttft99, double scale) {
    validate::RequestErrors r;
    r.percentiles["ttft"] = {{{0.100, ttft50}, {0.5, 0.5 * scale}, {2.0, ttft99}}};
    r.percentiles["tbt"] = {{{0.030, 0.030 * scale}, {0.035, 0.035 * scale}, {0.2, 0.2 * scale}}};
    r.percentiles["jct"] = {{{10.0, 9.0 * scale}, {20.0, 20.0 * scale}, {40.5, 41.0 * scale}}};
    r.throughput_rps = {3.0, 3.0 / scale};
    r.sustained_rps = {3.1, 3.1 / scale};
    return r;
  };
  // Central, then the band's ends (any order): TTFT P50 0.09 .. 0.30 s holds 0.1, P99 2.5 .. 4 s misses 2.
  const std::vector<validate::RequestErrors> preds = {run(0.11, 3.0, 1.0), run(0.30, 4.0, 1.02), run(0.09, 2.5, 0.98)};
  validate::SloComparison slo_c, slo_lo, slo_hi;
  slo_c.measured.attainment = slo_lo.measured.attainment = slo_hi.measured.attainment = 0.8;
  slo_c.predicted.attainment = 0.85, slo_lo.predicted.attainment = 0.95, slo_hi.predicted.attainment = 0.7;
  const validate::PredictionBand b = validate::prediction_band(0.02, preds, {slo_c, slo_hi, slo_lo});
  CHECK(b.fraction == 0.02);
  const auto& ttft = b.percentiles.at("ttft");
  CHECK(ttft[0].lo == 0.09);
  CHECK(ttft[0].hi == 0.30);
  CHECK(ttft[0].inside());
  CHECK(ttft[2].lo == 2.5);
  CHECK_FALSE(ttft[2].inside());
  CHECK(b.percentiles.at("tbt")[0].inside());        // 0.0294 .. 0.0306 holds 0.030
  CHECK_FALSE(b.percentiles.at("jct")[0].inside());  // 8.82 .. 9.18 s, measured 10
  CHECK(b.percentiles.at("jct")[2].inside());        // 40.18 .. 41.82 holds 40.5
  CHECK(b.target_metrics_inside() == 4);             // TTFT P50, TBT P50 and P99, JCT P99
  CHECK(b.throughput_rps.lo == doctest::Approx(3.0 / 1.02));
  CHECK(b.throughput_rps.inside());
  REQUIRE(b.slo_attainment);
  CHECK(b.slo_attainment->lo == 0.7);
  CHECK(b.slo_attainment->hi == 0.95);
  const Json j = b.to_json();
  CHECK(j["iteration_time_fraction"] == 0.02);
  CHECK(j["requests"]["ttft"]["p99_ms"]["lo"].get<double>() == doctest::Approx(2500.0));
  CHECK(j["requests"]["ttft"]["p99_ms"]["inside"] == false);
  CHECK(j["target_metrics_inside"] == 4);
  CHECK(j["target_metrics"] == 6);
  CHECK(j["slo_attainment"]["measured"] == 0.8);
  CHECK_THROWS_AS(validate::prediction_band(0.02, {}), std::invalid_argument);
  CHECK_THROWS_AS(validate::prediction_band(0.02, preds, {slo_c}), std::invalid_argument);
  // Without SLO figures there is no attainment band.
  CHECK_FALSE(validate::prediction_band(0.02, preds).slo_attainment);
}

TEST_CASE("iterations by size: decode by sequences, prefill by tokens, in powers of two, the error of summed times") {
  validate::IterationErrors it;
  auto add = [&](const char* kind, int64_t seqs, double measured, double predicted, int64_t tokens = 0) {
    it.kind.emplace_back(kind);
    it.seqs.push_back(seqs);
    it.new_tokens.push_back(tokens ? tokens : seqs);
    it.measured_s.push_back(measured);
    it.predicted_s.push_back(predicted);
  };
  add("decode", 1, 0.010, 0.011);         // +10%
  add("decode", 3, 0.010, 0.010);         // 2-3: 0%
  add("decode", 2, 0.030, 0.027);         // 2-3: -10%; summed 0.037 / 0.040
  add("prefill", 2, 0.100, 0.120, 600);   // not a decode step: prefill 512-1023 tokens, +20%
  add("prefill", 1, 0.200, 0.190, 1023);  // 512-1023 tokens: summed 0.310 / 0.300
  add("prefill", 1, 0.300, 0.300, 1024);  // 1024-2047
  add("decode", 16, 0.020, 0.021);
  add("decode", 31, 0.020, 0.021);
  add("decode", 32, 0.040, 0.040);
  const std::vector<validate::SizeBin> bins = validate::decode_by_sequences(it);
  REQUIRE(bins.size() == 4);
  CHECK(bins[0].lo == 1);
  CHECK(bins[0].hi == 1);
  CHECK(bins[0].summed_error == doctest::Approx(0.1));
  CHECK(bins[1].lo == 2);
  CHECK(bins[1].hi == 3);
  CHECK(bins[1].count == 2);
  CHECK(bins[1].summed_error == doctest::Approx(0.037 / 0.040 - 1));
  CHECK(bins[1].median_abs == doctest::Approx(0.05));  // of |0| and |-10%|
  CHECK(bins[2].lo == 16);
  CHECK(bins[2].hi == 31);
  CHECK(bins[2].count == 2);
  CHECK(bins[2].summed_error == doctest::Approx(0.05));
  CHECK(bins[3].lo == 32);
  CHECK(bins[3].hi == 63);
  const std::vector<validate::SizeBin> prefill = validate::prefill_by_tokens(it);
  REQUIRE(prefill.size() == 2);
  CHECK(prefill[0].lo == 512);
  CHECK(prefill[0].hi == 1023);
  CHECK(prefill[0].count == 2);
  CHECK(prefill[0].summed_error == doctest::Approx(0.310 / 0.300 - 1));
  CHECK(prefill[1].lo == 1024);
  CHECK(prefill[1].summed_error == 0.0);
  validate::Report r;
  r.iterations = it;
  const Json j = r.to_json()["iterations"];
  REQUIRE(j["decode_by_sequences"].size() == 4);
  CHECK(j["decode_by_sequences"][2]["sequences"] == Json::array({16, 31}));
  CHECK(j["decode_by_sequences"][2]["count"] == 2);
  CHECK(j["prefill_by_tokens"][0]["tokens"] == Json::array({512, 1023}));
  it.new_tokens.pop_back();  // vectors of different lengths: refused, not read past the end
  CHECK_THROWS_AS(validate::prefill_by_tokens(it), std::invalid_argument);
}
