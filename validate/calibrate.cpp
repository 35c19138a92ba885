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
  double seqs = 0;    // sequences in the batch
  int half = 0;       // 0: first half of its timeline, 1: second
};

using Line = std::pair<double, double>;  // overhead = first + second x sequences

std::vector<double> ape_pct(const std::vector<Iteration>& its, const Line line_for_half[2]) {
  std::vector<double> e;
  e.reserve(its.size());
  for (const auto& it : its) {
    const Line& l = line_for_half[it.half];
    e.push_back(100.0 * std::abs((it.ops_us + l.first + l.second * it.seqs) / it.measured_us - 1.0));
  }
  return e;
}

Line fit_half(const std::vector<Iteration>& its, int half) {
  std::vector<double> x, y;
  for (const auto& it : its)
    if (half < 0 || it.half == half) x.push_back(it.seqs), y.push_back(it.measured_us - it.ops_us);
  return lad_line(x, y);
}

double median_of(std::vector<double> v) { return v.empty() ? 0.0 : fit::percentile(std::move(v), 0.5); }

}  // namespace

std::string file_names(const std::vector<std::string>& paths) {
  std::string files;
  for (const auto& p : paths) files += (files.empty() ? "" : ", ") + std::filesystem::path(p).filename().string();
  return files;
}

std::pair<double, double> lad_line(const std::vector<double>& x, const std::vector<double>& y) {
  FDC_CHECK(x.size() == y.size() && !x.empty(), "lad_line: " << x.size() << " x and " << y.size() << " y");
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  if (*hi - *lo < 1e-12) return {median_of(y), 0.0};
  // Iteratively reweighted least squares for the L1 line, started from the least-squares line.
  double a = 0, b = 0;
  std::vector<double> w(x.size(), 1.0);
  for (int iter = 0; iter < 50; ++iter) {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      sw += w[i], sx += w[i] * x[i], sy += w[i] * y[i], sxx += w[i] * x[i] * x[i], sxy += w[i] * x[i] * y[i];
    }
    const double det = sw * sxx - sx * sx;
    if (std::abs(det) < 1e-12 * std::max(1.0, sw * sxx)) break;
    const double nb = (sw * sxy - sx * sy) / det, na = (sy - nb * sx) / sw;
    const bool done = iter > 0 && std::abs(na - a) < 1e-6 * (1 + std::abs(a)) && std::abs(nb - b) < 1e-6 * (1 + std::abs(b));
    a = na, b = nb;
    if (done) break;
    for (size_t i = 0; i < x.size(); ++i) w[i] = 1.0 / std::max(std::abs(y[i] - a - b * x[i]), 1e-3);
  }
  return {a, b};
}

std::vector<OverheadCalibration> calibrate_overhead(const fit::FittedProfile& profile,
                                                    const costmodel::ProfileRef& ref,
                                                    const std::vector<std::string>& timeline_paths) {
  FDC_INPUT_CHECK(profile.find("iteration_overhead"),
                  "profile '" << ref.name << "' (" << ref.source << ") has no iteration_overhead op to calibrate");
  FDC_INPUT_CHECK(!timeline_paths.empty(), "calibration needs at least one engine timeline");
  std::vector<std::string> keys;
  std::map<std::string, std::vector<Iteration>> by_key;
  std::map<std::string, double> previous, previous_per_seq;
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
    // Policies with token classes get their own line (their iterations classify prompts and plan
    // two-class decode units); `current` is the overhead the cost model priced them with.
    const std::string key = costmodel::overhead_op(e.model.name, e.parallel, cost.token_classes());
    const std::string plain = costmodel::overhead_op(e.model.name, e.parallel);
    const fit::OpFit* current = profile.find(key)     ? profile.find(key)
                                : profile.find(plain) ? profile.find(plain)
                                                      : profile.find("iteration_overhead");
    if (!by_key.count(key)) keys.push_back(key);
    previous[key] = current->alpha_us;
    previous_per_seq[key] = current->us_per_seq;
    auto& its = by_key[key];
    const size_t n = t.iterations.size();
    for (size_t i = 0; i < n; ++i) {
      const auto& rec = t.iterations[i];
      Iteration it;
      it.measured_us = static_cast<double>(rec.duration_ns) * 1e-3;
      it.seqs = static_cast<double>(rec.batch.totals.num_seqs);
      it.ops_us = static_cast<double>(cost.iteration_time(rec.batch).ns()) * 1e-3 - current->alpha_us -
                  current->us_per_seq * it.seqs;
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
    std::vector<double> all;
    int in_half[2] = {0, 0};
    for (const auto& it : its) {
      all.push_back(it.measured_us - it.ops_us);
      ++in_half[it.half];
    }
    const Line line = fit_half(its, -1);
    c.overhead_us = line.first;
    c.per_seq_us = line.second;
    c.residual_p10_us = fit::percentile(all, 0.1);
    c.residual_p90_us = fit::percentile(all, 0.9);
    // Held out: each half predicted with the line fitted on the other half.
    Line cross[2] = {fit_half(its, 1), fit_half(its, 0)};
    if (in_half[0] == 0 || in_half[1] == 0) cross[0] = cross[1] = line;  // one iteration: nothing held out
    const auto held = ape_pct(its, cross);
    c.held_out_median_pct = fit::percentile(held, 0.5);
    c.held_out_p90_pct = fit::percentile(held, 0.9);
    const Line before[2] = {{c.previous_us, previous_per_seq[key]}, {c.previous_us, previous_per_seq[key]}};
    const auto prev = ape_pct(its, before);
    c.before_median_pct = fit::percentile(prev, 0.5);
    c.before_p90_pct = fit::percentile(prev, 0.9);
    out.push_back(c);
  }
  return out;
}

fit::FittedProfile with_overhead(fit::FittedProfile profile, const std::vector<OverheadCalibration>& calibrations,
                                 const std::vector<std::string>& timeline_paths) {
  const std::string files = file_names(timeline_paths);
  for (const OverheadCalibration& c : calibrations) {
    fit::OpFit op = profile.ops.at("iteration_overhead");  // the same form, another constant
    op.op = c.op;
    op.form = fit::FitForm::kConstant;
    op.alpha_us = c.overhead_us;
    op.us_per_seq = c.per_seq_us;
    op.extrapolated = false;
    op.note = "calibrated from " + std::to_string(c.iterations) + " engine iterations (" + files +
              "): median line (least absolute deviations) of measured iteration time minus the sum of the "
              "profile's ops, over the batch's sequences; residual P10/P90 " +
              std::to_string(static_cast<int>(std::lround(c.residual_p10_us))) + "/" +
              std::to_string(static_cast<int>(std::lround(c.residual_p90_us))) +
              " us; held out 2-fold over time: each half of every timeline predicted with the line of the other halves";
    op.held_out.method = "2-fold over time";  // each half of every timeline predicted with the other half's line
    op.held_out.points = c.iterations;
    op.held_out.median_ape_pct = c.held_out_median_pct;
    op.held_out.p90_ape_pct = c.held_out_p90_pct;
    op.candidates.clear();
    profile.ops[c.op] = std::move(op);
  }
  return profile;
}

}  // namespace fdc::validate
