// `fdcsim layer-check` as a user runs it: what it refuses before any GPU work, in a CPU-only build
// that it needs a CUDA build, and the re-prediction of a saved report (`--measured`, any build).
#include <doctest/doctest.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/layer_check_command.h"
#include "core/config.h"
#include "tests/test_paths.h"
#include "tests/validate/saved_layer_check.h"

using namespace fdc;

namespace {
struct Result {
  int code;
  std::string err;
};
Result layer_check(cli::LayerCheckOptions o) {
  o.quiet = true;
  std::ostringstream err;
  auto* old = std::cerr.rdbuf(err.rdbuf());
  const int code = cli::run_layer_check(o);
  std::cerr.rdbuf(old);
  return {code, err.str()};
}
cli::LayerCheckOptions h100() {
  cli::LayerCheckOptions o;
  o.config = test::source_path("configs/validate/llama-2-13b-h100.json");
  o.gpus = 1;
  return o;
}
}  // namespace

TEST_CASE("layer-check refuses bad input before touching a GPU (exit 2, naming the item)") {
  SUBCASE("malformed batch") {
    auto o = h100();
    o.batches = "prefill:1x512,decode:32";
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("--batches: item 'decode:32'") != std::string::npos);
  }
  SUBCASE("layer window beyond the model") {
    auto o = h100();
    o.first_layer = 38;
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("needs policy layers 38..43; the model has 40 layers") != std::string::npos);
  }
  SUBCASE("sequence parallelism") {
    auto o = h100();
    o.config = test::source_path("configs/validate/llama-2-7b-sp2-h100.json");
    o.gpus = 2;
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("layer-check times the layer on one GPU (tp = sp = 1)") != std::string::npos);
  }
  SUBCASE("unknown config key") {
    auto o = h100();
    o.overrides = {"scheduler.max_num_seq=12"};
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/scheduler/max_num_seq: unknown key") != std::string::npos);
  }
}

#if !FDCSIM_HAVE_CUDA
TEST_CASE("layer-check in a CPU-only build: checks its input, then says it needs CUDA (exit 2)") {
  const Result r = layer_check(h100());
  CHECK(r.code == cli::kExitBadInput);
  CHECK(r.err.find("built without CUDA: layer-check times the layer on a GPU and needs a CUDA build") !=
        std::string::npos);
}
#endif

TEST_CASE("layer-check --measured: a saved report re-predicted with the cost model selected, no GPU") {
  const std::string config = test::source_path("configs/validate/llama-2-13b-h100.json");
  const sim::Experiment run = sim::load_experiment(config, {"policy=fdc-uniform-50"}, 1);
  const validate::LayerWindow w{0, 2, 6};
  const auto batches = validate::parse_layer_batches("prefill:1x512,decode:32x1024,prefill:1x512+decode:32x1024");
  const test::SavedReport saved(test::synthetic_report(run, batches, w));
  const test::SavedReport out_file(Json::object());  // a path removed at the end; overwritten below

  for (const std::vector<std::string>& set :
       {std::vector<std::string>{}, std::vector<std::string>{"costmodel.kind=roofline"},
        std::vector<std::string>{"policy=none"}}) {
    CAPTURE(set.size() == 1 ? set[0] : "no --set");
    cli::LayerCheckOptions o;
    o.measured = saved.path;
    o.overrides = set;
    o.out = out_file.path;
    const Result r = layer_check(o);
    REQUIRE(r.code == 0);
    CHECK(r.err.empty());
    std::vector<std::string> overrides{"policy=fdc-uniform-50"};
    overrides.insert(overrides.end(), set.begin(), set.end());
    const sim::Experiment direct = sim::load_experiment(config, overrides, 1);
    const Json j = load_json_file(out_file.path);
    CHECK(j["measured_report"] == saved.path);
    CHECK(j["policy"] == direct.policy.name);
    CHECK(j["cost_model"] == sim::make_cost_model(direct)->describe());
    CHECK(j["provenance"]["batches"] == "prefill:1x512,decode:32x1024,prefill:1x512+decode:32x1024");
    CHECK(j["provenance"]["measured_provenance"]["repeats"] == 3);
    REQUIRE(j["batches"].size() == batches.size());
    for (size_t i = 0; i < batches.size(); ++i) {
      CAPTURE(batches[i].label);
      const auto p = validate::predict_layer(direct, w, batches[i]);
      CHECK(j["batches"][i]["predicted_ms_per_layer"].get<double>() == p.total_s * 1e3);
      const Json before = load_json_file(saved.path)["batches"][i];
      CHECK(j["batches"][i]["measured_ms_per_layer"] == before["measured_ms_per_layer"]);
      CHECK(j["batches"][i]["forward_ms_per_repeat"] == before["forward_ms_per_repeat"]);
    }
    // The re-predicted report is itself a saved report.
    cli::LayerCheckOptions again;
    again.measured = out_file.path;
    const test::SavedReport twice(Json::object());
    again.out = twice.path;
    REQUIRE(layer_check(again).code == 0);
    const Json k = load_json_file(twice.path);
    CHECK(k["batches"] == j["batches"]);
    CHECK(k["provenance"]["measured_provenance"] == j["provenance"]["measured_provenance"]);
  }
}

TEST_CASE("layer-check --per-op: a flag of a GPU run; --measured keeps a report's per-op times") {
  {
    CLI::App app;
    cli::LayerCheckOptions o;
    cli::add_layer_check_command(app, o);
    CHECK_FALSE(o.per_op);
    std::vector<std::string> args{"--per-op", "c.json", "--config", "layer-check"};  // last first
    app.parse(args);
    CHECK(o.per_op);
    const std::string help = app.get_subcommand("layer-check")->help();
    CHECK(help.find("record a CUDA event after every op of every layer") != std::string::npos);
    CHECK(help.find("the layer's total still comes from the pair without events") != std::string::npos);
  }
  {
    CLI::App app;
    cli::LayerCheckOptions o;
    cli::add_layer_check_command(app, o);
    std::vector<std::string> args{"--per-op", "r.json", "--measured", "layer-check"};
    CHECK_THROWS_AS(app.parse(args), CLI::ExcludesError);
  }
  const sim::Experiment run = sim::load_experiment(test::source_path("configs/validate/llama-2-13b-h100.json"), {}, 1);
  const auto batches = validate::parse_layer_batches("decode:32x1024,prefill:1x512");
  const Json written = test::synthetic_report(run, batches, {0, 2, 6}, true);
  const test::SavedReport saved(written);
  const test::SavedReport out_file(Json::object());
  cli::LayerCheckOptions o;
  o.measured = saved.path;
  o.out = out_file.path;
  REQUIRE(layer_check(o).code == 0);
  const Json j = load_json_file(out_file.path);
  for (size_t i = 0; i < batches.size(); ++i) {
    CAPTURE(batches[i].label);
    CHECK(j["batches"][i]["measured_ops_ms"] == written["batches"][i]["measured_ops_ms"]);
    CHECK(j["batches"][i]["measured_ops_ms"].contains("attn_decode"));
  }
}

TEST_CASE("layer-check --measured: refused input (exit 2, naming the file and the key)") {
  SUBCASE("a report without its window") {
    const sim::Experiment run =
        sim::load_experiment(test::source_path("configs/validate/llama-2-13b-h100.json"), {}, 1);
    Json j = test::synthetic_report(run, validate::parse_layer_batches("decode:8x100"), {0, 2, 6});
    j.erase("window");
    const test::SavedReport saved(j);
    cli::LayerCheckOptions o;
    o.measured = saved.path;
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find(saved.path + ": /window: expected an object, found nothing (the key is missing)") !=
          std::string::npos);
  }
  SUBCASE("--measured with --config") {
    auto o = h100();
    o.measured = "report.json";
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("give one of them") != std::string::npos);
  }
  SUBCASE("neither") {
    const Result r = layer_check(cli::LayerCheckOptions{});
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("give --config EXPERIMENT") != std::string::npos);
  }
  SUBCASE("on the command line: --measured excludes --config and the options of a GPU run") {
    for (const char* other : {"--config", "--layers", "--batches", "--gpus"}) {
      CAPTURE(other);
      CLI::App app;
      cli::LayerCheckOptions o;
      cli::add_layer_check_command(app, o);
      // CLI11 takes the arguments last first.
      std::vector<std::string> args{"2", other, "r.json", "--measured", "layer-check"};
      CHECK_THROWS_AS(app.parse(args), CLI::ExcludesError);
    }
  }
}
