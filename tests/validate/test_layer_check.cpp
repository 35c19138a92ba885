// The CPU half of `fdcsim layer-check`: the batch list, the layer window, the prediction of one
// layer and the report, from synthetic measurements.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "sim/experiment.h"
#include "tests/test_paths.h"
#include "tests/validate/saved_layer_check.h"
#include "validate/layer_check.h"

using namespace fdc;
using validate::PartKind;

namespace {

sim::Experiment experiment(const std::string& policy, Json cost = Json{{"kind", "roofline"}}, int sp = 1) {
  const Json j{
      {"name", "lc"},
      {"seed", 7},
      {"model", "llama-2-13b"},
      {"hardware", "p5"},
      {"policy", policy},
      {"costmodel", cost},
      {"cluster", {{"servers", 1}, {"tp", 1}, {"sp", sp}}},
      {"scheduler", {{"chunked_prefill", false}}},
      {"workload",
       {{"num_requests", 1}, {"lengths", {{"source", "sharegpt_embedded"}}}, {"arrival", {{"process", "burst"}}}}}};
  return sim::load_experiment_json(j, "lc.json", "");
}

std::string error_of(const std::string& list) {
  try {
    validate::parse_layer_batches(list);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

double sum_ops(const validate::LayerPrediction& p) {
  double s = 0;
  for (double v : p.op_s) s += v;
  return s;
}

double op(const validate::LayerPrediction& p, costmodel::OpKind k) { return p.op_s[static_cast<size_t>(k)]; }

}  // namespace

TEST_CASE("layer-check batches: the default list and the syntax") {
  const auto d = validate::parse_layer_batches(validate::kDefaultLayerBatches);
  REQUIRE(d.size() == 7);
  CHECK(d[0].label == "prefill:1x512");
  CHECK(d[0].kind() == "prefill");
  CHECK(d[3].kind() == "decode");
  CHECK(d[6].label == "prefill:1x512+decode:32x1024");
  CHECK(d[6].kind() == "mixed");

  // (text, kind, seqs, new tokens, context)
  struct Part {
    const char* text;
    PartKind kind;
    int32_t seqs, tokens, context;
  };
  const Part table[] = {
      {"prefill:1x512", PartKind::kPrefill, 1, 512, 0},
      {"prefill:4x2@0", PartKind::kPrefill, 4, 2, 0},
      {"prefill:2x256@1024", PartKind::kPrefill, 2, 256, 1024},
      {"decode:32x1024", PartKind::kDecode, 32, 1, 1024},
      {" decode:1x1 ", PartKind::kDecode, 1, 1, 1},
  };
  for (const Part& t : table) {
    CAPTURE(t.text);
    const auto b = validate::parse_layer_batches(t.text);
    REQUIRE(b.size() == 1);
    REQUIRE(b[0].parts.size() == 1);
    const auto& p = b[0].parts[0];
    CHECK(p.kind == t.kind);
    CHECK(p.seqs == t.seqs);
    CHECK(p.new_tokens == t.tokens);
    CHECK(p.context == t.context);
  }

  // A mixed batch: decode steps first in the cost model's batch, nobody emits a token.
  const auto m = validate::parse_layer_batches("prefill:2x100@28+decode:3x40")[0];
  CHECK(m.seqs() == 5);
  CHECK(m.new_tokens() == 203);
  CHECK(m.max_kv_tokens() == 128);
  const costmodel::Batch b = m.batch();
  REQUIRE(b.seqs.size() == 5);
  CHECK(b.seqs[0].new_tokens == 1);
  CHECK(b.seqs[0].context_before == 40);
  CHECK(b.seqs[4].new_tokens == 100);
  CHECK(b.seqs[4].context_before == 28);
  CHECK(b.totals.decode_seqs == 3);
  CHECK(b.totals.decode_kv_tokens == 3 * 41);
  CHECK(b.totals.prefill_seqs == 2);
  CHECK(b.totals.prefill_tokens == 200);
  CHECK(b.totals.logits_rows == 0);
}

TEST_CASE("layer-check batches: a malformed item is refused, naming it and what was expected") {
  // (list, text the message must contain)
  const std::pair<const char*, const char*> table[] = {
      {"prefill:0x512",
       "item 'prefill:0x512': part 'prefill:0x512': expected prefill:BxN[@C] with B a whole number >= 1, found '0'"},
      {"prefill:1x1", "with N a whole number >= 2"},
      {"prefill:1x512@", "with C a whole number >= 0 (cached tokens), found ''"},
      {"prefill:1x512@-3", "found '-3'"},
      {"prefill:ax512", "found 'a'"},
      {"decode:32", "item 'decode:32': part 'decode:32': expected decode:BxC (B sequences 'x' tokens), found no 'x'"},
      {"decode:4x0", "decode:BxC with C a whole number >= 1"},
      {"decode:4x1024@8", "'@' (cached tokens of a prefill chunk) is for prefill parts"},
      {"decode:99999999999x1", "found '99999999999'"},
      {"mixed:1x512+32x1024",
       "unknown kind 'mixed' in part 'mixed:1x512'; expected prefill:BxN, prefill:BxN@C or decode:BxC"},
      {"1x512", "part '1x512' has no kind"},
      {"prefill:1x512+", "item 'prefill:1x512+' has an empty part"},
      {"prefill:1x512,,decode:1x2", "item 2 of 'prefill:1x512,,decode:1x2' is empty"},
      {"", "item 1 of '' is empty"},
  };
  for (const auto& [list, message] : table) {
    CAPTURE(list);
    const std::string e = error_of(list);
    CHECK(e.find(message) != std::string::npos);
    CHECK(e.rfind("--batches: ", 0) == 0);
  }
}

TEST_CASE("layer-check block tables: distinct ids, enough for every sequence, seeded") {
  const auto b = validate::parse_layer_batches("prefill:2x33+decode:3x16")[0];
  // Decode first: 3 x ceil(17 / 16) = 6 blocks, then 2 x ceil(33 / 16) = 6.
  CHECK(validate::blocks_needed(b, 16) == 12);
  const auto t = validate::make_block_tables(b, 16, 40, 5);
  REQUIRE(t.size() == 5);
  std::set<int32_t> seen;
  for (size_t i = 0; i < t.size(); ++i) {
    CHECK(t[i].size() == (i < 3 ? 2u : 3u));
    for (int32_t id : t[i]) {
      CHECK(id >= 0);
      CHECK(id < 40);
      seen.insert(id);
    }
  }
  CHECK(seen.size() == 12);
  CHECK(validate::make_block_tables(b, 16, 40, 5) == t);
  CHECK_THROWS_AS(validate::make_block_tables(b, 16, 11, 5), InternalError);
}

TEST_CASE("layer-check window: short and long layer counts") {
  const auto w = validate::parse_layer_window("2,6", 3, 40);
  CHECK(w.first == 3);
  CHECK(w.timed() == 4);
  CHECK(w.timed_begin() == 5);
  CHECK(w.timed_end() == 9);
  auto message = [](const std::string& counts, int first) {
    try {
      validate::parse_layer_window(counts, first, 40);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message("6", 0).find("expected two layer counts 'S,L'") != std::string::npos);
  CHECK(message("2,x", 0).find("expected two layer counts") != std::string::npos);
  CHECK(message("0,4", 0).find("expected 1 <= S < L, found S=0, L=4") != std::string::npos);
  CHECK(message("4,4", 0).find("expected 1 <= S < L") != std::string::npos);
  CHECK(message("2,6", 36).find("needs policy layers 36..41; the model has 40 layers") != std::string::npos);

  const sim::Experiment e = experiment("fdc-table-llama-2-13b");
  const auto s = validate::slice_layers(e.model, e.dims, 5, 3);
  CHECK(s.model.num_layers == 3);
  REQUIRE(s.dims.layers.size() == 3);
  CHECK(s.dims.layers[0] == e.dims.layers[5]);
  CHECK(s.dims.layers[2] == e.dims.layers[7]);
}

TEST_CASE("layer-check refuses what it cannot run, naming the config and the batch") {
  const sim::Experiment none = experiment("none");
  auto message = [](const sim::Experiment& e, const std::string& list) {
    try {
      validate::check_layer_batches(e, validate::parse_layer_batches(list));
    } catch (const InputError& x) {
      return std::string(x.what());
    }
    return std::string();
  };
  CHECK(message(none, validate::kDefaultLayerBatches).empty());
  CHECK(message(none, "decode:1x4096")
            .find("item 'decode:1x4096': sequences of 4097 tokens, longer than "
                  "llama-2-13b's max_model_len 4096") != std::string::npos);
  const sim::Experiment classes = experiment("fdc-table-hybrid-llama-2-13b");
  CHECK(validate::has_token_classes(classes.dims, 16));
  CHECK_FALSE(validate::has_token_classes(none.dims, 16));
  CHECK(message(classes, "prefill:1x512,decode:8x100").empty());
  CHECK(message(classes, "prefill:1x512@512").find("policy fdc-table-hybrid-llama-2-13b has token classes") !=
        std::string::npos);
  const sim::Experiment sp2 = experiment("none", Json{{"kind", "roofline"}}, 2);
  CHECK(message(sp2, "decode:1x10")
            .find("lc.json: layer-check times the layer on one GPU (tp = sp = 1); this "
                  "experiment has tp=1, sp=2") != std::string::npos);
}

TEST_CASE("layer-check prediction: the layer ops of the window, no overhead, final norm or LM head") {
  const auto batches = validate::parse_layer_batches(validate::kDefaultLayerBatches);
  SUBCASE("uniform policy: every layer alike, so one layer is the whole pass's layer ops over num_layers") {
    for (const char* policy : {"none", "fdc-uniform-50"}) {
      const sim::Experiment e = experiment(policy);
      const auto full = sim::make_cost_model(e);
      for (const auto& b : batches) {
        CAPTURE(policy);
        CAPTURE(b.label);
        const auto p = validate::predict_layer(e, validate::LayerWindow{0, 2, 6}, b);
        costmodel::OpBreakdown bd;
        const double whole = full->iteration_time(b.batch(), bd).seconds();
        const double overhead = bd.seconds[static_cast<size_t>(costmodel::OpKind::kIterationOverhead)];
        CHECK(p.total_s == doctest::Approx((whole - overhead) / e.model.num_layers).epsilon(1e-6));
        CHECK(sum_ops(p) == doctest::Approx(p.total_s).epsilon(1e-12));
        CHECK(op(p, costmodel::OpKind::kIterationOverhead) == 0);
        CHECK(op(p, costmodel::OpKind::kLmHead) == 0);
        CHECK((op(p, costmodel::OpKind::kAttnPrefill) > 0) == (b.kind() != "decode"));
        CHECK((op(p, costmodel::OpKind::kAttnDecode) > 0) == (b.kind() != "prefill"));
        CHECK(op(p, costmodel::OpKind::kMlpUp) > 0);
      }
    }
  }
  SUBCASE("per-layer table: the window's layers, additive over windows") {
    for (const Json& cost : {Json{{"kind", "roofline"}}, Json{{"kind", "profile"}}}) {
      const sim::Experiment e = experiment("fdc-table-hybrid-llama-2-13b", cost);
      for (const auto& b : batches) {
        CAPTURE(b.label);
        const double a = validate::predict_layer(e, {0, 0, 2}, b).total_s;    // layers 0..1
        const double c = validate::predict_layer(e, {0, 2, 6}, b).total_s;    // layers 2..5
        const double all = validate::predict_layer(e, {0, 0, 6}, b).total_s;  // layers 0..5
        CHECK(2 * a + 4 * c == doctest::Approx(6 * all).epsilon(1e-9));
        // The same layers reached from another first layer.
        CHECK(validate::predict_layer(e, {1, 1, 5}, b).total_s == doctest::Approx(c).epsilon(1e-12));
      }
      // A fitted profile says which ops it priced outside their measured ranges (roofline: none).
      const auto big = validate::predict_layer(e, {0, 2, 6}, validate::parse_layer_batches("decode:512x16000")[0]);
      CHECK(big.outside_measured.empty() == (cost["kind"] == "roofline"));
      // Different layers of the table cost differently.
      const auto d = validate::parse_layer_batches("decode:128x2048")[0];
      CHECK(validate::predict_layer(e, {0, 0, 2}, d).total_s != validate::predict_layer(e, {30, 0, 2}, d).total_s);
    }
  }
}

TEST_CASE("layer-check comparison: per-layer differences of the timed pairs, median and P90") {
  const auto b = validate::parse_layer_batches("decode:32x1024")[0];
  const validate::LayerWindow w{0, 2, 6};
  validate::LayerMeasurement m;
  // Per pair (long - short) / 4: 1.0, 1.1, 0.9, 1.2, 1.0 ms per layer.
  m.short_ms = {3.0, 3.1, 2.9, 3.0, 3.0};
  m.long_ms = {7.0, 7.5, 6.5, 7.8, 7.0};
  m.short_host_ms = {0.2, 0.2, 0.2, 0.2, 0.2};
  m.long_host_ms = {0.3, 0.3, 0.3, 0.3, 0.3};
  validate::LayerPrediction p;
  p.op_s[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] = 0.6e-3;
  p.op_s[static_cast<size_t>(costmodel::OpKind::kMlpUp)] = 0.3e-3;
  p.op_s[static_cast<size_t>(costmodel::OpKind::kNorm)] = 0.03e-3;  // 3%: below the listing threshold
  p.op_s[static_cast<size_t>(costmodel::OpKind::kMlpDown)] = 0.12e-3;
  p.total_s = 1.05e-3;
  const auto r = validate::compare_layer(b, w, m, p);
  CHECK(r.kind == "decode");
  CHECK(r.seqs == 32);
  CHECK(r.new_tokens == 32);
  CHECK(r.max_kv_tokens == 1025);
  CHECK(r.repeats == 5);
  CHECK(r.measured_ms == doctest::Approx(1.0));
  CHECK(r.measured_p90_ms == doctest::Approx(1.16));  // between 1.1 and 1.2 (numpy's linear)
  CHECK(r.measured_min_ms == doctest::Approx(0.9));
  CHECK(r.measured_max_ms == doctest::Approx(1.2));
  CHECK(r.short_ms == doctest::Approx(3.0));
  CHECK(r.long_ms == doctest::Approx(7.0));
  CHECK(r.long_host_ms == doctest::Approx(0.3));
  CHECK(r.predicted_ms() == doctest::Approx(1.05));
  CHECK(r.error() == doctest::Approx(0.05));

  const auto ops = validate::largest_ops(p);
  REQUIRE(ops.size() == 3);
  CHECK(ops[0].first == "attn_decode");
  CHECK(ops[0].second == doctest::Approx(0.6 / 1.05));
  CHECK(ops[1].first == std::string(costmodel::op_name(costmodel::OpKind::kMlpUp)));
  CHECK(ops[2].first == std::string(costmodel::op_name(costmodel::OpKind::kMlpDown)));
  CHECK(validate::largest_ops(p, 1).size() == 1);
  CHECK(validate::largest_ops(validate::LayerPrediction{}).empty());

  validate::LayerMeasurement bad = m;
  bad.long_ms.pop_back();
  CHECK_THROWS_AS(validate::compare_layer(b, w, bad, p), InternalError);
  CHECK_THROWS_AS(validate::compare_layer(b, w, validate::LayerMeasurement{}, p), InternalError);
}

TEST_CASE("layer-check report: table and JSON") {
  const auto batches = validate::parse_layer_batches("prefill:1x512,decode:32x1024");
  const validate::LayerWindow w{0, 2, 6};
  validate::LayerPrediction p;
  p.op_s[static_cast<size_t>(costmodel::OpKind::kMlpUp)] = 1e-3;
  p.total_s = 1e-3;
  validate::LayerMeasurement within{{2.0, 2.0}, {6.2, 6.2}, {}, {}, {},
                                    {},         {},         {}, {}, {}};  // 1.05 ms per layer: -4.8%
  validate::LayerMeasurement outside{{2.0, 2.0}, {5.2, 5.2}, {}, {}, {}, {}, {}, {}, {}, {}};  // 0.8 ms per layer: +25%
  const std::vector<validate::LayerCheckRow> rows{validate::compare_layer(batches[0], w, within, p),
                                                  validate::compare_layer(batches[1], w, outside, p)};
  validate::LayerCheckContext c;
  c.device = "NVIDIA H100 80GB HBM3";
  c.experiment = "lc (lc.json)";
  c.model = "llama-2-13b";
  c.policy = "none";
  c.cost_model = "roofline";
  c.window = w;
  c.warmup = 3;
  std::ostringstream os;
  validate::print_layer_table(os, c, rows);
  const std::string t = os.str();
  CAPTURE(t);
  CHECK(t.find("measured on NVIDIA H100 80GB HBM3") != std::string::npos);
  CHECK(t.find("per layer = (t(6 layers) - t(2 layers)) / 4: policy layers 2..5") != std::string::npos);
  CHECK(t.find("-4.76% ") != std::string::npos);
  CHECK(t.find("+25.00%*") != std::string::npos);
  CHECK(t.find("mlp_up 100%") != std::string::npos);
  CHECK(t.find("within 5%: 1 of 2 batches") != std::string::npos);
  CHECK(t.find("outside the profile's measured ranges") == std::string::npos);
  CHECK(t.find("planning of the layers inside") == std::string::npos);  // timed from the plans' upload

  const Json j = validate::layer_check_json(c, rows, Json{{"git_commit", "abc"}});
  CHECK(j["timed_from_plans_upload"] == true);
  CHECK(j["format"] == "fdcsim-layer-check");
  CHECK(j["window"]["timed_layers"] == Json::array({2, 6}));
  CHECK(j["target_abs_error"] == 0.05);
  CHECK(j["within_target"] == 1);
  REQUIRE(j["batches"].size() == 2);
  const Json& r0 = j["batches"][0];
  CHECK(r0["batch"] == "prefill:1x512");
  CHECK(r0["kind"] == "prefill");
  CHECK(r0["measured_ms_per_layer"]["median"].get<double>() == doctest::Approx(1.05));
  CHECK(r0["predicted_ms_per_layer"].get<double>() == doctest::Approx(1.0));
  CHECK(r0["predicted_op_ms_per_layer"]["mlp_up"].get<double>() == doctest::Approx(1.0));
  CHECK(r0["predicted_op_ms_per_layer"].size() == 1);
  CHECK(r0["within_target"] == true);
  CHECK(j["batches"][1]["within_target"] == false);
  CHECK(r0["predicted_outside_measured"].empty());
  CHECK(j["provenance"]["git_commit"] == "abc");
}

TEST_CASE("layer-check per op: every op differenced as the total, median over the repeats") {
  const auto b = validate::parse_layer_batches("decode:32x1024")[0];
  const validate::LayerWindow w{0, 2, 6};
  using costmodel::OpKind;
  auto ops = [](double norm, double decode, double mlp_up) {
    std::array<double, costmodel::kNumOpKinds> a{};
    a[static_cast<size_t>(OpKind::kNorm)] = norm;
    a[static_cast<size_t>(OpKind::kAttnDecode)] = decode;
    a[static_cast<size_t>(OpKind::kMlpUp)] = mlp_up;
    return a;
  };
  validate::LayerMeasurement m;
  m.short_ms = {3.0, 3.0, 3.0};
  m.long_ms = {7.0, 7.4, 6.8};
  m.short_host_ms = m.long_host_ms = {0.1, 0.1, 0.1};
  m.short_op_ms = {ops(0.2, 1.0, 0.8), ops(0.2, 1.0, 0.8), ops(0.2, 1.0, 0.8)};
  // Per layer (long - short) / 4: norm 0.1, 0.11, 0.1; attn_decode 0.5, 0.4, 0.6; mlp_up 0.3 each.
  m.long_op_ms = {ops(0.6, 3.0, 2.0), ops(0.64, 2.6, 2.0), ops(0.6, 3.4, 2.0)};
  m.short_outside_ms = {1.0, 1.0, 1.0};
  m.long_outside_ms = {1.0, 1.4, 1.0};  // 0, 0.1, 0 per layer
  validate::LayerPrediction p;
  p.op_s[static_cast<size_t>(OpKind::kAttnDecode)] = 0.55e-3;
  p.op_s[static_cast<size_t>(OpKind::kMlpUp)] = 0.36e-3;
  p.op_s[static_cast<size_t>(OpKind::kResidual)] = 0.02e-3;  // predicted, not measured
  p.total_s = 0.93e-3;

  const auto r = validate::compare_layer(b, w, m, p);
  REQUIRE(r.has_measured_ops);
  auto meas = [&](OpKind k) { return r.measured_op_ms[static_cast<size_t>(k)]; };
  CHECK(meas(OpKind::kNorm) == doctest::Approx(0.1));
  CHECK(meas(OpKind::kAttnDecode) == doctest::Approx(0.5));
  CHECK(meas(OpKind::kMlpUp) == doctest::Approx(0.3));
  CHECK(meas(OpKind::kAttnPrefill) == 0);
  CHECK(meas(OpKind::kResidual) == 0);
  CHECK(r.measured_outside_ms == doctest::Approx(0.0));
  CHECK(r.measured_ms == doctest::Approx(1.0));
  CHECK(r.samples.long_op_ms.size() == 3);

  // Without per-op data nothing is measured per op; per-op series of another length are refused.
  validate::LayerMeasurement total_only = m;
  total_only.short_op_ms.clear();
  total_only.long_op_ms.clear();
  total_only.short_outside_ms.clear();
  total_only.long_outside_ms.clear();
  CHECK_FALSE(validate::compare_layer(b, w, total_only, p).has_measured_ops);
  validate::LayerMeasurement bad = m;
  bad.long_op_ms.pop_back();
  CHECK_THROWS_AS(validate::compare_layer(b, w, bad, p), InternalError);
  bad = m;
  bad.short_outside_ms.clear();
  CHECK_THROWS_AS(validate::compare_layer(b, w, bad, p), InternalError);

  // The table: a block per batch measured per op, every op measured or predicted.
  validate::LayerCheckContext c;
  c.device = "NVIDIA H100 80GB HBM3";
  c.window = w;
  std::ostringstream os;
  validate::print_layer_table(os, c, {r, validate::compare_layer(b, w, total_only, p)});
  const std::string t = os.str();
  CAPTURE(t);
  CHECK(t.find("decode:32x1024, per op (ms per layer):") != std::string::npos);
  CHECK(t.find("attn_decode         0.5000    0.5500   +10.0%") != std::string::npos);
  CHECK(t.find("mlp_up              0.3000    0.3600   +20.0%") != std::string::npos);
  CHECK(t.find("norm                0.1000    0.0000  -100.0%") != std::string::npos);
  CHECK(t.find("residual            0.0000    0.0200        -") != std::string::npos);
  CHECK(t.find("attn_prefill") == std::string::npos);
  CHECK(t.find("(outside layers)") == std::string::npos);  // 0 per layer
  size_t blocks = 0;
  for (size_t at = t.find("per op (ms per layer)"); at != std::string::npos; at = t.find("per op (ms", at + 1))
    ++blocks;
  CHECK(blocks == 1);  // the second row has no per-op data

  const Json j = validate::layer_check_json(c, {r, validate::compare_layer(b, w, total_only, p)}, Json::object());
  const Json& ops_j = j["batches"][0]["measured_ops_ms"];
  CHECK(ops_j.size() == 3);
  CHECK(ops_j["norm"].get<double>() == doctest::Approx(0.1));
  CHECK(ops_j["attn_decode"].get<double>() == doctest::Approx(0.5));
  CHECK(ops_j["mlp_up"].get<double>() == doctest::Approx(0.3));
  CHECK(j["batches"][0]["measured_outside_layers_ms"].get<double>() == doctest::Approx(0.0));
  CHECK_FALSE(j["batches"][1].contains("measured_ops_ms"));
  CHECK_FALSE(j["batches"][1].contains("measured_outside_layers_ms"));
}

TEST_CASE("layer-check per op: totals from forwards without the events, the evented ones kept apart") {
  const auto b = validate::parse_layer_batches("decode:32x1024")[0];
  const validate::LayerWindow w{0, 2, 6};
  using costmodel::OpKind;
  auto ops = [](double decode) {
    std::array<double, costmodel::kNumOpKinds> a{};
    a[static_cast<size_t>(OpKind::kAttnDecode)] = decode;
    return a;
  };
  validate::LayerMeasurement m;
  m.short_ms = {3.0, 3.0, 3.0};
  m.long_ms = {7.0, 7.4, 6.8};  // plain: 1.0 ms per layer (median)
  m.short_host_ms = m.long_host_ms = {0.1, 0.1, 0.1};
  m.short_op_ms = {ops(3.1), ops(3.1), ops(3.1)};
  m.long_op_ms = {ops(7.5), ops(7.5), ops(7.3)};
  m.short_outside_ms = m.long_outside_ms = {0, 0, 0};
  m.short_evented_ms = {3.1, 3.1, 3.1};
  m.long_evented_ms = {7.5, 7.5, 7.3};  // with the events: 1.1 ms per layer (median)
  validate::LayerPrediction p;
  p.op_s[static_cast<size_t>(OpKind::kAttnDecode)] = 1.02e-3;
  p.total_s = 1.02e-3;
  const auto r = validate::compare_layer(b, w, m, p);
  CHECK(r.measured_ms == doctest::Approx(1.0));
  CHECK(r.measured_evented_ms == doctest::Approx(1.1));
  CHECK(r.error() == doctest::Approx(0.02));  // against the total without the events
  CHECK_FALSE(r.totals_have_op_events());
  // The evented series must be one per repeat.
  validate::LayerMeasurement bad = m;
  bad.long_evented_ms.pop_back();
  CHECK_THROWS_AS(validate::compare_layer(b, w, bad, p), InternalError);
  // A per-op measurement without them (reports before 2026-12-05, afternoon) timed its totals with
  // the events: said so in the table and the JSON.
  validate::LayerMeasurement old = m;
  old.short_evented_ms.clear();
  old.long_evented_ms.clear();
  const auto o = validate::compare_layer(b, w, old, p);
  CHECK(o.totals_have_op_events());

  validate::LayerCheckContext c;
  c.device = "NVIDIA H200";
  c.window = w;
  std::ostringstream os;
  validate::print_layer_table(os, c, {r});
  CHECK(os.str().find("the layer took 1.1000 ms with them, 1.0000 ms without") != std::string::npos);
  CHECK(os.str().find("include the per-op events") == std::string::npos);
  std::ostringstream os_old;
  validate::print_layer_table(os_old, c, {o});
  CHECK(os_old.str().find("include the per-op events") != std::string::npos);

  const Json j = validate::layer_check_json(c, {r, o}, Json::object());
  CHECK(j["batches"][0]["measured_evented_ms_per_layer"].get<double>() == doctest::Approx(1.1));
  CHECK(j["batches"][0]["totals_include_op_events"] == false);
  CHECK(j["batches"][0]["forward_ms_evented_per_repeat"]["long"].size() == 3);
  CHECK(j["batches"][1]["totals_include_op_events"] == true);
  CHECK_FALSE(j["batches"][1].contains("measured_evented_ms_per_layer"));
}

using test::SavedReport;
using test::synthetic_report;

namespace {

std::string read_error(const std::string& path) {
  try {
    validate::read_layer_check_report(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("layer-check saved report: measurements read back, re-predicted as a direct prediction") {
  const sim::Experiment e = experiment("fdc-uniform-50", Json{{"kind", "profile"}});
  const auto batches = validate::parse_layer_batches("prefill:1x512,decode:32x1024,prefill:1x512+decode:8x100");
  const validate::LayerWindow w{1, 2, 5};
  const Json written = synthetic_report(e, batches, w);
  const SavedReport file(written);

  const validate::SavedLayerCheck s = validate::read_layer_check_report(file.path);
  CHECK(s.context.device == "NVIDIA H100 80GB HBM3");
  CHECK(s.context.window.first == 1);
  CHECK(s.context.window.short_layers == 2);
  CHECK(s.context.window.long_layers == 5);
  CHECK(s.context.warmup == 3);
  CHECK(s.context.measured_report == file.path);
  REQUIRE(s.batches.size() == 3);
  REQUIRE(s.rows.size() == 3);
  for (size_t i = 0; i < batches.size(); ++i) {
    CAPTURE(i);
    CHECK(s.batches[i].label == batches[i].label);
    CHECK(s.batches[i].batch().seqs.size() == batches[i].batch().seqs.size());
    const Json& r = written["batches"][i];
    CHECK(s.rows[i].kind == r["kind"]);
    CHECK(s.rows[i].seqs == r["seqs"]);
    CHECK(s.rows[i].repeats == 3);
    CHECK(s.rows[i].measured_ms == r["measured_ms_per_layer"]["median"].get<double>());
    CHECK(s.rows[i].measured_p90_ms == r["measured_ms_per_layer"]["p90"].get<double>());
    CHECK(s.rows[i].long_host_ms == r["host_planning_ms_median"]["long"].get<double>());
    CHECK(s.rows[i].samples.long_ms == r["forward_ms_per_repeat"]["long"].get<std::vector<double>>());
    CHECK(s.rows[i].predicted.total_s == 0);
  }

  // The report's config, another cost model on top: the same as predicting those batches directly.
  for (const char* set : {"costmodel.kind=profile", "costmodel.kind=roofline", "costmodel.gemm_efficiency=0.5"}) {
    CAPTURE(set);
    Json config = s.config;
    apply_override(config, set);
    const sim::Experiment again = sim::load_experiment_json(config, "report", "");
    Json direct_config = e.resolved;
    apply_override(direct_config, set);
    const sim::Experiment direct = sim::load_experiment_json(direct_config, "direct", "");
    const auto rows = validate::repredict_layer_check(again, s);
    REQUIRE(rows.size() == batches.size());
    for (size_t i = 0; i < batches.size(); ++i) {
      CAPTURE(batches[i].label);
      const auto p = validate::predict_layer(direct, w, batches[i]);
      CHECK(rows[i].predicted.total_s == p.total_s);
      CHECK(rows[i].predicted.op_s == p.op_s);
      CHECK(rows[i].measured_ms == s.rows[i].measured_ms);
    }
    if (std::string(set) == "costmodel.kind=profile")  // unchanged: the prediction the report holds
      for (size_t i = 0; i < batches.size(); ++i)
        CHECK(rows[i].predicted_ms() == written["batches"][i]["predicted_ms_per_layer"].get<double>());
  }

  // A report written again keeps what was read, and reads back the same.
  validate::LayerCheckContext c = s.context;
  const SavedReport again(validate::layer_check_json(c, validate::repredict_layer_check(e, s), s.provenance));
  const auto s2 = validate::read_layer_check_report(again.path);
  CHECK(s2.rows[2].measured_max_ms == s.rows[2].measured_max_ms);
  CHECK(s2.rows[2].samples.short_host_ms == s.rows[2].samples.short_host_ms);
  CHECK(s2.config == s.config);
}

TEST_CASE("layer-check saved report: per-op measurements read back; reports without them still read") {
  const sim::Experiment e = experiment("none");
  const auto batches = validate::parse_layer_batches("decode:32x1024,prefill:1x512");
  const validate::LayerWindow w{0, 2, 6};
  const Json with = synthetic_report(e, batches, w, true);
  const Json without = synthetic_report(e, batches, w);
  CHECK_FALSE(without["batches"][0].contains("measured_ops_ms"));
  REQUIRE(with["batches"][0].contains("measured_ops_ms"));

  const SavedReport file(with);
  const auto s = validate::read_layer_check_report(file.path);
  REQUIRE(s.rows.size() == 2);
  for (size_t i = 0; i < s.rows.size(); ++i) {
    CAPTURE(i);
    const validate::LayerCheckRow& r = s.rows[i];
    CHECK(r.has_measured_ops);
    // Each op's share of every forward, differenced: per layer share * (long - short) / 4.
    auto meas = [&](costmodel::OpKind k) { return r.measured_op_ms[static_cast<size_t>(k)]; };
    CHECK(meas(costmodel::OpKind::kNorm) == doctest::Approx(0.1 * 4.2 / 4));
    CHECK(meas(costmodel::OpKind::kAttnDecode) == doctest::Approx(0.3 * 4.2 / 4));
    CHECK(meas(costmodel::OpKind::kMlpUp) == doctest::Approx(0.5 * 4.2 / 4));
    CHECK(meas(costmodel::OpKind::kAttnPrefill) == 0);
    CHECK(r.measured_outside_ms == doctest::Approx(0.1 * 4.2 / 4));
    CHECK(meas(costmodel::OpKind::kNorm) == with["batches"][i]["measured_ops_ms"]["norm"].get<double>());
  }
  // Written again (re-predicted), the same per-op measurements.
  const SavedReport again(validate::layer_check_json(s.context, validate::repredict_layer_check(e, s), s.provenance));
  const Json k = load_json_file(again.path);
  for (size_t i = 0; i < batches.size(); ++i) {
    CHECK(k["batches"][i]["measured_ops_ms"] == with["batches"][i]["measured_ops_ms"]);
    CHECK(k["batches"][i]["measured_outside_layers_ms"] == with["batches"][i]["measured_outside_layers_ms"]);
  }
  CHECK(validate::read_layer_check_report(again.path).rows[1].measured_op_ms == s.rows[1].measured_op_ms);

  CHECK(s.rows[0].totals_have_op_events());  // one pair per repeat, with the events
  // Measured with the totals apart from the events: they read back, and so do the evented series.
  const SavedReport apart(synthetic_report(e, batches, w, true, costmodel::OpKind::kAttnDecode, true));
  const auto a = validate::read_layer_check_report(apart.path);
  REQUIRE(a.rows.size() == 2);
  CHECK_FALSE(a.rows[0].totals_have_op_events());
  CHECK(a.rows[0].measured_evented_ms == doctest::Approx(a.rows[0].measured_ms * 1.05).epsilon(0.02));
  CHECK(a.rows[0].samples.long_evented_ms.size() == 3);
  const Json a2 = validate::layer_check_json(a.context, validate::repredict_layer_check(e, a), a.provenance);
  CHECK(a2["batches"][0]["measured_evented_ms_per_layer"] ==
        load_json_file(apart.path)["batches"][0]["measured_evented_ms_per_layer"]);

  // A report without per-op data (as every report before --per-op): read, nothing per op.
  const SavedReport old(without);
  const auto o = validate::read_layer_check_report(old.path);
  for (const auto& r : o.rows) {
    CHECK_FALSE(r.has_measured_ops);
    CHECK(r.measured_op_ms == std::array<double, costmodel::kNumOpKinds>{});
  }
  const Json o2 = validate::layer_check_json(o.context, validate::repredict_layer_check(e, o), o.provenance);
  CHECK_FALSE(o2["batches"][0].contains("measured_ops_ms"));

  // Timed from the plans' upload (every run now) or, reports written before that field, not: read
  // back as such, kept when written again, and said under the table.
  CHECK(s.context.timed_from_plans_upload);
  CHECK(k["timed_from_plans_upload"] == true);
  Json before = with;
  before.erase("timed_from_plans_upload");
  const SavedReport before_file(before);
  const auto b = validate::read_layer_check_report(before_file.path);
  CHECK_FALSE(b.context.timed_from_plans_upload);
  CHECK(validate::layer_check_json(b.context, validate::repredict_layer_check(e, b),
                                   b.provenance)["timed_from_plans_upload"] == false);
  std::ostringstream table;
  validate::print_layer_table(table, b.context, validate::repredict_layer_check(e, b));
  CHECK(table.str().find("forwards timed with the host's planning of the layers inside") != std::string::npos);

  // An op name the cost model does not know is refused, naming the key.
  Json bad = with;
  bad["batches"][1]["measured_ops_ms"]["gemm"] = 0.1;
  const SavedReport bad_file(bad);
  CHECK(read_error(bad_file.path).find(": /batches/1/measured_ops_ms/gemm: expected an op name") != std::string::npos);
}

TEST_CASE("layer-check saved report: a profile read from a file is stored by its path, and old reports load") {
  const std::string path = test::source_path("configs/profiles/h100.json");
  const sim::Experiment file = experiment("none", Json{{"kind", "profile"}, {"profile", path}});
  CHECK(file.resolved["costmodel"]["profile"] == path);  // the file, not its stem
  const sim::Experiment embedded = experiment("none", Json{{"kind", "profile"}, {"profile", "h100"}});
  CHECK(embedded.resolved["costmodel"]["profile"] == "h100");

  // A report of an earlier version stored a resolved config naming the file by its stem: read, it
  // loads the file.
  const auto batches = validate::parse_layer_batches("decode:8x100");
  Json j = synthetic_report(file, batches, {0, 2, 6});
  j["provenance"]["config"] = file.resolved;
  j["provenance"]["config"]["costmodel"]["profile"] = "h100";
  const SavedReport saved(j);
  CHECK(validate::read_layer_check_report(saved.path).config["costmodel"]["profile"] == path);
}

TEST_CASE("layer-check saved report: a malformed one is refused, naming the file and the key") {
  const sim::Experiment e = experiment("none");
  const Json good = synthetic_report(e, validate::parse_layer_batches("decode:8x100,prefill:1x64"), {0, 2, 6});
  auto error_without = [&](const std::function<void(Json&)>& edit) {
    Json j = good;
    edit(j);
    const SavedReport f(j);
    const std::string m = read_error(f.path);
    CHECK(m.rfind(f.path + ": ", 0) == 0);  // the file first
    return m;
  };
  CHECK(read_error((std::filesystem::temp_directory_path() / "fdcsim_no_such_report.json").string())
            .find("cannot open file for reading") != std::string::npos);
  CHECK(error_without([](Json& j) {
          j.erase("window");
        }).find(": /window: expected an object, found nothing (the key is missing)") != std::string::npos);
  CHECK(error_without([](Json& j) { j["window"].erase("long_layers"); }).find(": /window/long_layers: expected ") !=
        std::string::npos);
  CHECK(error_without([](Json& j) {
          j["provenance"].erase("config");
        }).find(": /provenance/config: expected an object, found nothing (the key is missing)") != std::string::npos);
  CHECK(error_without([](Json& j) { j.erase("provenance"); }).find(": /provenance: expected an object") !=
        std::string::npos);
  CHECK(error_without([](Json& j) {
          j["batches"][1]["measured_ms_per_layer"].erase("p90");
        }).find(": /batches/1/measured_ms_per_layer/p90: expected ") != std::string::npos);
  CHECK(error_without([](Json& j) {
          j["batches"][0]["batch"] = "decode:8";
        }).find(": /batches/0/batch: --batches: item 'decode:8'") != std::string::npos);
  CHECK(error_without([](Json& j) {
          j["batches"][0]["forward_ms_per_repeat"]["long"].erase(0);
        }).find(": /batches/0/forward_ms_per_repeat/long: expected 3 forward times") != std::string::npos);
  CHECK(error_without([](Json& j) {
          j["format"] = "fdcsim-timeline";
        }).find(": /format: expected \"fdcsim-layer-check\"") != std::string::npos);
  CHECK(error_without([](Json& j) {
          j["batches"] = Json::array();
        }).find(": /batches: expected at least one measured batch") != std::string::npos);

  // The window is checked against the model of the config the prediction uses.
  Json j = good;
  j["window"]["long_layers"] = 41;
  const SavedReport f(j);
  const auto s = validate::read_layer_check_report(f.path);
  try {
    validate::repredict_layer_check(e, s);
    FAIL("a window beyond the model");
  } catch (const InputError& x) {
    CHECK(std::string(x.what()).find(f.path + ": /window needs policy layers 0..40; the model has 40 layers") !=
          std::string::npos);
  }
}
