#include "validate/calibrate_in_layer.h"

#include <Eigen/Dense>
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

// A report's batches re-predicted with `plain` (the profile without the calibration being made),
// after checking the report was measured on the profile's GPU.
std::vector<LayerCheckRow> repriced(const std::shared_ptr<fit::FittedProfile>& plain, const costmodel::ProfileRef& ref,
                                    const std::string& path) {
  const SavedLayerCheck s = read_layer_check_report(path);
  FDC_INPUT_CHECK(s.context.device.empty() || s.context.device == plain->gpu,
                  path << ": measured on '" << s.context.device << "', but profile '" << ref.name << "' is for '"
                       << plain->gpu << "': calibrate a profile with layers measured on its own GPU");
  Json cfg = s.config;
  cfg["costmodel"] = Json{{"kind", "roofline"}};  // priced with `plain` itself, below
  sim::Experiment e =
      sim::load_experiment_json(cfg, path + " (report config)", std::filesystem::path(path).parent_path().string());
  e.cost_kind = sim::CostModelKind::kProfile;
  e.profile = plain;
  e.profile_ref = ref;
  return repredict_layer_check(e, s);
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
    const std::vector<LayerCheckRow> rows = repriced(plain, ref, path);
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

namespace {

constexpr size_t kKernels = costmodel::kNumDecodeKernels;

// The kernel of most of a point's calls.
size_t main_kernel(const DecodeInLayerPoint& x) {
  return static_cast<size_t>(std::max_element(x.calls.begin(), x.calls.end()) - x.calls.begin());
}

double with_extra_us(const DecodeInLayerPoint& x, const std::array<double, kKernels>& extra) {
  double s = x.predicted_us;
  for (size_t k = 0; k < kKernels; ++k) s += x.calls[k] * extra[k];
  return s;
}

}  // namespace

std::vector<DecodeInLayerPoint> decode_in_layer_points(const fit::FittedProfile& profile,
                                                       const costmodel::ProfileRef& ref,
                                                       const std::vector<std::string>& report_paths) {
  FDC_INPUT_CHECK(!report_paths.empty(), "decode in-layer calibration needs at least one layer-check report");
  auto plain = std::make_shared<fit::FittedProfile>(profile);
  plain->attn_decode_in_layer.clear();  // the laws alone
  std::vector<DecodeInLayerPoint> out;
  constexpr auto kDecode = static_cast<size_t>(costmodel::OpKind::kAttnDecode);
  for (size_t r = 0; r < report_paths.size(); ++r) {
    const std::string& path = report_paths[r];
    int per_op = 0, used = 0;
    for (const LayerCheckRow& row : repriced(plain, ref, path)) {
      if (!row.has_measured_ops) continue;
      ++per_op;
      if (row.kind != "decode") continue;  // prefill and mixed batches: not an engine iteration's decode
      const double measured = row.measured_op_ms[kDecode] * 1e3;
      FDC_INPUT_CHECK(measured > 0, path << ": batch '" << row.label << "' has no measured decode attention time");
      out.push_back({static_cast<int>(r), row.predicted.decode_calls, row.predicted.op_s[kDecode] * 1e6, measured});
      ++used;
    }
    FDC_INPUT_CHECK(per_op > 0, path << ": no batch was measured per op: measure with `fdcsim layer-check --per-op`");
    FDC_INPUT_CHECK(used > 0,
                    path << ": no batch decodes only (measure decode batches, e.g. --batches decode:32x1024)");
  }
  return out;
}

std::array<double, kKernels> decode_in_layer_extra_us(const std::vector<DecodeInLayerPoint>& points) {
  FDC_INPUT_CHECK(!points.empty(), "decode in-layer calibration: no measured decode batches");
  std::vector<size_t> cols;  // the kernels some point runs
  for (size_t k = 0; k < kKernels; ++k)
    if (std::any_of(points.begin(), points.end(), [&](const DecodeInLayerPoint& x) { return x.calls[k] > 0; }))
      cols.push_back(k);
  Eigen::MatrixXd a(static_cast<Eigen::Index>(points.size()), static_cast<Eigen::Index>(cols.size()));
  Eigen::VectorXd b(static_cast<Eigen::Index>(points.size()));
  for (size_t i = 0; i < points.size(); ++i) {
    for (size_t c = 0; c < cols.size(); ++c)
      a(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(c)) = points[i].calls[cols[c]];
    b(static_cast<Eigen::Index>(i)) = points[i].measured_us - points[i].predicted_us;
  }
  const Eigen::VectorXd x = a.colPivHouseholderQr().solve(b);
  std::array<double, kKernels> extra{};
  for (size_t c = 0; c < cols.size(); ++c) extra[cols[c]] = x(static_cast<Eigen::Index>(c));
  return extra;
}

std::map<std::string, fit::InLayerOffset> calibrate_decode_in_layer(const fit::FittedProfile& profile,
                                                                    const costmodel::ProfileRef& ref,
                                                                    const std::vector<std::string>& report_paths) {
  const std::vector<DecodeInLayerPoint> points = decode_in_layer_points(profile, ref, report_paths);
  const std::array<double, kKernels> extra = decode_in_layer_extra_us(points);
  std::array<std::vector<double>, kKernels> before, held;
  std::array<int, kKernels> count{};
  for (const DecodeInLayerPoint& x : points) {
    const size_t k = main_kernel(x);
    ++count[k];
    before[k].push_back(100.0 * std::abs(x.predicted_us / x.measured_us - 1.0));
  }
  const int reports = static_cast<int>(report_paths.size());
  for (int r = 0; reports > 1 && r < reports; ++r) {
    std::vector<DecodeInLayerPoint> others;
    std::array<bool, kKernels> seen{};
    for (const DecodeInLayerPoint& x : points) {
      if (x.report == r) continue;
      others.push_back(x);
      for (size_t k = 0; k < kKernels; ++k) seen[k] = seen[k] || x.calls[k] > 0;
    }
    if (others.empty()) continue;
    const std::array<double, kKernels> e = decode_in_layer_extra_us(others);
    for (const DecodeInLayerPoint& x : points) {
      if (x.report != r) continue;
      bool known = true;
      for (size_t k = 0; k < kKernels; ++k) known = known && (x.calls[k] == 0 || seen[k]);
      if (known) held[main_kernel(x)].push_back(100.0 * std::abs(with_extra_us(x, e) / x.measured_us - 1.0));
    }
  }
  std::map<std::string, fit::InLayerOffset> out;
  for (size_t k = 0; k < kKernels; ++k) {
    if (count[k] == 0) continue;
    fit::InLayerOffset o;
    o.extra_us = extra[k];
    o.points = count[k];
    o.before = summary("the same batches priced by the decode laws alone", before[k]);
    o.held_out = held[k].empty() ? summary("none (no other report runs this kernel)", {})
                                 : summary(
                                       "leave one report out: each report's decode attention time per batch "
                                       "predicted with the other reports' extra times",
                                       held[k]);
    o.note = "calibrated from " + std::to_string(count[k]) + " decode batches of layer-check --per-op reports (" +
             file_names(report_paths) +
             "): the least-squares extra time per call of every decode kernel, over the layers' decode attention "
             "times minus the laws'";
    out[std::string(costmodel::decode_kernel_law(static_cast<costmodel::DecodeKernel>(k)))] = o;
  }
  return out;
}

}  // namespace fdc::validate
