// GEMMs calibrated on layers measured per op (validate/calibrate_in_layer.h): the knots, the
// calibration from saved layer-check reports, the cost model applying it, and the profile file.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <tuple>

#include "core/error.h"
#include "costmodel/fit/derive.h"
#include "costmodel/fit/profile_io.h"
#include "sim/experiment.h"
#include "tests/input_error.h"
#include "tests/validate/saved_layer_check.h"
#include "validate/calibrate_in_layer.h"
#include "validate/layer_check.h"

using namespace fdc;
using test::input_error_of;

namespace {

sim::Experiment experiment(const std::string& policy, const std::string& profile = "h100") {
  const Json j{
      {"name", "il"},
      {"seed", 7},
      {"model", "llama-2-13b"},
      {"hardware", "p5"},
      {"policy", policy},
      {"costmodel", {{"kind", "profile"}, {"profile", profile}}},
      {"cluster", {{"servers", 1}, {"tp", 1}, {"sp", 1}}},
      {"scheduler", {{"chunked_prefill", false}}},
      {"workload",
       {{"num_requests", 1}, {"lengths", {{"source", "sharegpt_embedded"}}}, {"arrival", {{"process", "burst"}}}}}};
  return sim::load_experiment_json(j, "il.json", "");
}

// The "none" experiment priced with `profile` calibrated by `c` for `target`.
sim::Experiment calibrated_by(const fit::FittedProfile& profile, validate::InLayerTarget target,
                              const fit::InLayerCalibration& c) {
  sim::Experiment e = experiment("none");
  auto p = std::make_shared<fit::FittedProfile>(profile);
  validate::in_layer_of(*p, target) = c;
  e.profile = p;
  return e;
}

// check(i, before, after) for each batch, priced by `before` and by `after`.
void each_batch(
    const sim::Experiment& before, const sim::Experiment& after, const std::vector<validate::LayerBatch>& batches,
    const validate::LayerWindow& w,
    const std::function<void(size_t, const validate::LayerPrediction&, const validate::LayerPrediction&)>& check) {
  for (size_t i = 0; i < batches.size(); ++i) {
    CAPTURE(i);
    check(i, validate::predict_layer(before, w, batches[i]), validate::predict_layer(after, w, batches[i]));
  }
}

// A prompt alone, decode steps alone, and both in one batch.
constexpr const char* kMixedBatches = "prefill:1x512,decode:32x1024,prefill:1x512+decode:32x1024";

// The committed h100 profile with its calibration of `target` removed, the "none" experiment priced
// by it, and two synthetic per-op reports of `batch_list` (policies none and FDC 50%) whose
// attention time is measured as `attention`'s.
struct CalibrationCase {
  sim::Experiment none = experiment("none");
  fit::FittedProfile profile;
  costmodel::ProfileRef ref;
  std::vector<validate::LayerBatch> batches;
  validate::LayerWindow w{0, 2, 6};
  std::unique_ptr<test::SavedReport> a, b;
  CalibrationCase(validate::InLayerTarget target, const std::string& batch_list, costmodel::OpKind attention) {
    std::tie(profile, ref) = sim::load_profile("h100", "", "test");
    validate::in_layer_of(profile, target).reset();
    none.profile = std::make_shared<fit::FittedProfile>(profile);
    batches = validate::parse_layer_batches(batch_list);
    a = std::make_unique<test::SavedReport>(test::synthetic_report(none, batches, w, true, attention));
    b = std::make_unique<test::SavedReport>(
        test::synthetic_report(experiment("fdc-uniform-50"), batches, w, true, attention));
  }
};

// `calibrated` (the profile `uncalibrated` with `c` as its calibration of `target`, stored under
// `key`) is written under that key only when calibrated, reads back with the same knots, and a
// derived profile carries it over. Returns the written JSON.
Json check_stored(const fit::FittedProfile& uncalibrated, const fit::FittedProfile& calibrated,
                  validate::InLayerTarget target, const char* key, const fit::InLayerCalibration& c) {
  CHECK_FALSE(fit::profile_to_json(uncalibrated, "test").contains(key));
  const Json j = fit::profile_to_json(calibrated, "test");
  fit::FittedProfile back = fit::profile_from_json(j, "p.json");
  const auto& read = validate::in_layer_of(back, target);
  REQUIRE(read);
  REQUIRE(read->knots.size() == c.knots.size());
  for (size_t i = 0; i < c.knots.size(); ++i)
    CHECK(read->knots[i].efficiency == doctest::Approx(c.knots[i].efficiency));
  const fit::SpecSheet from{"p5", calibrated.gpu, 989, 3350, 900}, to{"p4de", "A100-SXM4-80GB", 312, 2039, 600};
  fit::FittedProfile derived = fit::derive_profile(calibrated, "h100", from, to);
  const auto& carried = validate::in_layer_of(derived, target);
  REQUIRE(carried);
  CHECK(carried->note.find("carried over unchanged from h100") == 0);
  return j;
}

double gemms(const validate::LayerPrediction& p) {
  using costmodel::OpKind;
  double s = 0;
  for (OpKind k : {OpKind::kQkvProj, OpKind::kOutProj, OpKind::kMlpUp, OpKind::kMlpDown})
    s += p.op_s[static_cast<size_t>(k)];
  return s;
}

}  // namespace

TEST_CASE("in-layer knots: one per group of row counts within 1.25x, predicted over measured") {
  const std::vector<validate::InLayerPoint> pts = {
      {0, 2048, 9.0, 10.0}, {0, 32, 1.0, 1.0}, {1, 512, 3.0, 2.0}, {1, 544, 1.0, 2.0}, {1, 2048, 9.0, 10.0}};
  const auto k = validate::in_layer_knots(pts);
  REQUIRE(k.size() == 3);
  CHECK(k[0].log2_axis == doctest::Approx(5.0));
  CHECK(k[0].efficiency == doctest::Approx(1.0));
  // 512 and 544 share a knot: (3 + 1) / (2 + 2), at the prediction-weighted mean of log2 rows.
  CHECK(k[1].efficiency == doctest::Approx(1.0));
  CHECK(k[1].log2_axis == doctest::Approx((3 * 9.0 + std::log2(544.0)) / 4));
  CHECK(k[2].log2_axis == doctest::Approx(11.0));
  CHECK(k[2].efficiency == doctest::Approx(0.9));

  fit::InLayerCalibration g;
  g.knots = k;
  CHECK(g.efficiency(2048) == doctest::Approx(0.9));
  CHECK(g.efficiency(8192) == doctest::Approx(0.9));  // constant beyond the ends
  CHECK(g.efficiency(1) == doctest::Approx(1.0));
  const double mid = std::exp2((k[1].log2_axis + 11.0) / 2);
  CHECK(g.efficiency(mid) == doctest::Approx(0.95));  // linear in log2 rows between knots

  CHECK(input_error_of([] { validate::in_layer_knots({}); }).find("no measured batches") != std::string::npos);
}

TEST_CASE("in-layer calibration from layer-check --per-op reports, applied by the cost model") {
  sim::Experiment none = experiment("none");
  const sim::Experiment fdc = experiment("fdc-uniform-50");
  auto [profile, ref] = sim::load_profile("h100", "", "test");
  profile.gemm_in_layer.reset();  // the laws alone (the committed profile is calibrated)
  none.profile = std::make_shared<fit::FittedProfile>(profile);
  const auto batches = validate::parse_layer_batches("prefill:1x512,prefill:1x2048,decode:32x1024");
  const validate::LayerWindow w{0, 2, 6};
  const test::SavedReport a(test::synthetic_report(none, batches, w, true));
  const test::SavedReport b(test::synthetic_report(fdc, batches, w, true));

  const auto points = validate::in_layer_points(profile, ref, {a.path, b.path});
  REQUIRE(points.size() == 6);
  // Each point: the four GEMMs the laws predict, against the measured GEMMs (the synthetic split
  // measures mlp_up only, half of each forward).
  const auto sa = validate::read_layer_check_report(a.path);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(points[i].report == 0);
    CHECK(points[i].rows == static_cast<double>(batches[i].new_tokens()));
    CHECK(points[i].predicted_ms == doctest::Approx(gemms(validate::predict_layer(none, w, batches[i])) * 1e3));
    CHECK(points[i].measured_ms ==
          doctest::Approx(sa.rows[i].measured_op_ms[static_cast<size_t>(costmodel::OpKind::kMlpUp)]));
  }

  const fit::InLayerCalibration g = validate::calibrate_in_layer(profile, ref, {a.path, b.path});
  REQUIRE(g.knots.size() == 3);  // 32, 512 and 2048 rows
  CHECK(g.points == 6);
  CHECK(g.rows.min == 32);
  CHECK(g.rows.max == 2048);
  const double eff2048 =
      (points[1].predicted_ms + points[4].predicted_ms) / (points[1].measured_ms + points[4].measured_ms);
  CHECK(g.knots[2].efficiency == doctest::Approx(eff2048));
  REQUIRE(g.held_out.median_ape_pct);  // two reports: each predicted by the other's knots
  REQUIRE(g.before.median_ape_pct);
  CHECK(g.note.find(std::filesystem::path(a.path).filename().string()) != std::string::npos);
  CHECK_FALSE(validate::calibrate_in_layer(profile, ref, {a.path}).held_out.median_ape_pct);

  // The cost model divides each GEMM by the efficiency at its rows; the other ops are unchanged.
  const sim::Experiment calibrated = calibrated_by(profile, validate::InLayerTarget::kGemms, g);
  const fit::FittedProfile* p = calibrated.profile.get();
  each_batch(none, calibrated, batches, w, [&](size_t i, const auto& before, const auto& after) {
    const double eff = g.efficiency(static_cast<double>(batches[i].new_tokens()));
    CHECK(gemms(after) == doctest::Approx(gemms(before) / eff));
    const auto norm = static_cast<size_t>(costmodel::OpKind::kNorm);
    CHECK(after.op_s[norm] == doctest::Approx(before.op_s[norm]));
  });
  CHECK(sim::make_cost_model(calibrated)->describe().find("GEMMs calibrated in measured layers") != std::string::npos);

  // Written and read back; carried over (and no longer held out) by a derived profile.
  const fit::FittedProfile back = fit::profile_from_json(fit::profile_to_json(*p, "test"), "p.json");
  REQUIRE(back.gemm_in_layer);
  REQUIRE(back.gemm_in_layer->knots.size() == g.knots.size());
  CHECK(back.gemm_in_layer->knots[2].efficiency == doctest::Approx(g.knots[2].efficiency));
  CHECK(back.gemm_in_layer->held_out.median_ape_pct == g.held_out.median_ape_pct);
  const fit::SpecSheet from{"p5", profile.gpu, 989, 3350, 900}, to{"p4de", "A100-SXM4-80GB", 312, 2039, 600};
  const fit::FittedProfile derived = fit::derive_profile(*p, "h100", from, to);
  REQUIRE(derived.gemm_in_layer);
  CHECK(derived.gemm_in_layer->note.find("carried over unchanged from h100") == 0);
  CHECK_FALSE(derived.gemm_in_layer->held_out.median_ape_pct);
  Json bad = fit::profile_to_json(*p, "test");
  bad["gemm_in_layer"]["efficiency_knots"] = Json::array({Json::array({11.0, 0.9}), Json::array({5.0, 1.0})});
  CHECK(input_error_of([&] {
          fit::profile_from_json(bad, "p.json");
        }).find("p.json: gemm_in_layer: knots must be in ascending rows") != std::string::npos);
}

TEST_CASE("in-layer calibration refuses reports it cannot use, naming the file") {
  const sim::Experiment none = experiment("none");
  const auto batches = validate::parse_layer_batches("prefill:1x512");
  const test::SavedReport plain(test::synthetic_report(none, batches, {0, 2, 6}, false));
  const test::SavedReport per_op(test::synthetic_report(none, batches, {0, 2, 6}, true));
  auto [h100, ref100] = sim::load_profile("h100", "", "test");
  auto [h200, ref200] = sim::load_profile("h200", "", "test");
  const std::string no_ops = input_error_of([&] { validate::calibrate_in_layer(h100, ref100, {plain.path}); });
  CHECK(no_ops.find(plain.path) != std::string::npos);
  CHECK(no_ops.find("--per-op") != std::string::npos);
  const std::string other_gpu = input_error_of([&] { validate::calibrate_in_layer(h200, ref200, {per_op.path}); });
  CHECK(other_gpu.find(per_op.path + ": measured on 'NVIDIA H100 80GB HBM3'") != std::string::npos);
  CHECK(input_error_of([&] { validate::calibrate_in_layer(h100, ref100, {}); }).find("at least one") !=
        std::string::npos);
}

TEST_CASE("prefill attention calibrated in measured layers: prompt rows, its op alone, its own key") {
  using costmodel::OpKind;
  const CalibrationCase t(validate::InLayerTarget::kAttnPrefill,
                          kMixedBatches, OpKind::kAttnPrefill);
  const auto& [none, profile, ref, batches, w, a, b] = t;
  const auto attn = [](const validate::LayerPrediction& p) {
    return p.op_s[static_cast<size_t>(OpKind::kAttnPrefill)];
  };

  // The decode-only batch has no prefill attention; the mixed one counts its 512 prompt rows, not 544.
  const auto points =
      validate::in_layer_points(profile, ref, {a->path, b->path}, validate::InLayerTarget::kAttnPrefill);
  REQUIRE(points.size() == 4);
  const auto sa = validate::read_layer_check_report(a->path);
  for (size_t i : {0u, 1u}) {
    CAPTURE(i);
    const size_t batch = i == 0 ? 0 : 2;
    CHECK(points[i].rows == 512);
    CHECK(points[i].predicted_ms == doctest::Approx(attn(validate::predict_layer(none, w, batches[batch])) * 1e3));
    CHECK(points[i].measured_ms ==
          doctest::Approx(sa.rows[batch].measured_op_ms[static_cast<size_t>(OpKind::kAttnPrefill)]));
  }
  const fit::InLayerCalibration c =
      validate::calibrate_in_layer(profile, ref, {a->path, b->path}, validate::InLayerTarget::kAttnPrefill);
  REQUIRE(c.knots.size() == 1);  // every point at 512 rows
  double pred = 0, meas = 0;
  for (const auto& x : points) pred += x.predicted_ms, meas += x.measured_ms;
  CHECK(c.knots[0].efficiency == doctest::Approx(pred / meas));
  CHECK(c.knots[0].log2_axis == doctest::Approx(9.0));
  REQUIRE(c.held_out.median_ape_pct);
  CHECK(c.note.find("prefill attention times") != std::string::npos);
  CHECK(c.held_out.method.find("prefill attention") != std::string::npos);

  // The cost model divides prefill attention by the efficiency at its prompt rows; GEMMs and decode
  // attention are unchanged.
  const sim::Experiment calibrated = calibrated_by(profile, validate::InLayerTarget::kAttnPrefill, c);
  const fit::FittedProfile* p = calibrated.profile.get();
  each_batch(none, calibrated, batches, w, [&](size_t, const auto& before, const auto& after) {
    CHECK(attn(after) == doctest::Approx(attn(before) / c.knots[0].efficiency));
    CHECK(gemms(after) == doctest::Approx(gemms(before)));
    const auto decode = static_cast<size_t>(OpKind::kAttnDecode);
    CHECK(after.op_s[decode] == doctest::Approx(before.op_s[decode]));
  });
  CHECK(sim::make_cost_model(calibrated)->describe().find("prefill attention calibrated in measured layers") !=
        std::string::npos);

  // Written under its own key (absent when not calibrated), read back, carried over when derived.
  const Json j = check_stored(profile, *p, validate::InLayerTarget::kAttnPrefill, "attn_prefill_in_layer", c);
  CHECK(fit::profile_from_json(j, "p.json").gemm_in_layer.has_value() == profile.gemm_in_layer.has_value());
  Json bad = j;
  bad["attn_prefill_in_layer"]["efficiency_knots"] = Json::array({Json::array({9.0, -1.0})});
  CHECK(input_error_of([&] {
          fit::profile_from_json(bad, "p.json");
        }).find("p.json: attn_prefill_in_layer: knot [9.0,-1.0] is not [log2 rows, efficiency > 0]") !=
        std::string::npos);

  // A report without prefill batches cannot calibrate it, and says so.
  const test::SavedReport decode_only(
      test::synthetic_report(none, validate::parse_layer_batches("decode:32x1024"), w, true, OpKind::kAttnPrefill));
  const std::string e = input_error_of(
      [&] { validate::calibrate_in_layer(profile, ref, {decode_only.path}, validate::InLayerTarget::kAttnPrefill); });
  CHECK(e.find(decode_only.path + ": no batch runs prefill attention") != std::string::npos);
}

TEST_CASE("element-wise ops calibrated in measured layers: new rows, the five short kernels, their own key") {
  using costmodel::OpKind;
  // The synthetic split measures norm only (a tenth of each forward).
  const CalibrationCase t(validate::InLayerTarget::kElementwise,
                          kMixedBatches, OpKind::kAttnDecode);
  const auto& [none, profile, ref, batches, w, a, b] = t;
  const auto elementwise = [](const validate::LayerPrediction& p) {
    double s = 0;
    for (OpKind k : costmodel::kElementwiseOps)
      s += p.op_s[static_cast<size_t>(k)];
    return s;
  };

  // Every batch counts, at its new rows (the mixed one: 544).
  const auto points =
      validate::in_layer_points(profile, ref, {a->path, b->path}, validate::InLayerTarget::kElementwise);
  REQUIRE(points.size() == 6);
  const auto sa = validate::read_layer_check_report(a->path);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(points[i].rows == static_cast<double>(batches[i].new_tokens()));
    CHECK(points[i].predicted_ms == doctest::Approx(elementwise(validate::predict_layer(none, w, batches[i])) * 1e3));
    CHECK(points[i].measured_ms == doctest::Approx(sa.rows[i].measured_op_ms[static_cast<size_t>(OpKind::kNorm)]));
  }
  const fit::InLayerCalibration c =
      validate::calibrate_in_layer(profile, ref, {a->path, b->path}, validate::InLayerTarget::kElementwise);
  REQUIRE(c.knots.size() == 2);  // 32 rows; 512 and 544 rows together
  CHECK(c.knots[0].log2_axis == doctest::Approx(5.0));
  CHECK(c.knots[0].efficiency == doctest::Approx((points[1].predicted_ms + points[4].predicted_ms) /
                                                 (points[1].measured_ms + points[4].measured_ms)));
  REQUIRE(c.held_out.median_ape_pct);
  CHECK(c.note.find("norm, RoPE (+ rotation), KV append, residual and activation times") != std::string::npos);
  CHECK(c.held_out.method.find("element-wise") != std::string::npos);

  // The cost model divides each element-wise op by the efficiency at its rows; GEMMs and attention
  // are unchanged.
  const sim::Experiment calibrated = calibrated_by(profile, validate::InLayerTarget::kElementwise, c);
  const fit::FittedProfile* p = calibrated.profile.get();
  each_batch(none, calibrated, batches, w, [&](size_t i, const auto& before, const auto& after) {
    const double eff = c.efficiency(static_cast<double>(batches[i].new_tokens()));
    for (OpKind k : costmodel::kElementwiseOps) {
      CAPTURE(static_cast<int>(k));
      const auto j = static_cast<size_t>(k);
      CHECK(before.op_s[j] > 0);
      CHECK(after.op_s[j] == doctest::Approx(before.op_s[j] / eff));
    }
    CHECK(gemms(after) == doctest::Approx(gemms(before)));
    for (OpKind k : {OpKind::kAttnDecode, OpKind::kAttnPrefill})
      CHECK(after.op_s[static_cast<size_t>(k)] == doctest::Approx(before.op_s[static_cast<size_t>(k)]));
  });
  CHECK(sim::make_cost_model(calibrated)->describe().find("element-wise ops calibrated in measured layers") !=
        std::string::npos);

  // Written under its own key (absent when not calibrated), read back, carried over when derived.
  check_stored(profile, *p, validate::InLayerTarget::kElementwise, "elementwise_in_layer", c);
}

TEST_CASE("decode in-layer extra times: least squares over the kernels' calls per layer") {
  using validate::DecodeInLayerPoint;
  // CUDA cores 2 us and tensor cores 10 us per call, the shared-page kernel run by no point.
  const std::vector<DecodeInLayerPoint> pts = {
      {0, {4, 0, 0}, 100, 108}, {0, {0, 4, 0}, 50, 90}, {1, {2, 2, 0}, 70, 94}, {1, {1, 0, 0}, 30, 32}};
  const auto e = validate::decode_in_layer_extra_us(pts);
  CHECK(e[0] == doctest::Approx(2.0));
  CHECK(e[1] == doctest::Approx(10.0));
  CHECK(e[2] == 0);
  CHECK(input_error_of([] { validate::decode_in_layer_extra_us({}); }).find("no measured decode batches") !=
        std::string::npos);
}

TEST_CASE("decode attention calibrated in measured layers: per kernel, decode-only batches, its own key") {
  using costmodel::OpKind;
  const auto decode = static_cast<size_t>(OpKind::kAttnDecode);
  auto [profile, ref] = sim::load_profile("h100", "", "test");
  profile.attn_decode_in_layer.clear();  // the laws alone
  auto plain = std::make_shared<fit::FittedProfile>(profile);
  sim::Experiment none = experiment("none"), table = experiment("fdc-table-llama-2-13b");
  none.profile = table.profile = plain;
  const auto batches = validate::parse_layer_batches(kMixedBatches);  // one decode-only batch of three
  const validate::LayerWindow w{0, 2, 6};
  const test::SavedReport a(test::synthetic_report(none, batches, w, true));
  const test::SavedReport b(test::synthetic_report(table, batches, w, true));

  const auto points = validate::decode_in_layer_points(profile, ref, {a.path, b.path});
  REQUIRE(points.size() == 2);  // decode:32x1024 of each report; prefill and mixed batches left out
  const auto sa = validate::read_layer_check_report(a.path);
  CHECK(points[0].report == 0);
  CHECK(points[0].calls[0] == doctest::Approx(1.0));  // one CUDA-core call per layer
  CHECK(points[1].calls[1] == doctest::Approx(1.0));  // the table policy's layers decode on the tensor cores
  CHECK(points[0].predicted_us == doctest::Approx(validate::predict_layer(none, w, batches[1]).op_s[decode] * 1e6));
  CHECK(points[0].measured_us == doctest::Approx(sa.rows[1].measured_op_ms[decode] * 1e3));

  const auto m = validate::calibrate_decode_in_layer(profile, ref, {a.path, b.path});
  REQUIRE(m.size() == 2);
  const fit::InLayerOffset& cuda = m.at("attn_decode");
  const fit::InLayerOffset& tc = m.at("attn_decode/tensor_cores");
  CHECK(cuda.extra_us == doctest::Approx(points[0].measured_us - points[0].predicted_us));
  CHECK(tc.extra_us == doctest::Approx(points[1].measured_us - points[1].predicted_us));
  CHECK(cuda.points == 1);
  REQUIRE(cuda.before.median_ape_pct);
  CHECK_FALSE(cuda.held_out.median_ape_pct);  // no other report runs the CUDA-core kernel
  CHECK(cuda.held_out.method.find("no other report") != std::string::npos);
  CHECK(cuda.note.find(std::filesystem::path(b.path).filename().string()) != std::string::npos);

  // The cost model adds each kernel's extra time per call to its decode calls, nothing else.
  auto p = std::make_shared<fit::FittedProfile>(profile);
  p->attn_decode_in_layer = m;
  sim::Experiment none_after = experiment("none"), table_after = experiment("fdc-table-llama-2-13b");
  none_after.profile = table_after.profile = p;
  for (const auto& [before, after, extra] :
       {std::tuple{&none, &none_after, cuda.extra_us}, std::tuple{&table, &table_after, tc.extra_us}}) {
    each_batch(*before, *after, batches, w, [&](size_t i, const auto& x, const auto& y) {
      const double calls = i == 0 ? 0.0 : 1.0;  // the prompt alone decodes nothing
      CHECK(y.op_s[decode] == doctest::Approx(x.op_s[decode] + calls * extra * 1e-6));
      CHECK(gemms(y) == doctest::Approx(gemms(x)));
    });
  }
  CHECK(sim::make_cost_model(none_after)->describe().find("decode attention calibrated in measured layers") !=
        std::string::npos);

  // Written under its own key (absent when not calibrated), read back, carried over when derived.
  CHECK_FALSE(fit::profile_to_json(profile, "test").contains("attn_decode_in_layer"));
  const Json j = fit::profile_to_json(*p, "test");
  const fit::FittedProfile back = fit::profile_from_json(j, "p.json");
  REQUIRE(back.attn_decode_in_layer.size() == 2);
  CHECK(back.attn_decode_in_layer.at("attn_decode/tensor_cores").extra_us == doctest::Approx(tc.extra_us));
  const fit::SpecSheet from{"p5", profile.gpu, 989, 3350, 900}, to{"p4de", "A100-SXM4-80GB", 312, 2039, 600};
  const fit::FittedProfile derived = fit::derive_profile(*p, "h100", from, to);
  REQUIRE(derived.attn_decode_in_layer.size() == 2);
  CHECK(derived.attn_decode_in_layer.at("attn_decode").note.find("carried over unchanged from h100") == 0);
  Json bad = j;
  bad["attn_decode_in_layer"]["attn_prefill"] = bad["attn_decode_in_layer"]["attn_decode"];
  CHECK(input_error_of([&] {
          fit::profile_from_json(bad, "p.json");
        }).find("p.json: attn_decode_in_layer: 'attn_prefill' is not a decode law") != std::string::npos);

  // A report without a decode-only batch cannot calibrate it, and says so.
  const test::SavedReport prefill_only(
      test::synthetic_report(none, validate::parse_layer_batches("prefill:1x512"), w, true));
  CHECK(input_error_of([&] {
          validate::calibrate_decode_in_layer(profile, ref, {prefill_only.path});
        }).find(prefill_only.path + ": no batch decodes only") != std::string::npos);
}
