// Fitting on synthetic data with known laws: recovery, held-out error, extrapolation flags.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/error.h"
#include "costmodel/fit/held_out.h"
#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/ops.h"
#include "tests/fit/profile_round_trip.h"
#include "tests/traces/temp_file.h"

namespace fdc::fit {
namespace {

Sample collective(double bytes, double time_us) {
  return Sample{"all_reduce/g2", "synthetic", time_us, bytes, 0, 0, 0, 0, std::nullopt, ""};
}

Sample gemm(double m, double n, double k, double time_us) {
  const OpQuery q = OpQuery::gemm(m, n, k);
  return Sample{"gemm/x/cublaslt", "synthetic", time_us, q.bytes, q.flops, m, n, k, std::nullopt, ""};
}

}  // namespace

TEST_CASE("fit: an exact alpha-beta law is recovered, with zero held-out error") {
  const double alpha_us = 7.5, gbps = 250.0;
  std::vector<Sample> s;
  for (double b = 1024; b <= double(1 << 30); b *= 2) s.push_back(collective(b, alpha_us + b / (gbps * 1e3)));
  const OpFit f = fit_op("all_reduce/g2", s, Peaks{}, false);
  CHECK(f.form == FitForm::kAlphaBeta);  // the efficiency curve cannot beat an exact law
  CHECK(f.alpha_us == doctest::Approx(alpha_us).epsilon(1e-9));
  CHECK(1e-3 / f.us_per_byte == doctest::Approx(gbps).epsilon(1e-9));
  CHECK(f.held_out.method == "5-fold");
  REQUIRE(f.held_out.median_ape_pct);
  CHECK(*f.held_out.p90_ape_pct < 1e-6);
  const Prediction p = predict(f, OpQuery{1e6, 0, 0, 0, 0});
  CHECK(p.time_us == doctest::Approx(alpha_us + 1e6 / (gbps * 1e3)));
  CHECK_FALSE(p.extrapolated);
}

TEST_CASE("fit: a size-dependent efficiency is taken when it lowers the held-out error") {
  // Bandwidth ramps from 25% to 100% of 300 GB/s between 1 KiB and 1 GiB: alpha-beta alone misses.
  std::vector<Sample> s;
  for (int e = 10; e <= 30; ++e) {
    const double b = std::ldexp(1.0, e), eff = 0.25 + 0.75 * (e - 10) / 20.0;
    s.push_back(collective(b, 5.0 + b / (300e3 * eff)));
  }
  const OpFit f = fit_op("all_reduce/g2", s, Peaks{}, false);
  CHECK(f.form == FitForm::kAlphaBetaEfficiency);
  REQUIRE(f.candidates.size() == 2);
  CHECK(*f.held_out.median_ape_pct < *f.candidates[0].held_out.median_ape_pct);
  for (const Sample& x : s) CHECK(predict(f, OpQuery::of(x)).time_us == doctest::Approx(x.time_us).epsilon(1e-9));
}

TEST_CASE("fit: an op whose time follows its flops slot, not its bytes, takes its curve over that slot") {
  // kv_append-like: time = 5 us + pairs / (2 pairs per ns x an efficiency ramping with the pairs),
  // whatever the row width (bytes = pairs x 2 x width x 2 bytes, widths 32..128).
  std::vector<Sample> s;
  for (int e = 4; e <= 17; ++e)
    for (const double width : {32.0, 64.0, 96.0, 128.0}) {
      const double pairs = std::ldexp(1.0, e), eff = 0.3 + 0.7 * (e - 4) / 13.0;
      s.push_back(Sample{"kv_append", "synthetic", 5.0 + pairs / (2e3 * eff), pairs * 4 * width, pairs, 0, 0, 0,
                         std::nullopt, ""});
    }
  const OpFit f = fit_op("kv_append", s, Peaks{}, true);
  REQUIRE(f.candidates.size() == 3);
  CHECK(f.candidates[2].curve_on_flops);
  CHECK(f.form == FitForm::kAlphaBetaEfficiency);
  CHECK(f.curve_on_flops);
  CHECK(std::string(f.axis_name()) == "flops");
  CHECK(f.axis.min == 16);  // the measured range is of the axis: pairs
  REQUIRE(f.candidates[1].held_out.p90_ape_pct);
  CHECK(*f.held_out.p90_ape_pct < 0.5 * *f.candidates[1].held_out.p90_ape_pct);  // better than over bytes
  for (const Sample& x : s) CHECK(predict(f, OpQuery::of(x)).time_us == doctest::Approx(x.time_us).epsilon(0.02));
  CHECK(predict(f, OpQuery{1e6, 1e6, 0, 0, 0}).extrapolated);  // pairs beyond 2^17
  // Written and read back: the same axis and predictions; the candidates keep theirs.
  const OpFit b = test::written_and_read(f);
  CHECK(b.curve_on_flops);
  CHECK(b.candidates.at(2).curve_on_flops);
  CHECK_FALSE(b.candidates.at(1).curve_on_flops);
  CHECK(predict_time_us(b, OpQuery::of(s[9])) == doctest::Approx(predict_time_us(f, OpQuery::of(s[9]))));
  // Without a flops slot (an all-reduce) the third candidate is not tried.
  std::vector<Sample> c;
  for (double bytes = 1024; bytes <= double(1 << 20); bytes *= 2) c.push_back(collective(bytes, 5 + bytes / 3e5));
  CHECK(fit_op("all_reduce/g2", c, Peaks{}, false).candidates.size() == 2);
}

TEST_CASE("fit: a profile whose alpha-beta curve names an unknown axis is refused, naming the op") {
  test::TempFile f("profile.json", R"({"format": "fdcsim-fitted-profile/1", "gpu": "X", "sources": [],
    "peaks": {"TFLOP/s": 1, "GB/s": 1}, "ops": {"kv_append": {"form": "alpha_beta_efficiency", "axis": "pairs",
    "params": {"alpha_us": 1, "us_per_byte": 0, "us_per_flop": 0}, "efficiency_knots": [[4, 1]],
    "coverage": {"flops": {"min": 1, "max": 2}}, "held_out": {"method": "none"}}}})");
  CHECK_THROWS_WITH_AS(read_profile(f.path()), doctest::Contains("ops.kv_append: 'axis'"), InputError);
}

TEST_CASE("fit: held-out error on a hand-made example (leave-one-out, median and P90)") {
  // Predictor: the mean of the training points. Held out 100 -> 300 (200%), 200 -> 250 (25%),
  // 400 -> 150 (62.5%). Sorted: 25, 62.5, 200; median 62.5; P90 at rank 1.8: 62.5 + 0.8 x 137.5 = 172.5.
  const std::vector<double> m{100, 200, 400};
  const HeldOutError e = cross_validate(m, 1, [&](const std::vector<int>& train, int) {
    double sum = 0;
    for (int i : train) sum += m[static_cast<size_t>(i)];
    return sum / static_cast<double>(train.size());
  });
  CHECK(e.method == "leave-one-out");
  CHECK(e.points == 3);
  CHECK(*e.median_ape_pct == doctest::Approx(62.5));
  CHECK(*e.p90_ape_pct == doctest::Approx(172.5));
  CHECK(percentile({4, 1, 3, 2}, 0.5) == doctest::Approx(2.5));

  const HeldOutError none = cross_validate({5.0}, 1, [](const std::vector<int>&, int) { return 0.0; });
  CHECK_FALSE(none.median_ape_pct);
  CHECK(none.method == "none (1 points)");
  CHECK(fold_of_points(23)[7] == 2);  // over 20 points: 5 interleaved folds
}

TEST_CASE("fit: GEMM efficiency curve interpolates in log flops and flags extrapolation") {
  const Peaks peaks{800.0, 4000.0};
  std::vector<Sample> s;
  // Efficiency 50% of the roofline at m=256, 90% at m=4096 (K, N fixed).
  for (double m : {256.0, 4096.0}) {
    const OpQuery q = OpQuery::gemm(m, 8192, 4096);
    const double roof_us = std::max(q.flops / 800e6, q.bytes / 4000e3);
    s.push_back(gemm(m, 8192, 4096, roof_us / (m == 256 ? 0.5 : 0.9)));
  }
  const OpFit f = fit_op("gemm/x/cublaslt", s, peaks, false);
  CHECK(f.form == FitForm::kGemmRooflineEfficiency);
  REQUIRE(f.knots.size() == 2);
  for (const Sample& x : s) CHECK(predict(f, OpQuery::of(x)).time_us == doctest::Approx(x.time_us));
  // m = 1024 sits halfway in log2 flops: efficiency 70%.
  const OpQuery mid = OpQuery::gemm(1024, 8192, 4096);
  const Prediction in = predict(f, mid);
  CHECK_FALSE(in.extrapolated);
  CHECK(in.time_us == doctest::Approx(mid.flops / 800e6 / 0.7));

  const Prediction big = predict(f, OpQuery::gemm(16384, 8192, 4096));
  CHECK(big.extrapolated);
  CHECK(big.why.find("flops") != std::string::npos);
  const Prediction other_k = predict(f, OpQuery::gemm(2048, 4096, 8192));  // same flops range, k outside
  CHECK(other_k.extrapolated);
  CHECK(other_k.why.find("k ") != std::string::npos);
}

TEST_CASE("fit: a GEMM query prices the rows its kernel computes: whole 128-row tiles above one tile") {
  CHECK(costmodel::gemm_tiled_rows(1) == 1);
  CHECK(costmodel::gemm_tiled_rows(100) == 100);  // one tile or less: the rows themselves
  CHECK(costmodel::gemm_tiled_rows(128) == 128);
  CHECK(costmodel::gemm_tiled_rows(129) == 256);
  CHECK(costmodel::gemm_tiled_rows(544) == 640);
  CHECK(costmodel::gemm_tiled_rows(2048) == 2048);
  const OpQuery q = OpQuery::gemm(544, 8192, 4096), tiles = OpQuery::gemm(640, 8192, 4096);
  CHECK(q.m == 640);
  CHECK(q.flops == tiles.flops);
  CHECK(q.bytes == tiles.bytes);
  CHECK(OpQuery::gemm(96, 8192, 4096).flops == 2.0 * 96 * 8192 * 4096);
  // A law fitted on multiples of the tile reproduces them; a prompt of 513-640 rows costs what 640 do.
  const Peaks peaks{800.0, 4000.0};
  std::vector<Sample> s;
  for (double m : {256.0, 512.0, 1024.0, 4096.0}) {
    const OpQuery x = OpQuery::gemm(m, 8192, 4096);
    s.push_back(gemm(m, 8192, 4096, std::max(x.flops / 800e6, x.bytes / 4000e3) / 0.8));
  }
  const OpFit f = fit_op("gemm/x/cublaslt", s, peaks, false);
  for (const Sample& x : s) CHECK(predict(f, OpQuery::of(x)).time_us == doctest::Approx(x.time_us));
  CHECK(predict(f, OpQuery::gemm(513, 8192, 4096)).time_us ==
        doctest::Approx(predict(f, OpQuery::gemm(640, 8192, 4096)).time_us));
  CHECK(predict(f, OpQuery::gemm(641, 8192, 4096)).time_us > predict(f, OpQuery::gemm(640, 8192, 4096)).time_us);
}

// Efficiency log-linear in log2 m and log2 (n k): both interpolations of the grid are exact on it.
double grid_eff(double m, double n, double k) {
  return 0.4 * std::pow(m / 64.0, 0.1) * std::pow(n * k / (4096.0 * 1024.0), 0.15);
}

TEST_CASE("fit: the GEMM grid interpolates in (log2 m, log2 n k), clamps beyond the ends, and reads back") {
  std::vector<GridPoint> points;
  for (double m : {64.0, 256.0, 1024.0})
    for (double k : {1024.0, 2048.0, 4096.0}) points.push_back({m, 4096, k, grid_eff(m, 4096, k)});
  points.push_back({64, 4096, 1024, grid_eff(64, 4096, 1024) * 1.2});  // a repeated shape: the mean
  const GemmGrid g = GemmGrid::of(points);
  CHECK(g.points.size() == 9);
  CHECK(g.efficiency(64, 4096, 1024) == doctest::Approx(grid_eff(64, 4096, 1024) * 1.1));
  CHECK(g.efficiency(1024, 4096, 2048) == doctest::Approx(grid_eff(1024, 4096, 2048)));
  CHECK(g.efficiency(128, 4096, 3000) == doctest::Approx(grid_eff(128, 4096, 3000)).epsilon(1e-9));
  CHECK(g.efficiency(1 << 16, 4096, 4096) == doctest::Approx(grid_eff(1024, 4096, 4096)));  // clamped
  CHECK(g.efficiency(1, 4096, 512) == doctest::Approx(grid_eff(64, 4096, 1024) * 1.1));

  // Fitted from samples on that grid (plus m = 4096 to hold out): the grid is the nearer form, and
  // a held-out interior point is predicted exactly.
  const Peaks peaks{800.0, 4000.0};
  std::vector<Sample> s;
  for (double m : {64.0, 256.0, 1024.0, 4096.0})
    for (double k : {1024.0, 2048.0, 4096.0}) {
      const OpQuery q = OpQuery::gemm(m, 4096, k);
      s.push_back(gemm(m, 4096, k, std::max(q.flops / 800e6, q.bytes / 4000e3) / grid_eff(m, 4096, k)));
    }
  const OpFit f = fit_op("gemm/x/cublaslt", s, peaks, false);
  CHECK(f.form == FitForm::kGemmRooflineGrid);
  REQUIRE(f.candidates.size() == 3);  // the curve, the grid, the grid read interpolation first
  CHECK(*f.candidates[1].held_out.median_ape_pct < *f.candidates[0].held_out.median_ape_pct);
  CHECK_FALSE(f.candidates[1].interpolation_first);
  CHECK(f.candidates[2].interpolation_first);
  CHECK(f.candidates[2].form == FitForm::kGemmRooflineGrid);
  for (const Sample& x : s) CHECK(predict(f, OpQuery::of(x)).time_us == doctest::Approx(x.time_us));
  CHECK_FALSE(predict(f, OpQuery::gemm(512, 4096, 3000)).extrapolated);
  const Prediction out = predict(f, OpQuery::gemm(8192, 4096, 4096));
  CHECK(out.extrapolated);
  CHECK(out.why.find("m 8192") != std::string::npos);

  FittedProfile p;
  p.gpu = "test";
  p.peaks = peaks;
  p.ops[f.op] = f;
  const FittedProfile back = profile_from_json(profile_to_json(p, "test"), "p.json");
  const OpFit& b = *back.find(f.op);
  CHECK(b.form == FitForm::kGemmRooflineGrid);
  const OpQuery q = OpQuery::gemm(700, 4096, 1500);
  CHECK(predict_time_us(b, q) == doctest::Approx(predict_time_us(f, q)));
}

TEST_CASE("fit: the GEMM grid read interpolation first: a shape measured at fewer rows") {
  // Shapes k = 1024..4096 at m = 64, 256, 1024; k = 8192 only at m = 64 and 1024. At (256, k 8192)
  // the reading across shapes holds the m = 256 line's last shape (k = 4096), the reading along m
  // interpolates between the two measured rows of its own shape.
  std::vector<GridPoint> points;
  for (double m : {64.0, 256.0, 1024.0})
    for (double k : {1024.0, 2048.0, 4096.0}) points.push_back({m, 4096, k, grid_eff(m, 4096, k)});
  for (double m : {64.0, 1024.0}) points.push_back({m, 4096, 8192, grid_eff(m, 4096, 8192)});
  GemmGrid g = GemmGrid::of(points);
  const double exact = grid_eff(256, 4096, 8192), held = grid_eff(256, 4096, 4096);
  CHECK(g.efficiency(256, 4096, 8192) == doctest::Approx(std::sqrt(exact * held)));  // the mean of the logs
  g.interpolation_first = true;
  CHECK(g.efficiency(256, 4096, 8192) == doctest::Approx(exact));
  // Both readings interpolate, or both hold an end: the mean as before.
  CHECK(g.efficiency(128, 4096, 3000) == doctest::Approx(grid_eff(128, 4096, 3000)).epsilon(1e-9));
  CHECK(g.efficiency(1 << 16, 4096, 1 << 15) == doctest::Approx(grid_eff(1024, 4096, 8192)));

  // Chosen when its held-out error is nearer the target, and read back from the profile.
  const Peaks peaks{800.0, 4000.0};
  std::vector<Sample> s;
  for (const GridPoint& p : points) {
    const OpQuery q = OpQuery::gemm(p.m, p.n, p.k);
    s.push_back(gemm(p.m, p.n, p.k, std::max(q.flops / 800e6, q.bytes / 4000e3) / p.efficiency));
  }
  OpFit f = fit_op("gemm/x/cublaslt", s, peaks, false);
  REQUIRE(f.candidates.size() == 3);
  f.form = FitForm::kGemmRooflineGrid;
  f.grid = g;
  FittedProfile p;
  p.gpu = "test";
  p.peaks = peaks;
  p.ops[f.op] = f;
  const Json j = profile_to_json(p, "test");
  CHECK(j["ops"][f.op]["interpolation_first"] == true);
  const FittedProfile back = profile_from_json(j, "p.json");
  const OpFit& b = *back.find(f.op);
  CHECK(b.grid.interpolation_first);
  CHECK(b.candidates.at(2).interpolation_first);
  const OpQuery q = OpQuery::gemm(256, 4096, 8192);
  CHECK(predict_time_us(b, q) == doctest::Approx(std::max(q.flops / 800e6, q.bytes / 4000e3) / exact));
  Json bad = j;
  bad["ops"][f.op]["interpolation_first"] = "yes";
  CHECK_THROWS_WITH_AS(profile_from_json(bad, "p.json"),
                       doctest::Contains("'interpolation_first' must be true or false"), fdc::InputError);
}

TEST_CASE("fit: alpha-beta queries outside the measured bytes are flagged") {
  std::vector<Sample> s{collective(1e6, 10), collective(2e6, 15), collective(4e6, 25)};
  const OpFit f = fit_op("all_reduce/g2", s, Peaks{}, false);
  CHECK_FALSE(predict(f, OpQuery{3e6, 0, 0, 0, 0}).extrapolated);
  const Prediction p = predict(f, OpQuery{1e9, 0, 0, 0, 0});
  CHECK(p.extrapolated);
  CHECK(p.time_us > 25);
}

}  // namespace fdc::fit
