#include "costmodel/fit/profile_fit.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "costmodel/fit/held_out.h"

namespace fdc::fit {
namespace {

bool is_elementwise(const std::string& op) {
  return op.rfind("norm/", 0) == 0 || op == "residual" || op.rfind("mlp_act/", 0) == 0 ||
         op == "rope_rotate/rope_only" || op == "kv_append" || op == "kv_classify";
}

}  // namespace

std::optional<RepeatSpread> repeat_spread(const std::vector<Sample>& samples) {
  std::vector<double> spreads;
  int fewest = 0;
  for (const Sample& s : samples)
    if (s.repeats > 1) {
      spreads.push_back(100 * s.repeat_spread);
      fewest = fewest ? std::min(fewest, s.repeats) : s.repeats;
    }
  if (spreads.empty()) return std::nullopt;
  return RepeatSpread{static_cast<int>(spreads.size()), fewest, percentile(spreads, 0.5), percentile(spreads, 0.9)};
}

FittedProfile fit_profile(const RawProfile& raw, const FitSwitches& switches) {
  const bool decode_units = switches.decode_units;
  FittedProfile p;
  p.gpu = raw.gpu_name;
  p.peaks = Peaks{raw.peak_tflops, raw.peak_gbps};
  p.peaks_source = raw.peaks_source;
  for (const RawSource& s : raw.sources) {
    Json src = {
        {"folder", s.folder}, {"cases_used", s.used}, {"cases_excluded", s.excluded}, {"provenance", s.provenance}};
    if (s.replaced > 0) src["cases_replaced"] = s.replaced;  // by a later folder's cases; only when some were
    if (s.whole_ops) {  // `fit --whole-ops-from`: its ops from it alone, its peaks not taken
      src["whole_ops"] = true;
      src["peak_cases_not_taken"] = s.peaks_not_taken;
    }
    p.sources.push_back(std::move(src));
  }
  std::map<std::string, std::vector<Sample>> groups;
  for (Sample s : raw.samples) {
    if (s.attn && s.group.rfind("attn_decode", 0) == 0) {
      FDC_INPUT_CHECK(!decode_units || s.attn->units >= 0,
                      s.where << ": decode attention needs the measured GPU's SM count to estimate its plan's units "
                                 "(provenance.json of the raw folder: gpus[0].sms)");
      if (!decode_units) s.attn->units = 0;  // a column of zeros: the least squares leave it out
    }
    if (s.attn && s.group == "attn_prefill") {
      FDC_INPUT_CHECK(!switches.prefill_makespan || s.attn->num_sms > 0,
                      s.where << ": prefill attention needs the measured GPU's SM count to schedule its blocks "
                                 "(provenance.json of the raw folder: gpus[0].sms)");
      if (!switches.prefill_makespan) s.attn->num_sms = 0;  // no SM count: attention_makespan is not tried
    }
    groups[s.group].push_back(std::move(s));
  }
  for (auto& [op, samples] : groups) {
    std::optional<RepeatSpread> spread = repeat_spread(samples);
    p.ops[op] = fit_op(op, std::move(samples), p.peaks, op == "rope_rotate/rotate" || op == "kv_append",
                       decode_units ? raw.decode_plan : std::nullopt);  // the plan its units were estimated with
    p.ops[op].repeat_spread = spread;
  }
  add_carried_ops(p);
  return p;
}

double InLayerCalibration::efficiency(double rows_m) const {
  return rows_m > 0 ? fit::efficiency(knots, std::log2(rows_m)) : 1.0;
}

void add_carried_ops(FittedProfile& p) {
  if (!p.find("iteration_overhead")) {
    OpFit f;
    f.op = "iteration_overhead";
    f.form = FitForm::kConstant;
    f.alpha_us = kAssumedIterationOverheadUs;
    f.extrapolated = true;
    f.note =
        "assumed, not measured: the roofline's iteration_overhead_us default (scheduling, sampling and "
        "launch gaps between iterations); measure iteration_overhead cases to replace it";
    f.held_out = {"none (not measured)", 0, std::nullopt, std::nullopt, {}};
    p.ops[f.op] = f;
  }
  static const char* const kCarried[] = {"attn_prefill", "attn_decode", "kv_append", "kv_classify"};
  if (std::all_of(std::begin(kCarried), std::end(kCarried), [&](const char* op) { return p.find(op) != nullptr; }))
    return;
  // Efficiencies of the measured ops, carried over to attention and the KV cache ops.
  std::vector<double> flops_eff, bytes_eff, alpha;
  bool lt = false;
  for (const auto& [op, f] : p.ops) lt = lt || (op.rfind("gemm/", 0) == 0 && op.find("/cublaslt") != std::string::npos);
  for (const auto& [op, f] : p.ops) {
    if (f.extrapolated) continue;
    if ((f.form == FitForm::kGemmRooflineEfficiency || f.form == FitForm::kGemmRooflineGrid) &&
        (!lt || op.find("/cublaslt") != std::string::npos)) {
      for (const Knot& k : f.knots) flops_eff.push_back(k.efficiency);
      for (const GridPoint& g : f.grid.points) flops_eff.push_back(g.efficiency);
    }
    if (is_elementwise(op) && f.us_per_byte > 0 && p.peaks.gbps > 0) {
      bytes_eff.push_back(std::min(1.0, 1e-3 / f.us_per_byte / p.peaks.gbps));
      alpha.push_back(f.alpha_us);
    }
  }
  if (flops_eff.empty() || bytes_eff.empty() || p.peaks.tflops <= 0 || p.peaks.gbps <= 0) return;
  const double fe = percentile(flops_eff, 0.5), be = percentile(bytes_eff, 0.5), a = percentile(alpha, 0.5);
  for (const char* op : kCarried) {
    if (p.find(op)) continue;
    OpFit f;
    f.op = op;
    f.form = FitForm::kRooflineDerived;
    f.alpha_us = a;
    f.peak_tflops = p.peaks.tflops * fe;
    f.peak_gbps = p.peaks.gbps * be;
    f.extrapolated = true;
    std::ostringstream note;
    note << "roofline-derived, not measured: bytes and flops at the measured peaks (" << p.peaks.tflops << " TFLOP/s, "
         << p.peaks.gbps << " GB/s) times efficiencies carried from the measured ops (flops " << fe
         << ": median GEMM efficiency; bytes " << be << ": median element-wise bandwidth over the copy peak; alpha "
         << a << " us: median element-wise alpha); replaced when "
         << (std::string(op).rfind("attn_", 0) == 0 ? "attention.json is fitted" : "its profile cases are fitted");
    f.note = note.str();
    f.held_out = {"none (not measured)", 0, std::nullopt, std::nullopt, {}};
    p.ops[op] = f;
  }
}

}  // namespace fdc::fit
