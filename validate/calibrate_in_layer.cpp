#include "validate/calibrate_in_layer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <memory>
#include <span>

#include "core/error.h"
#include "costmodel/fit/held_out.h"
#include "sim/experiment.h"
#include "validate/calibrate.h"
#include "validate/layer_check.h"

namespace fdc::validate {
namespace {

constexpr costmodel::OpKind kLayerGemms[] = {costmodel::OpKind::kQkvProj, costmodel::OpKind::kOutProj,
                                             costmodel::OpKind::kMlpUp, costmodel::OpKind::kMlpDown};
constexpr costmodel::OpKind kPrefillAttention[] = {costmodel::OpKind::kAttnPrefill};
constexpr double kKnotSpan = 1.25;  // row counts within this factor of a group's smallest share a knot

struct TargetInfo {
  std::span<const costmodel::OpKind> ops;
  const char* name;  // in messages and the note
  const char* ops_text;
};

TargetInfo info(InLayerTarget t) {
  switch (t) {
    case InLayerTarget::kGemms:
      return {kLayerGemms, "GEMM", "the layers' QKV, output-projection and MLP GEMM times"};
    case InLayerTarget::kAttnPrefill:
      return {kPrefillAttention, "prefill attention", "the layers' prefill attention times"};
    case InLayerTarget::kElementwise:
      break;
  }
  return {costmodel::kElementwiseOps, "element-wise",
          "the layers' norm, RoPE (+ rotation), KV append, residual and activation times"};
}

double ops_ms(std::span<const costmodel::OpKind> ops, const std::array<double, costmodel::kNumOpKinds>& op,
              double scale) {
  double s = 0;
  for (costmodel::OpKind k : ops) s += op[static_cast<size_t>(k)] * scale;
  return s;
}

// A batch's rows on the target's axis: new tokens (GEMMs, element-wise ops) or prompt tokens
// (prefill attention).
double rows_of(InLayerTarget t, const LayerCheckRow& row) {
  if (t != InLayerTarget::kAttnPrefill) return static_cast<double>(row.new_tokens);
  double prompt = 0;
  for (const LayerBatch& b : parse_layer_batches(row.label))
    for (const BatchPart& p : b.parts)
      if (p.kind == PartKind::kPrefill) prompt += static_cast<double>(p.seqs) * p.new_tokens;
  return prompt;
}

fit::HeldOutError summary(const std::string& method, const std::vector<double>& ape) {
  fit::HeldOutError h{method, static_cast<int>(ape.size()), std::nullopt, std::nullopt, {}};
  if (!ape.empty()) h.median_ape_pct = fit::percentile(ape, 0.5), h.p90_ape_pct = fit::percentile(ape, 0.9);
  return h;
}

}  // namespace

std::optional<fit::InLayerCalibration>& in_layer_of(fit::FittedProfile& profile, InLayerTarget target) {
  switch (target) {
    case InLayerTarget::kGemms:
      return profile.gemm_in_layer;
    case InLayerTarget::kAttnPrefill:
      return profile.attn_prefill_in_layer;
    case InLayerTarget::kElementwise:
      break;
  }
  return profile.elementwise_in_layer;
}

std::vector<InLayerPoint> in_layer_points(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                          const std::vector<std::string>& report_paths, InLayerTarget target) {
  FDC_INPUT_CHECK(!report_paths.empty(), "in-layer calibration needs at least one layer-check report");
  const TargetInfo t = info(target);
  auto plain = std::make_shared<fit::FittedProfile>(profile);
  in_layer_of(*plain, target).reset();  // the laws alone
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
    int per_op = 0, used = 0;
    for (const LayerCheckRow& row : rows) {
      if (!row.has_measured_ops) continue;
      ++per_op;
      const double rows_n = rows_of(target, row);
      if (rows_n <= 0) continue;  // a batch without the target's ops (decode only, for prefill attention)
      const double measured = ops_ms(t.ops, row.measured_op_ms, 1.0),
                   predicted = ops_ms(t.ops, row.predicted.op_s, 1e3);
      FDC_INPUT_CHECK(measured > 0, path << ": batch '" << row.label << "' has no measured " << t.name << " time");
      out.push_back({static_cast<int>(r), rows_n, predicted, measured});
      ++used;
    }
    FDC_INPUT_CHECK(per_op > 0, path << ": no batch was measured per op: measure with `fdcsim layer-check --per-op`");
    FDC_INPUT_CHECK(used > 0, path << ": no batch runs " << t.name << " (measure batches that do)");
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

fit::InLayerCalibration calibrate_in_layer(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                           const std::vector<std::string>& report_paths, InLayerTarget target) {
  const TargetInfo t = info(target);
  const std::vector<InLayerPoint> points = in_layer_points(profile, ref, report_paths, target);
  fit::InLayerCalibration g;
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
  g.held_out = reports > 1 ? summary(std::string("leave one report out: each report's ") + t.name +
                                         " time per batch predicted with the other reports' knots",
                                     held)
                           : summary("none (one report)", {});
  g.before = summary(std::string("the same batches priced by the ") + t.name + " laws alone", before);
  g.note = "calibrated from " + std::to_string(points.size()) + " batches of layer-check --per-op reports (" +
           file_names(report_paths) + "): per knot, " + t.ops_text + " priced by the laws over their measured times";
  return g;
}

}  // namespace fdc::validate
