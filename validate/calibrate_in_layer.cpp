#include "validate/calibrate_in_layer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "costmodel/fit/held_out.h"
#include "sim/experiment.h"
#include "validate/calibrate.h"
#include "validate/layer_check.h"

namespace fdc::validate {
namespace {

constexpr costmodel::OpKind kLayerGemms[] = {costmodel::OpKind::kQkvProj, costmodel::OpKind::kOutProj,
                                             costmodel::OpKind::kMlpUp, costmodel::OpKind::kMlpDown};
constexpr double kKnotSpan = 1.25;  // row counts within this factor of a group's smallest share a knot

double gemm_ms(const std::array<double, costmodel::kNumOpKinds>& op, double scale) {
  double s = 0;
  for (costmodel::OpKind k : kLayerGemms) s += op[static_cast<size_t>(k)] * scale;
  return s;
}

fit::HeldOutError summary(const std::string& method, const std::vector<double>& ape) {
  fit::HeldOutError h{method, static_cast<int>(ape.size()), std::nullopt, std::nullopt};
  if (!ape.empty()) h.median_ape_pct = fit::percentile(ape, 0.5), h.p90_ape_pct = fit::percentile(ape, 0.9);
  return h;
}

}  // namespace

std::vector<InLayerPoint> in_layer_points(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                          const std::vector<std::string>& report_paths) {
  FDC_INPUT_CHECK(!report_paths.empty(), "in-layer calibration needs at least one layer-check report");
  auto plain = std::make_shared<fit::FittedProfile>(profile);
  plain->gemm_in_layer.reset();  // the laws alone
  std::vector<InLayerPoint> out;
  for (size_t r = 0; r < report_paths.size(); ++r) {
    const std::string& path = report_paths[r];
    const SavedLayerCheck s = read_layer_check_report(path);
    FDC_INPUT_CHECK(s.context.device.empty() || s.context.device == profile.gpu,
                    path << ": measured on '" << s.context.device << "', but profile '" << ref.name << "' is for '"
                         << profile.gpu << "': calibrate a profile with layers measured on its own GPU");
    Json cfg = s.config;
    cfg["costmodel"] = Json{{"kind", "roofline"}};  // priced with `profile` itself, below
    sim::Experiment e =
        sim::load_experiment_json(cfg, path + " (report config)", std::filesystem::path(path).parent_path().string());
    e.cost_kind = sim::CostModelKind::kProfile;
    e.profile = plain;
    e.profile_ref = ref;
    const std::vector<LayerCheckRow> rows = repredict_layer_check(e, s);
    int used = 0;
    for (const LayerCheckRow& row : rows) {
      if (!row.has_measured_ops) continue;
      const double measured = gemm_ms(row.measured_op_ms, 1.0), predicted = gemm_ms(row.predicted.op_s, 1e3);
      FDC_INPUT_CHECK(measured > 0, path << ": batch '" << row.label << "' has no measured GEMM time");
      out.push_back({static_cast<int>(r), static_cast<double>(row.new_tokens), predicted, measured});
      ++used;
    }
    FDC_INPUT_CHECK(used > 0, path << ": no batch was measured per op: measure with `fdcsim layer-check --per-op`");
  }
  return out;
}

std::vector<fit::Knot> in_layer_knots(const std::vector<InLayerPoint>& points) {
  FDC_INPUT_CHECK(!points.empty(), "in-layer calibration: no measured batches");
  std::vector<InLayerPoint> p = points;
  std::sort(p.begin(), p.end(), [](const InLayerPoint& a, const InLayerPoint& b) { return a.rows < b.rows; });
  std::vector<fit::Knot> knots;
  for (size_t i = 0; i < p.size();) {
    size_t j = i;
    double pred = 0, meas = 0, log_rows = 0;
    for (; j < p.size() && p[j].rows <= p[i].rows * kKnotSpan; ++j) {
      pred += p[j].predicted_ms, meas += p[j].measured_ms;
      log_rows += std::log2(p[j].rows) * p[j].predicted_ms;
    }
    knots.push_back({log_rows / pred, pred / meas});
    i = j;
  }
  return knots;
}

fit::InLayerGemm calibrate_gemm_in_layer(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                         const std::vector<std::string>& report_paths) {
  const std::vector<InLayerPoint> points = in_layer_points(profile, ref, report_paths);
  fit::InLayerGemm g;
  g.knots = in_layer_knots(points);
  g.points = static_cast<int>(points.size());
  g.rows = {points.front().rows, points.front().rows};
  std::vector<double> before, held;
  for (const InLayerPoint& x : points) {
    g.rows.min = std::min(g.rows.min, x.rows), g.rows.max = std::max(g.rows.max, x.rows);
    before.push_back(100.0 * std::abs(x.predicted_ms / x.measured_ms - 1.0));
  }
  const int reports = static_cast<int>(report_paths.size());
  for (int r = 0; reports > 1 && r < reports; ++r) {
    std::vector<InLayerPoint> others;
    for (const InLayerPoint& x : points)
      if (x.report != r) others.push_back(x);
    const std::vector<fit::Knot> k = in_layer_knots(others);
    for (const InLayerPoint& x : points)
      if (x.report == r)
        held.push_back(100.0 * std::abs(x.predicted_ms / fit::efficiency(k, std::log2(x.rows)) / x.measured_ms - 1.0));
  }
  g.held_out = reports > 1 ? summary(
                                 "leave one report out: each report's GEMM time per batch predicted with the "
                                 "other reports' knots",
                                 held)
                           : summary("none (one report)", {});
  g.before = summary("the same batches priced by the GEMM laws alone", before);
  g.note = "calibrated from " + std::to_string(points.size()) + " batches of layer-check --per-op reports (" +
           file_names(report_paths) +
           "): per knot, the layers' QKV, output-projection and MLP GEMM times priced by the laws over their "
           "measured times";
  return g;
}

}  // namespace fdc::validate
