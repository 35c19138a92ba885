// One op's fitted law, its query API and its fitting. Forms (docs/fit.md):
//  - gemm_roofline_efficiency: t = max(flops / peak_flops, bytes / peak_bw) / eff(log2 flops);
//  - alpha_beta: t = alpha + bytes / bandwidth (+ flops / rate for the fused RoPE + rotation);
//  - alpha_beta_efficiency: alpha_beta / eff(log2 bytes).
// eff is piecewise-linear in log2 of the axis between knots (one per measured size), constant
// beyond the ends; a query outside the measured ranges is answered and flagged as extrapolated.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "costmodel/fit/held_out.h"
#include "costmodel/fit/raw_reader.h"

namespace fdc::fit {

enum class FitForm { kGemmRooflineEfficiency, kAlphaBeta, kAlphaBetaEfficiency };
const char* form_name(FitForm f);
std::optional<FitForm> form_from_name(const std::string& s);

struct Knot {
  double log2_axis = 0;   // log2 of flops (GEMMs) or bytes (the rest)
  double efficiency = 1;  // base time / measured time
};

struct Range {
  double min = 0, max = 0;
  bool contains(double v) const { return v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9); }
};

struct CandidateError {  // a form tried for this op and its held-out error
  FitForm form;
  HeldOutError held_out;
};

struct OpFit {
  std::string op;
  FitForm form = FitForm::kAlphaBeta;
  double alpha_us = 0, us_per_byte = 0, us_per_flop = 0;  // alpha-beta forms
  double peak_tflops = 0, peak_gbps = 0;                  // GEMM roofline
  std::vector<Knot> knots;
  Range axis;                                      // flops (GEMMs) or bytes: the measured range
  std::optional<Range> m_range, n_range, k_range;  // GEMMs
  HeldOutError held_out;
  std::vector<CandidateError> candidates;
  const char* axis_name() const { return form == FitForm::kGemmRooflineEfficiency ? "flops" : "bytes"; }
};

// A query: m, n, k for GEMMs (bytes and flops then follow from ops.h); bytes (and flops for the
// fused RoPE + rotation) for the rest.
struct OpQuery {
  double bytes = 0, flops = 0, m = 0, n = 0, k = 0;
  static OpQuery gemm(double m, double n, double k);
  static OpQuery of(const Sample& s);
};

struct Prediction {
  double time_us = 0;
  bool extrapolated = false;  // outside the measured grid: the number is a guess, never silent
  std::string why;            // which range was left, when extrapolated
};

Prediction predict(const OpFit& fit, const OpQuery& q);

struct Peaks {
  double tflops = 0, gbps = 0;
};

// Fits one op from its samples (all of one group); GEMMs need the peaks, `with_flops` adds the
// flops term to the alpha-beta forms. Alpha-beta ops take the efficiency curve only when it lowers
// the held-out error.
OpFit fit_op(const std::string& op, std::vector<Sample> samples, const Peaks& peaks, bool with_flops);

}  // namespace fdc::fit
