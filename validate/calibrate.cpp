#include "validate/calibrate.h"

#include <Eigen/Dense>
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
  double ops_us = 0;      // the profile's prediction without its overhead
  double seqs = 0;        // sequences in the batch
  double prefill_us = 0;  // ops_us times the batch's share of prefill rows
  int half = 0;           // 0: first half of its timeline, 1: second
};

// overhead = a + b x sequences + c x prefill_us
struct Line {
  double a = 0, b = 0, c = 0;
  double at(const Iteration& it) const { return a + b * it.seqs + c * it.prefill_us; }
};

// The least-absolute-deviation fit of measured - ops over the terms (iteratively reweighted least
// squares, Eigen's QR, started from least squares): the prefill term only with at least
// kMinPrefillIterations of them, the per-sequence term only when the batches' sizes differ.
constexpr int kMinPrefillIterations = 10;

Line lad_fit(const std::vector<const Iteration*>& its, bool prefill_term) {
  int prefill = 0;
  double lo = its.empty() ? 0 : its[0]->seqs, hi = lo;
  for (const Iteration* it : its) {
    prefill += it->prefill_us > 0 ? 1 : 0;
    lo = std::min(lo, it->seqs), hi = std::max(hi, it->seqs);
  }
  const bool use_seqs = hi - lo > 1e-12, use_prefill = prefill_term && prefill >= kMinPrefillIterations;
  const Eigen::Index n = static_cast<Eigen::Index>(its.size()), k = 1 + (use_seqs ? 1 : 0) + (use_prefill ? 1 : 0);
  Eigen::MatrixXd x(n, k);
  Eigen::VectorXd y(n), w = Eigen::VectorXd::Ones(n), coef = Eigen::VectorXd::Zero(k);
  for (Eigen::Index i = 0; i < n; ++i) {
    const Iteration& it = *its[static_cast<size_t>(i)];
    Eigen::Index j = 0;
    x(i, j++) = 1.0;
    if (use_seqs) x(i, j++) = it.seqs;
    if (use_prefill) x(i, j++) = it.prefill_us;
    y(i) = it.measured_us - it.ops_us;
  }
  for (int iter = 0; iter < 50; ++iter) {
    const Eigen::VectorXd sw = w.cwiseSqrt();
    const Eigen::VectorXd next = (sw.asDiagonal() * x).colPivHouseholderQr().solve(sw.cwiseProduct(y));
    const bool done = iter > 0 && ((next - coef).array().abs() <= 1e-6 * (1 + coef.array().abs())).all();
    coef = next;
    if (done) break;
    w = ((y - x * coef).array().abs().max(1e-3)).inverse().matrix();
  }
  Line l;
  Eigen::Index j = 0;
  l.a = coef(j++);
  if (use_seqs) l.b = coef(j++);
  if (use_prefill) l.c = coef(j++);
  return l;
}

std::vector<double> ape_pct(const std::vector<Iteration>& its, const Line line_for_half[2]) {
  std::vector<double> e;
  e.reserve(its.size());
  for (const auto& it : its)
    e.push_back(100.0 * std::abs((it.ops_us + line_for_half[it.half].at(it)) / it.measured_us - 1.0));
  return e;
}

Line fit_half(const std::vector<Iteration>& its, int half, bool prefill_term) {
  std::vector<const Iteration*> in;
  for (const auto& it : its)
    if (half < 0 || it.half == half) in.push_back(&it);
  return lad_fit(in, prefill_term);
}

}  // namespace

std::string file_names(const std::vector<std::string>& paths) {
  std::string files;
  for (const auto& p : paths) files += (files.empty() ? "" : ", ") + std::filesystem::path(p).filename().string();
  return files;
}

std::vector<OverheadCalibration> calibrate_overhead(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                                    const std::vector<std::string>& timeline_paths, bool prefill_term) {
  FDC_INPUT_CHECK(profile.find("iteration_overhead"),
                  "profile '" << ref.name << "' (" << ref.source << ") has no iteration_overhead op to calibrate");
  FDC_INPUT_CHECK(!timeline_paths.empty(), "calibration needs at least one engine timeline");
  std::vector<std::string> keys;
  std::map<std::string, std::vector<Iteration>> by_key;
  std::map<std::string, Line> previous;
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
    previous[key] = Line{current->alpha_us, current->us_per_seq, current->prefill_scale};
    auto& its = by_key[key];
    const size_t n = t.iterations.size();
    for (size_t i = 0; i < n; ++i) {
      const auto& rec = t.iterations[i];
      Iteration it;
      it.measured_us = static_cast<double>(rec.duration_ns) * 1e-3;
      it.seqs = static_cast<double>(rec.batch.totals.num_seqs);
      // The prediction is ops x (1 + prefill_scale x share) + alpha + per-seq x seqs.
      const double share = rec.batch.totals.prefill_share();
      it.ops_us = (static_cast<double>(cost.iteration_time(rec.batch).ns()) * 1e-3 - current->alpha_us -
                   current->us_per_seq * it.seqs) /
                  (1.0 + current->prefill_scale * share);
      it.prefill_us = it.ops_us * share;
      it.half = i < n / 2 ? 0 : 1;
      its.push_back(it);
    }
  }
  std::vector<OverheadCalibration> out;
  for (const std::string& key : keys) {
    const auto& its = by_key[key];
    OverheadCalibration c;
    c.op = key;
    c.previous_us = previous[key].a;
    c.iterations = static_cast<int>(its.size());
    std::vector<double> all;
    int in_half[2] = {0, 0};
    for (const auto& it : its) {
      all.push_back(it.measured_us - it.ops_us);
      ++in_half[it.half];
    }
    const Line line = fit_half(its, -1, prefill_term);
    c.overhead_us = line.a;
    c.per_seq_us = line.b;
    c.prefill_scale = line.c;
    c.prefill_iterations =
        static_cast<int>(std::count_if(its.begin(), its.end(), [](const Iteration& it) { return it.prefill_us > 0; }));
    c.residual_p10_us = fit::percentile(all, 0.1);
    c.residual_p90_us = fit::percentile(all, 0.9);
    // Held out: each half predicted with the line fitted on the other half.
    Line cross[2] = {fit_half(its, 1, prefill_term), fit_half(its, 0, prefill_term)};
    if (in_half[0] == 0 || in_half[1] == 0) cross[0] = cross[1] = line;  // one iteration: nothing held out
    const auto held = ape_pct(its, cross);
    c.held_out_median_pct = fit::percentile(held, 0.5);
    c.held_out_p90_pct = fit::percentile(held, 0.9);
    const Line before[2] = {previous[key], previous[key]};
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
    op.prefill_scale = c.prefill_scale;
    op.extrapolated = false;
    op.note = "calibrated from " + std::to_string(c.iterations) + " engine iterations (" + files +
              "): median line (least absolute deviations) of measured iteration time minus the sum of the "
              "profile's ops, over the batch's sequences" +
              (c.prefill_scale != 0 ? " and the ops' time of its prefill rows (" +
                                          std::to_string(c.prefill_iterations) + " iterations with prefill)"
                                    : std::string()) +
              "; residual P10/P90 " + std::to_string(static_cast<int>(std::lround(c.residual_p10_us))) + "/" +
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
