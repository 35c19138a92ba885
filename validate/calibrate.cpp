#include "validate/calibrate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "costmodel/fit/held_out.h"
#include "sim/experiment.h"

namespace fdc::validate {

namespace {

struct Iteration {
  double measured_us = 0;
  double ops_us = 0;  // the profile's prediction without its overhead
  int half = 0;       // 0: first half of its timeline, 1: second
};

std::vector<double> ape_pct(const std::vector<Iteration>& its, double overhead_for_half[2]) {
  std::vector<double> e;
  e.reserve(its.size());
  for (const auto& it : its)
    e.push_back(100.0 * std::abs((it.ops_us + overhead_for_half[it.half]) / it.measured_us - 1.0));
  return e;
}

double median_of(std::vector<double> v) { return v.empty() ? 0.0 : fit::percentile(std::move(v), 0.5); }

}  // namespace

std::vector<OverheadCalibration> calibrate_overhead(const fit::FittedProfile& profile,
                                                    const costmodel::ProfileRef& ref,
                                                    const std::vector<std::string>& timeline_paths) {
  FDC_INPUT_CHECK(profile.find("iteration_overhead"),
                  "profile '" << ref.name << "' (" << ref.source << ") has no iteration_overhead op to calibrate");
  FDC_INPUT_CHECK(!timeline_paths.empty(), "calibration needs at least one engine timeline");
  std::vector<std::string> keys;
  std::map<std::string, std::vector<Iteration>> by_key;
  std::map<std::string, double> previous;
  for (const std::string& path : timeline_paths) {
    const sim::Timeline t = sim::read_timeline(path);
    FDC_INPUT_CHECK(t.header.device.empty() || t.header.device == profile.gpu,
                    path << ": measured on '" << t.header.device << "', but profile '" << ref.name << "' is for '"
                         << profile.gpu << "': calibrate a profile with runs on its own GPU");
    FDC_INPUT_CHECK(!t.iterations.empty(), path << ": no iterations to calibrate with");
    Json cfg = t.header.config;
    cfg["costmodel"] = Json{{"kind", "roofline"}};  // this calibration prices the ops with `profile` itself
    const std::string base = std::filesystem::path(path).parent_path().string();
    const sim::Experiment e = sim::load_experiment_json(cfg, path + " (header config)", base);
    const costmodel::FittedCostModel cost(e.model, e.dims, e.parallel, profile, ref);
    const std::string key = costmodel::overhead_op(e.model.name, e.parallel);
    const fit::OpFit* current = profile.find(key) ? profile.find(key) : profile.find("iteration_overhead");
    if (!by_key.count(key)) keys.push_back(key);
    previous[key] = current->alpha_us;
    auto& its = by_key[key];
    const size_t n = t.iterations.size();
    for (size_t i = 0; i < n; ++i) {
      const auto& rec = t.iterations[i];
      Iteration it;
      it.measured_us = static_cast<double>(rec.duration_ns) * 1e-3;
      it.ops_us = static_cast<double>(cost.iteration_time(rec.batch).ns()) * 1e-3 - current->alpha_us;
      it.half = i < n / 2 ? 0 : 1;
      its.push_back(it);
    }
  }
  std::vector<OverheadCalibration> out;
  for (const std::string& key : keys) {
    const auto& its = by_key[key];
    OverheadCalibration c;
    c.op = key;
    c.previous_us = previous[key];
    c.iterations = static_cast<int>(its.size());
    std::vector<double> res[2], all;
    for (const auto& it : its) {
      res[it.half].push_back(it.measured_us - it.ops_us);
      all.push_back(it.measured_us - it.ops_us);
    }
    c.overhead_us = median_of(all);
    c.residual_p10_us = fit::percentile(all, 0.1);
    c.residual_p90_us = fit::percentile(all, 0.9);
    // Held out: each half predicted with the other half's constant.
    double cross[2] = {median_of(res[1]), median_of(res[0])};
    if (res[0].empty() || res[1].empty()) cross[0] = cross[1] = c.overhead_us;  // one iteration: nothing held out
    const auto held = ape_pct(its, cross);
    c.held_out_median_pct = fit::percentile(held, 0.5);
    c.held_out_p90_pct = fit::percentile(held, 0.9);
    double before[2] = {c.previous_us, c.previous_us};
    const auto prev = ape_pct(its, before);
    c.before_median_pct = fit::percentile(prev, 0.5);
    c.before_p90_pct = fit::percentile(prev, 0.9);
    out.push_back(c);
  }
  return out;
}

fit::FittedProfile with_overhead(fit::FittedProfile profile, const std::vector<OverheadCalibration>& calibrations,
                                 const std::vector<std::string>& timeline_paths) {
  std::string files;
  for (const auto& p : timeline_paths) files += (files.empty() ? "" : ", ") + std::filesystem::path(p).filename().string();
  for (const OverheadCalibration& c : calibrations) {
    fit::OpFit op = profile.ops.at("iteration_overhead");  // the same form, another constant
    op.op = c.op;
    op.form = fit::FitForm::kConstant;
    op.alpha_us = c.overhead_us;
    op.extrapolated = false;
    op.note = "calibrated from " + std::to_string(c.iterations) + " engine iterations (" + files +
              "): median of measured iteration time minus the sum of the profile's ops; residual P10/P90 " +
              std::to_string(static_cast<int>(std::lround(c.residual_p10_us))) + "/" +
              std::to_string(static_cast<int>(std::lround(c.residual_p90_us))) + " us";
    op.held_out.method = "2-fold over time: each half of every timeline predicted with the other half's constant";
    op.held_out.points = c.iterations;
    op.held_out.median_ape_pct = c.held_out_median_pct;
    op.held_out.p90_ape_pct = c.held_out_p90_pct;
    op.candidates.clear();
    profile.ops[c.op] = std::move(op);
  }
  return profile;
}

}  // namespace fdc::validate
