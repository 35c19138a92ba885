// `fdcsim fit` and `fdcsim profile-report` as a user runs them: exit codes and messages.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <doctest/doctest.h>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/fit_command.h"
#include "costmodel/fit/profile_io.h"
#include "tests/captured_output.h"
#include "tests/test_paths.h"

namespace fdc {
namespace {

using Result = test::CapturedRun;
template <class F>
Result capture(F&& run) {
  return test::captured(std::forward<F>(run));
}

}  // namespace

TEST_CASE("fit command: fits the committed H100 folder, reports it, refuses a partial file") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("fdcsim_fit_cmd_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string profile = (tmp / "h100.json").string();

  const std::string residuals = (tmp / "residuals.csv").string();
  const std::string raw_dir = test::source_path("configs/profiles/raw/h100-1gpu-20261127");
  const Result fit = capture([&] {
    cli::FitOptions o;
    o.raw_dirs = {raw_dir};
    o.out = profile;
    o.residuals = residuals;
    return cli::run_fit(o);
  });
  CHECK(fit.code == cli::kExitOk);
  CHECK(fit.out.find("gemm/qkv_proj/cublaslt") != std::string::npos);

  // --residuals: one row per case of every op with a held-out error, the op's own numbers.
  std::ifstream csv(residuals);
  std::string header, row;
  REQUIRE(std::getline(csv, header));
  CHECK(header == "op,case,measured_us,held_out_us,error_pct");
  int rows = 0, residual_rows = 0;
  while (std::getline(csv, row)) {
    ++rows;
    if (row.rfind("\"rope_rotate/rotate\",", 0) == 0) {
      ++residual_rows;
      CHECK(row.find("ops.json.gz: benchmark 'rope_rotate/") != std::string::npos);
    }
  }
  // The ops with more than one case: the four QKV and output-projection GEMMs (6 cases each) and
  // RoPE + rotation (3); single cases have nothing to hold out.
  CHECK(residual_rows == 3);
  CHECK(rows == 4 * 6 + 3);

  const Result report = capture([&] { return cli::run_profile_report({profile, {}}); });
  CHECK(report.code == cli::kExitOk);
  CHECK(report.out.find("NVIDIA H100") != std::string::npos);
  CHECK(report.out.find("leave-one-out") != std::string::npos);

  // --against: the laws scored on raw cases (here the ones they were fitted to).
  const Result against = capture([&] { return cli::run_profile_report({profile, {raw_dir}}); });
  CHECK(against.code == cli::kExitOk);
  CHECK(against.out.find("against 1 raw folder(s) of NVIDIA H100") != std::string::npos);
  CHECK(against.out.find("rope_rotate/rotate") != std::string::npos);

  // --residuals belongs to a fit from raw folders.
  const Result refused = capture([&] {
    cli::FitOptions o;
    o.derive = true;
    o.from = profile;
    o.out = (tmp / "d.json").string();
    o.residuals = residuals;
    return cli::run_fit(o);
  });
  CHECK(refused.code == cli::kExitBadInput);
  CHECK(refused.err.find("--residuals") != std::string::npos);

  // A raw folder whose ops.json lacks a counter: exit 2, file and benchmark named.
  const fs::path raw = tmp / "raw";
  fs::create_directories(raw);
  fs::copy_file(test::source_path("configs/profiles/raw/h100-1gpu-20261127/provenance.json"), raw / "provenance.json");
  std::ofstream(raw / "ops.json")
      << R"({"benchmarks": [{"name": "mlp_act/swiglu/f13824/m1024", "real_time": 25, "time_unit": "us", "rows": 1024}]})";
  const Result bad = capture([&] {
    cli::FitOptions o;
    o.raw_dirs = {raw.string()};
    o.out = (tmp / "x.json").string();
    return cli::run_fit(o);
  });
  CHECK(bad.code == cli::kExitBadInput);
  CHECK(bad.err.find((raw / "ops.json").string()) != std::string::npos);
  CHECK(bad.err.find("mlp_act/swiglu/f13824/m1024") != std::string::npos);

  const Result missing = capture([&] { return cli::run_profile_report({(tmp / "none.json").string(), {}}); });
  CHECK(missing.code == cli::kExitBadInput);
  fs::remove_all(tmp);
}

TEST_CASE("fit --overhead-from --overhead-prefill: an H100 burst calibrates the overhead with its prefill term") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("fdcsim_fit_oh_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string burst =
      test::source_path("configs/profiles/raw/h100-1gpu-20261206-engine/llama-2-13b-fdc-uniform-50-burst160.jsonl.gz");
  const Result r = capture([&] {
    cli::FitOptions o;
    o.from = "h100";
    o.overhead_from = {burst};
    o.overhead_prefill = true;
    o.out = (tmp / "h100.json").string();
    return cli::run_fit(o);
  });
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("iteration_overhead/llama-2-13b/tp1sp1: ") != std::string::npos);
  CHECK(r.out.find("x the prefill rows' op time, from ") != std::string::npos);
  const fit::FittedProfile p = fit::read_profile((tmp / "h100.json").string());
  const fit::OpFit& oh = p.ops.at("iteration_overhead/llama-2-13b/tp1sp1");
  CHECK(oh.prefill_scale < -0.02);  // the H100's prefill steps run faster in the engine than priced
  CHECK(oh.prefill_scale > -0.15);
  CHECK(p.fitted_by.find("--overhead-prefill") != std::string::npos);
  // The flag alone is refused (exit 2), naming what it needs.
  const Result alone = capture([&] {
    cli::FitOptions o;
    o.from = "h100";
    o.overhead_prefill = true;
    o.in_layer_from = {test::source_path("docs/results/layer-check-20261206/layer-h100-none-perop.json")};
    o.out = (tmp / "x.json").string();
    return cli::run_fit(o);
  });
  CHECK(alone.code == cli::kExitBadInput);
  CHECK(alone.err.find("--overhead-prefill is a term of the overhead calibration; it needs --overhead-from") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "x.json"));
  fs::remove_all(tmp);
}

TEST_CASE("fit --in-layer-from: the committed per-op layer checks calibrate the GEMMs, then the overhead") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("fdcsim_fit_il_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string out = (tmp / "h100.json").string();
  // The H100 checks of 2026-12-06 (the numbers below move when the H100 profile's laws do).
  const std::string dir = "docs/results/layer-check-20261206/";
  const Result r = capture([&] {
    cli::FitOptions o;
    o.from = "h100";
    for (const char* p : {"none-perop", "fdc-uniform-50-perop", "fdc-table-hybrid-llama-2-13b-perop"}) {
      o.in_layer_from.push_back(test::source_path(dir + "layer-h100-" + p + ".json"));
      o.attn_in_layer_from.push_back(o.in_layer_from.back());
      o.elementwise_in_layer_from.push_back(o.in_layer_from.back());
      o.decode_in_layer_from.push_back(o.in_layer_from.back());
    }
    o.out = out;
    return cli::run_fit(o);
  });
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.out.find("gemm_in_layer: 6 knots from 33 measured batches (rows 8..2048), replacing the profile's") !=
        std::string::npos);
  CHECK(r.out.find("2048 rows: efficiency 0.909") != std::string::npos);
  // Prefill attention from the same reports: the 12 batches with a prompt, at 512 and 2048 prompt rows.
  CHECK(r.out.find("attn_prefill_in_layer: 2 knots from 12 measured batches (rows 512..2048)") != std::string::npos);
  CHECK(r.out.find("2048 rows: efficiency 0.707") != std::string::npos);
  // The element-wise ops from the same reports: every per-op batch, at its new rows.
  CHECK(r.out.find("elementwise_in_layer: 6 knots from 33 measured batches (rows 8..2048)") != std::string::npos);
  // Decode attention: the decode-only batches, per kernel (the CUDA-core kernel of none and FDC 50%,
  // the shared-page kernel of the token-class policy, which no other report runs: not held out).
  CHECK(r.out.find("attn_decode                +1.3 us per call, from 14 decode batches") != std::string::npos);
  CHECK(r.out.find("attn_decode/shared_pages   +9.6 us per call, from 7 decode batches") != std::string::npos);
  CHECK(r.out.find("held out (none (no other report runs this kernel))") != std::string::npos);
  CHECK(r.out.find("GEMMs calibrated in measured layers and prefill attention calibrated in measured layers and "
                   "element-wise ops calibrated in measured layers and decode attention calibrated in measured "
                   "layers") != std::string::npos);
  const Result report = capture([&] { return cli::run_profile_report({out, {}}); });
  CHECK(report.out.find("GEMMs in a layer (gemm_in_layer)") != std::string::npos);
  CHECK(report.out.find("prefill attention in a layer (attn_prefill_in_layer): efficiency 0.662 at 512 rows") !=
        std::string::npos);
  CHECK(report.out.find("element-wise ops in a layer (elementwise_in_layer): efficiency 0.598 at 8 rows") !=
        std::string::npos);
  CHECK(report.out.find("decode attention in a layer (attn_decode_in_layer): attn_decode/shared_pages +9.6 us per "
                        "call") != std::string::npos);

  // A report of the other GPU is refused, naming it (exit 2).
  const std::string h200 = test::source_path("docs/results/layer-check-20261128b/layer-h200-none-perop.json");
  const Result other = capture([&] {
    cli::FitOptions o;
    o.from = "h100";
    o.in_layer_from = {h200};
    o.out = (tmp / "x.json").string();
    return cli::run_fit(o);
  });
  CHECK(other.code == cli::kExitBadInput);
  CHECK(other.err.find(h200 + ": measured on 'NVIDIA H200'") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "x.json"));
  fs::remove_all(tmp);
}

TEST_CASE("profile-report: an op whose cases were repeated shows how far the repetitions spread") {
  namespace fs = std::filesystem;
  fit::FittedProfile p = fit::read_profile(test::source_path("configs/profiles/h200.json"));
  p.ops.at("residual").repeat_spread = fit::RepeatSpread{10, 3, 2.5, 7.25};
  p.ops.at("mlp_act/swiglu").repeat_spread.reset();  // as if its cases had run once
  const fs::path file = fs::temp_directory_path() / ("fdcsim_spread_" + std::to_string(::getpid()) + ".json");
  fit::write_profile(p, "test", file.string());
  const Result r = capture([&] {
    cli::ProfileReportOptions o;
    o.profile = file.string();
    return cli::run_profile_report(o);
  });
  CHECK(r.code == cli::kExitOk);
  CHECK(r.out.find("residual: 10 cases measured 3 times or more; their repetitions spread 2.5% / 7.2%") !=
        std::string::npos);
  CHECK(r.out.find("mlp_act/swiglu: ") == std::string::npos);  // no spread where nothing was repeated
  fs::remove(file);
}

TEST_CASE("fit's repeatable file options take one value each: what follows is an input again") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("fdcsim_fit_args_" + std::to_string(::getpid()));
  fs::create_directories(tmp / "a");
  fs::create_directories(tmp / "b");
  const std::string a = (tmp / "a").string(), b = (tmp / "b").string();
  const std::string report = test::source_path("docs/results/layer-check-20261206/layer-h100-none-perop.json");
  CLI::App app;
  cli::FitOptions o;
  cli::add_fit_command(app, o);
  std::vector<std::string> args = {
      "fit",   "--decode-in-layer-from", report, "--in-layer-from", report, a, "--whole-ops-from", a, b, "--out",
      "x.json"};
  std::reverse(args.begin(), args.end());  // CLI11 parses a reversed vector
  app.parse(args);
  CHECK(o.raw_dirs == std::vector<std::string>{a, b});
  CHECK(o.whole_ops_from == std::vector<std::string>{a});
  CHECK(o.decode_in_layer_from == std::vector<std::string>{report});
  CHECK(o.in_layer_from == std::vector<std::string>{report});
  fs::remove_all(tmp);
}

}  // namespace fdc
