// Calibrating a profile's per-iteration overhead from timelines.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/fitted.h"
#include "sim/experiment.h"
#include "sim/simulator.h"
#include "sim/timeline.h"
#include "validate/calibrate.h"

using namespace fdc;

namespace {

// A 1-GPU H200 run priced by the embedded h200 profile (iteration overhead 200 us, or overhead_us
// when given), as a timeline file.
std::string h200_timeline(const std::string& name, const std::string& device,
                          const std::string& policy = "fdc-uniform-50", double overhead_us = -1,
                          double prefill_scale = 0) {
  Json cfg{{"name", "cal"},
           {"seed", 3},
           {"model", "llama-2-7b"},
           {"hardware", "h200x8"},
           {"policy", policy},
           {"costmodel", {{"kind", "profile"}}},
           {"cluster", {{"servers", 1}}},
           {"scheduler", {{"max_batched_tokens", 2048}}},
           {"workload",
            {{"num_requests", 40},
             {"lengths", {{"source", "sharegpt_embedded"}}},
             {"max_prompt_tokens", 1500},
             {"max_output_tokens", 200},
             {"arrival", {{"process", "poisson"}, {"rate_per_s", 20.0}}}}}};
  sim::Experiment e = sim::load_experiment_json(cfg, "cal.json", "");
  if (overhead_us >= 0 || prefill_scale != 0) {
    auto p = std::make_shared<fit::FittedProfile>(*e.profile);
    if (overhead_us >= 0) p->ops.at("iteration_overhead").alpha_us = overhead_us;
    p->ops.at("iteration_overhead").prefill_scale = prefill_scale;
    e.profile = p;
  }
  auto cost = sim::make_cost_model(e);
  std::stringstream text;
  sim::Simulator s(e, *cost, {nullptr, nullptr, nullptr, &text});
  s.run();
  std::string body = text.str();
  if (!device.empty()) {  // as the engine would write it
    const std::string key = "\"device\":\"\"";
    body.replace(body.find(key), key.size(), "\"device\":\"" + device + "\"");
  }
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path) << body;
  return path;
}

}  // namespace

TEST_CASE("calibration recovers the overhead a timeline was made with, and says what it did") {
  const std::string path = h200_timeline("fdcsim-cal.jsonl", "");
  auto [prof, ref] = sim::load_profile("h200", "", "test");
  const double made_with = prof.ops.at("iteration_overhead").alpha_us;
  prof.ops.at("iteration_overhead").alpha_us = 1000;  // a wrong starting value
  const auto cs = validate::calibrate_overhead(prof, ref, {path});
  REQUIRE(cs.size() == 1);
  const auto& c = cs[0];
  CHECK(c.op == "iteration_overhead/llama-2-7b/tp1sp1");
  CHECK(c.previous_us == 1000);
  CHECK(c.overhead_us == doctest::Approx(made_with).epsilon(0.01));  // integer-ns rounding only
  CHECK(c.prefill_scale == 0);                                       // not asked for
  CHECK(c.prefill_iterations >= 10);
  CHECK(c.iterations > 50);
  CHECK(c.held_out_median_pct < 0.05);
  CHECK(c.before_median_pct > 1.0);  // 800 us too slow before
  const auto fixed = validate::with_overhead(prof, cs, {path});
  const auto& op = fixed.ops.at(c.op);
  CHECK(op.alpha_us == doctest::Approx(made_with).epsilon(0.01));
  CHECK_FALSE(op.extrapolated);
  CHECK(op.note.find("fdcsim-cal.jsonl") != std::string::npos);
  CHECK(op.held_out.points == c.iterations);
  CHECK(fixed.ops.at("iteration_overhead").alpha_us == 1000);  // the general one is left as it was
  // The cost model of that configuration now uses the calibrated constant; others keep the general.
  const auto e = sim::load_experiment_json(sim::read_timeline(path).header.config, "cal", "");
  costmodel::Batch b;
  b.add({1, 100, true});
  const costmodel::FittedCostModel with(e.model, e.dims, e.parallel, fixed, ref), without(e.model, e.dims, e.parallel, prof, ref);
  CHECK((without.iteration_time(b) - with.iteration_time(b)).ns() == doctest::Approx(1000e3 - made_with * 1e3).epsilon(1e-3));
  std::filesystem::remove(path);
}

TEST_CASE("calibration recovers a prefill term, which the cost model applies to prefill rows only") {
  const std::string path = h200_timeline("fdcsim-cal-prefill.jsonl", "", "fdc-uniform-50", 300, -0.08);
  auto [prof, ref] = sim::load_profile("h200", "", "test");
  // Not asked for: no term, and the note does not mention one.
  const auto off = validate::calibrate_overhead(prof, ref, {path});
  REQUIRE(off.size() == 1);
  CHECK(off[0].prefill_scale == 0);
  CHECK(validate::with_overhead(prof, off, {path}).ops.at(off[0].op).note.find("iterations with prefill") ==
        std::string::npos);
  const auto cs = validate::calibrate_overhead(prof, ref, {path}, /*prefill_term=*/true);
  REQUIRE(cs.size() == 1);
  const auto& c = cs[0];
  CHECK(c.overhead_us == doctest::Approx(300).epsilon(0.01));
  CHECK(c.prefill_scale == doctest::Approx(-0.08).epsilon(0.01));
  CHECK(off[0].held_out_median_pct > c.held_out_median_pct);
  CHECK(c.held_out_median_pct < 0.05);
  const auto fixed = validate::with_overhead(prof, cs, {path});
  CHECK(fixed.ops.at(c.op).prefill_scale == doctest::Approx(-0.08).epsilon(0.01));
  CHECK(fixed.ops.at(c.op).note.find("iterations with prefill") != std::string::npos);
  // Written and read back with the profile.
  const std::string file = (std::filesystem::temp_directory_path() / "fdcsim-cal-prefill.json").string();
  fit::write_profile(fixed, "test", file);
  CHECK(fit::read_profile(file).ops.at(c.op).prefill_scale == doctest::Approx(fixed.ops.at(c.op).prefill_scale));
  std::filesystem::remove(file);
  // The cost model: a prefill step costs (ops) x (1 + c) + overhead; a decode step is unchanged.
  const auto e = sim::load_experiment_json(sim::read_timeline(path).header.config, "cal", "");
  auto plain = fixed;
  plain.ops.at(c.op).prefill_scale = 0;
  const costmodel::FittedCostModel with(e.model, e.dims, e.parallel, fixed, ref),
      without(e.model, e.dims, e.parallel, plain, ref);
  costmodel::Batch prefill, decode;
  prefill.add({512, 0, true});
  decode.add({1, 100, true});
  const double overhead_ns = (fixed.ops.at(c.op).alpha_us + fixed.ops.at(c.op).us_per_seq) * 1e3;
  CHECK(static_cast<double>(with.iteration_time(prefill).ns()) - overhead_ns ==
        doctest::Approx((static_cast<double>(without.iteration_time(prefill).ns()) - overhead_ns) *
                        (1 + fixed.ops.at(c.op).prefill_scale))
            .epsilon(1e-6));
  CHECK(with.iteration_time(decode).ns() == without.iteration_time(decode).ns());
  costmodel::OpBreakdown bd;
  CHECK(with.iteration_time(prefill, bd).ns() == with.iteration_time(prefill).ns());
  CHECK(bd.seconds[static_cast<size_t>(costmodel::OpKind::kIterationOverhead)] * 1e9 < overhead_ns);  // negative term
  std::filesystem::remove(path);
}

TEST_CASE("a profile's prefill_scale must be above -1") {
  auto [prof, ref] = sim::load_profile("h200", "", "test");
  prof.ops.at("iteration_overhead").prefill_scale = -0.5;
  const std::string file = (std::filesystem::temp_directory_path() / "fdcsim-cal-bad-scale.json").string();
  fit::write_profile(prof, "test", file);
  std::string text;
  {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const std::string key = "\"prefill_scale\": -0.5";
  REQUIRE(text.find(key) != std::string::npos);
  text.replace(text.find(key), key.size(), "\"prefill_scale\": -1.5");
  std::ofstream(file) << text;
  CHECK_THROWS_WITH_AS(fit::read_profile(file), doctest::Contains("prefill_scale must be > -1, found -1.5"),
                       InputError);
  std::filesystem::remove(file);
}

TEST_CASE("calibrating with a run on another GPU is refused") {
  const std::string path = h200_timeline("fdcsim-cal-h100.jsonl", "NVIDIA H100 80GB HBM3");
  auto [prof, ref] = sim::load_profile("h200", "", "test");
  try {
    validate::calibrate_overhead(prof, ref, {path});
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    const std::string msg = e.what();
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("measured on 'NVIDIA H100 80GB HBM3'") != std::string::npos);
  }
  std::filesystem::remove(path);
}

TEST_CASE("policies with token classes get their own overhead line, which their cost model prefers") {
  const std::string plain = h200_timeline("fdcsim-cal-plain.jsonl", "", "fdc-uniform-50", 300);
  const std::string classes = h200_timeline("fdcsim-cal-classes.jsonl", "", "fdc-table-hybrid-llama-2-7b", 700);
  auto [prof, ref] = sim::load_profile("h200", "", "test");
  const auto cs = validate::calibrate_overhead(prof, ref, {plain, classes});
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].op == "iteration_overhead/llama-2-7b/tp1sp1");
  CHECK(cs[0].overhead_us == doctest::Approx(300).epsilon(0.01));
  CHECK(cs[1].op == "iteration_overhead/llama-2-7b/tp1sp1/classes");
  CHECK(cs[1].overhead_us == doctest::Approx(700).epsilon(0.01));
  const auto fixed = validate::with_overhead(prof, cs, {plain, classes});
  for (const auto& [path, op] : {std::pair{plain, cs[0].op}, std::pair{classes, cs[1].op}}) {
    CAPTURE(path);
    const auto e = sim::load_experiment_json(sim::read_timeline(path).header.config, "cal", "");
    const costmodel::FittedCostModel m(e.model, e.dims, e.parallel, fixed, ref);
    CHECK(m.token_classes() == (path == classes));
    CHECK(std::find(m.used_ops().begin(), m.used_ops().end(), op) != m.used_ops().end());
  }
  // Without a classes line, a token-class policy falls back to its configuration's plain line.
  const auto only_plain = validate::with_overhead(prof, {cs[0]}, {plain});
  const auto e = sim::load_experiment_json(sim::read_timeline(classes).header.config, "cal", "");
  const costmodel::FittedCostModel m(e.model, e.dims, e.parallel, only_plain, ref);
  CHECK(std::find(m.used_ops().begin(), m.used_ops().end(), cs[0].op) != m.used_ops().end());
  std::filesystem::remove(plain);
  std::filesystem::remove(classes);
}
