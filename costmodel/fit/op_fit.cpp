#include "costmodel/fit/op_fit.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "core/error.h"
#include "costmodel/fit/least_squares.h"
#include "costmodel/ops.h"
#include "costmodel/prefill_tiles.h"

namespace fdc::fit {

double efficiency(const std::vector<Knot>& knots, double log2_axis) {
  if (knots.empty()) return 1.0;
  if (log2_axis <= knots.front().log2_axis) return knots.front().efficiency;
  if (log2_axis >= knots.back().log2_axis) return knots.back().efficiency;
  const auto hi =
      std::upper_bound(knots.begin(), knots.end(), log2_axis, [](double v, const Knot& k) { return v < k.log2_axis; });
  const auto lo = hi - 1;
  const double w = (log2_axis - lo->log2_axis) / (hi->log2_axis - lo->log2_axis);
  return lo->efficiency + w * (hi->efficiency - lo->efficiency);
}

namespace {

bool is_gemm(FitForm f) { return f == FitForm::kGemmRooflineEfficiency || f == FitForm::kGemmRooflineGrid; }

// Piecewise-linear in x through (x, y) pairs sorted by x, constant beyond the ends; `clamped` (when
// given) is set where x lies beyond them.
double interpolate(const std::vector<std::pair<double, double>>& xy, double x, bool* clamped = nullptr) {
  const bool outside = x < xy.front().first || x > xy.back().first;
  if (clamped && outside) *clamped = true;
  if (x <= xy.front().first) return xy.front().second;
  if (x >= xy.back().first) return xy.back().second;
  const auto hi = std::upper_bound(xy.begin(), xy.end(), x, [](double v, const auto& p) { return v < p.first; });
  const auto lo = hi - 1;
  return lo->second + (x - lo->first) / (hi->first - lo->first) * (hi->second - lo->second);
}

// Across the lines (sorted by `at`) at `at`, each line read at x: the two lines around `at`,
// interpolated linearly between them, clamped to the first or last line beyond the ends. `clamped`
// is set where `at` lies beyond the lines or x beyond a line it reads.
double across(const std::vector<GemmGrid::Line>& lines, double at, double x, bool* clamped) {
  if (at < lines.front().at || at > lines.back().at) *clamped = true;
  if (at <= lines.front().at) return interpolate(lines.front().xy, x, clamped);
  if (at >= lines.back().at) return interpolate(lines.back().xy, x, clamped);
  const auto hi =
      std::upper_bound(lines.begin(), lines.end(), at, [](double v, const GemmGrid::Line& l) { return v < l.at; });
  const auto lo = hi - 1;
  const double w = (at - lo->at) / (hi->at - lo->at);
  return (1 - w) * interpolate(lo->xy, x, clamped) + w * interpolate(hi->xy, x, clamped);
}

// Lines of (at, x, y) triples: grouped by equal `at`, equal x within a line averaged.
std::vector<GemmGrid::Line> lines_of(std::vector<std::array<double, 3>> v) {
  std::sort(v.begin(), v.end());
  std::vector<GemmGrid::Line> lines;
  std::vector<int> count;
  for (const auto& [at, x, y] : v) {
    if (lines.empty() || lines.back().at != at) lines.push_back({at, {}}), count.clear();
    auto& xy = lines.back().xy;
    if (!xy.empty() && xy.back().first == x) {
      xy.back().second = (xy.back().second * count.back() + y) / (count.back() + 1);
      ++count.back();
    } else {
      xy.push_back({x, y});
      count.push_back(1);
    }
  }
  return lines;
}

double axis_value(FitForm f, const OpQuery& q) { return is_gemm(f) ? q.flops : q.bytes; }

// The attention_linear features, in the order of its coefficients.
std::vector<double> attention_features(const OpQuery& q, bool on_flops) {
  const double straggler = straggler_work(q, on_flops);
  return {1.0, q.bytes, q.flops, q.seqs, q.balanced * straggler, (1 - q.balanced) * straggler, q.stage_bytes, q.units};
}

// The attention_tiles features, in the order of its coefficients.
std::vector<double> tile_features(const OpQuery& q) {
  return {1.0, q.padded_flops, q.block_elems, q.longest_block_flops, q.flops};
}

// The attention_makespan features: attention_tiles' and the makespan at each padded width.
std::vector<double> makespan_features(const OpQuery& q) {
  std::vector<double> x = tile_features(q);
  x.push_back(q.makespan.flops_w64);
  x.push_back(q.makespan.flops_w128);
  return x;
}

// The attention_tiles law's time (attention_makespan adds its makespan columns to it).
double tile_law_us(const OpFit& fit, const OpQuery& q) {
  return fit.alpha_us + fit.us_per_padded_flop * q.padded_flops + fit.us_per_block_elem * q.block_elems +
         fit.us_per_longest_flop * q.longest_block_flops + fit.us_per_flop * q.flops;
}

double base_us(const OpFit& fit, const OpQuery& q) {
  switch (fit.base_form()) {
    case FitForm::kGemmRooflineEfficiency:
    case FitForm::kGemmRooflineGrid:
      return std::max(q.flops / (fit.peak_tflops * 1e6), q.bytes / (fit.peak_gbps * 1e3));
    case FitForm::kRooflineDerived:
      return fit.alpha_us + std::max(q.flops / (fit.peak_tflops * 1e6), q.bytes / (fit.peak_gbps * 1e3));
    case FitForm::kConstant:
      return fit.alpha_us + fit.us_per_seq * q.seqs;
    case FitForm::kAttentionLinear:
    case FitForm::kAttentionLinearEfficiency:
    case FitForm::kAttentionNeighbours:  // not a base (base_form), listed for the switch's sake
    case FitForm::kAttentionPrefillNeighbours: {
      const std::vector<double> x = attention_features(q, fit.straggler_on_flops);
      return fit.alpha_us + fit.us_per_byte * x[1] + fit.us_per_flop * x[2] + fit.us_per_seq * x[3] +
             fit.us_per_straggler * x[4] + fit.us_per_straggler_unbalanced * x[5] + fit.us_per_stage_byte * x[6] +
             fit.us_per_unit * x[7];
    }
    case FitForm::kAttentionTiles:
      FDC_CHECK(q.padded_flops > 0, fit.op << ": an attention_tiles query needs the padded tile work");
      return tile_law_us(fit, q);
    case FitForm::kAttentionMakespan:
      FDC_CHECK(q.padded_flops > 0 && q.makespan.flops_w64 + q.makespan.flops_w128 > 0,
                fit.op << ": an attention_makespan query needs the padded tile work and the blocks' makespan");
      return tile_law_us(fit, q) + fit.us_per_makespan_flop_w64 * q.makespan.flops_w64 +
             fit.us_per_makespan_flop_w128 * q.makespan.flops_w128;
    case FitForm::kAlphaBeta:
    case FitForm::kAlphaBetaEfficiency:
      break;
  }
  return fit.alpha_us + fit.us_per_byte * q.bytes + fit.us_per_flop * q.flops;
}

Range range_of(const std::vector<Sample>& s, double Sample::*field) {
  Range r{s[0].*field, s[0].*field};
  for (const Sample& x : s) r.min = std::min(r.min, x.*field), r.max = std::max(r.max, x.*field);
  return r;
}

// The fit of one form on the given samples (no held-out error); `curve_on_flops`: an
// alpha_beta_efficiency curve over the flops slot.
OpFit fit_form(FitForm form, const std::vector<Sample>& s, const Peaks& peaks, bool with_flops,
               bool curve_on_flops = false, bool interpolation_first = false) {
  OpFit fit;
  fit.form = form;
  fit.curve_on_flops = form == FitForm::kAlphaBetaEfficiency && curve_on_flops;
  if (is_gemm(form)) {
    fit.peak_tflops = peaks.tflops, fit.peak_gbps = peaks.gbps;
  } else {
    std::vector<std::vector<double>> rows;
    std::vector<double> t;
    for (const Sample& x : s) {
      rows.push_back(with_flops ? std::vector<double>{1.0, x.bytes, x.flops} : std::vector<double>{1.0, x.bytes});
      t.push_back(x.time_us);
    }
    const std::vector<double> c = relative_nnls(rows, t);
    fit.alpha_us = c[0], fit.us_per_byte = c[1], fit.us_per_flop = with_flops ? c[2] : 0.0;
  }
  if (form == FitForm::kGemmRooflineGrid) {
    std::vector<GridPoint> points;
    for (const Sample& x : s) points.push_back({x.m, x.n, x.k, base_us(fit, OpQuery::of(x)) / x.time_us});
    fit.grid = GemmGrid::of(std::move(points));
    fit.grid.interpolation_first = interpolation_first;
  } else if (form != FitForm::kAlphaBeta) {
    std::map<double, std::pair<double, int>> by_axis;  // equal sizes share one knot: mean efficiency
    for (const Sample& x : s) {
      const OpQuery q = OpQuery::of(x);
      auto& [sum, count] = by_axis[fit.flops_axis() ? q.flops : q.bytes];
      sum += base_us(fit, q) / x.time_us;
      ++count;
    }
    for (const auto& [ax, e] : by_axis) fit.knots.push_back({std::log2(ax), e.first / e.second});
  }
  fit.axis = range_of(s, fit.flops_axis() ? &Sample::flops : &Sample::bytes);
  if (is_gemm(form))
    fit.m_range = range_of(s, &Sample::m), fit.n_range = range_of(s, &Sample::n), fit.k_range = range_of(s, &Sample::k);
  return fit;
}

// attention_neighbours (decode): the efficiency-curve law, and every sample's place in the neighbour
// space with the law's error there.
OpFit fit_attention_neighbours(const std::vector<Sample>& s);

// The attention samples' measured ranges of sequences and longest keys (what outside_measured checks).
void set_attention_coverage(OpFit& fit, const std::vector<Sample>& s) {
  Range seqs{s[0].attn->num_seqs, s[0].attn->num_seqs}, keys{s[0].attn->keys_max, s[0].attn->keys_max};
  for (const Sample& x : s) {
    seqs.min = std::min(seqs.min, x.attn->num_seqs), seqs.max = std::max(seqs.max, x.attn->num_seqs);
    keys.min = std::min(keys.min, x.attn->keys_max), keys.max = std::max(keys.max, x.attn->keys_max);
  }
  fit.seqs_range = seqs, fit.keys_max_range = keys;
}

// attention_linear: non-negative relative least squares over the eight features; with `curve`, then
// an efficiency knot per half-octave of bytes (mean log2 bytes, mean linear time / measured time of
// the samples in it): what the linear law misses of tile and wave quantisation, by size.
OpFit fit_attention(const std::vector<Sample>& s, bool on_flops, bool curve = false) {
  OpFit fit;
  fit.form = curve ? FitForm::kAttentionLinearEfficiency : FitForm::kAttentionLinear;
  fit.straggler_on_flops = on_flops;
  std::vector<std::vector<double>> rows;
  std::vector<double> t;
  for (const Sample& x : s) {
    rows.push_back(attention_features(OpQuery::of(x), on_flops));
    t.push_back(x.time_us);
  }
  const std::vector<double> c = relative_nnls(rows, t);
  fit.alpha_us = c[0], fit.us_per_byte = c[1], fit.us_per_flop = c[2], fit.us_per_seq = c[3];
  fit.us_per_straggler = c[4], fit.us_per_straggler_unbalanced = c[5], fit.us_per_stage_byte = c[6];
  fit.us_per_unit = c[7];
  fit.axis = range_of(s, &Sample::bytes);
  set_attention_coverage(fit, s);
  if (curve) {
    std::map<double, std::array<double, 3>> bins;  // half-octave -> (sum log2 bytes, sum efficiency, count)
    for (const Sample& x : s) {
      const OpQuery q = OpQuery::of(x);
      const double ax = std::log2(on_flops ? q.flops : q.bytes);
      auto& b = bins[std::floor(ax * 2.0) / 2.0];
      b[0] += ax, b[1] += base_us(fit, q) / x.time_us, b[2] += 1;
    }
    for (const auto& [bin, b] : bins) fit.knots.push_back({b[0] / b[2], b[1] / b[2]});
    if (on_flops) fit.axis = range_of(s, &Sample::flops);
  }
  return fit;
}

// The query of a measured case for a law: with its blocks' makespan when the law has a schedule.
OpQuery query_for(const OpFit& law, const Sample& s, costmodel::PrefillMakespanScratch& scratch) {
  return law.prefill_schedule ? makespan_query(s, *law.prefill_schedule, scratch) : OpQuery::of(s);
}

// A neighbour form over `base` (fitted on the same samples): every sample's place in the space with
// the base law's error there.
OpFit with_neighbours(OpFit base, const std::vector<Sample>& s, FitForm form, NeighbourSpace space) {
  costmodel::PrefillMakespanScratch scratch;
  for (const Sample& x : s) {
    const OpQuery q = query_for(base, x, scratch);
    base.neighbours.push_back({neighbour_features(q, space), std::log(x.time_us / predict_time_us(base, q))});
  }
  sort_neighbours(base.neighbours);
  base.neighbour_base = base.form;
  base.form = form;
  return base;
}

OpFit fit_attention_neighbours(const std::vector<Sample>& s) {
  return with_neighbours(fit_attention(s, /*on_flops=*/false, /*curve=*/true), s, FitForm::kAttentionNeighbours,
                         NeighbourSpace::kDecode);
}

// attention_tiles: non-negative relative least squares over the padded tile work (all tiles, the
// blocks' Q tiles, the longest block) and the FLOPs at the heads' own ranks. Coverage as
// attention_linear.
OpFit fit_attention_tiles(const std::vector<Sample>& s) {
  OpFit fit;
  fit.form = FitForm::kAttentionTiles;
  std::vector<std::vector<double>> rows;
  std::vector<double> t;
  for (const Sample& x : s) {
    rows.push_back(tile_features(OpQuery::of(x)));
    t.push_back(x.time_us);
  }
  const std::vector<double> c = relative_nnls(rows, t);
  fit.alpha_us = c[0], fit.us_per_padded_flop = c[1], fit.us_per_block_elem = c[2], fit.us_per_longest_flop = c[3];
  fit.us_per_flop = c[4];
  fit.axis = range_of(s, &Sample::bytes);
  set_attention_coverage(fit, s);
  return fit;
}

// The speeds of two blocks sharing an SM that attention_makespan tries, fastest first (so that a
// fit without width-64 cases, where the speed changes nothing, keeps 1).
constexpr double kSharedSpeeds[] = {1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5};

// attention_makespan: for each shared speed, non-negative relative least squares over the tile work
// and the makespan at that speed; the speed whose law fits the samples best (smallest sum of squared
// relative errors) is kept with the law. Coverage as attention_linear.
OpFit fit_attention_makespan(const std::vector<Sample>& s) {
  OpFit best;
  double best_err = std::numeric_limits<double>::infinity();
  costmodel::PrefillMakespanScratch scratch;
  for (double speed : kSharedSpeeds) {
    const costmodel::PrefillScheduleConstants schedule{static_cast<int>(std::llround(s[0].attn->num_sms)),
                                                       costmodel::kPrefillBlockFixedTiles, speed};
    std::vector<std::vector<double>> rows;
    std::vector<double> t;
    for (const Sample& x : s) {
      rows.push_back(makespan_features(makespan_query(x, schedule, scratch)));
      t.push_back(x.time_us);
    }
    const std::vector<double> c = relative_nnls(rows, t);
    double err = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      double pred = 0;
      for (size_t j = 0; j < c.size(); ++j) pred += c[j] * rows[i][j];
      err += (pred - t[i]) * (pred - t[i]) / (t[i] * t[i]);
    }
    if (err < best_err * (1 - 1e-12)) {
      best_err = err;
      best.form = FitForm::kAttentionMakespan;
      best.alpha_us = c[0], best.us_per_padded_flop = c[1], best.us_per_block_elem = c[2];
      best.us_per_longest_flop = c[3], best.us_per_flop = c[4];
      best.us_per_makespan_flop_w64 = c[5], best.us_per_makespan_flop_w128 = c[6];
      best.prefill_schedule = schedule;
    }
  }
  best.axis = range_of(s, &Sample::bytes);
  set_attention_coverage(best, s);
  return best;
}

// A prefill law that is not a neighbour form.
OpFit fit_prefill_law(const std::vector<Sample>& s, FitForm form) {
  switch (form) {
    case FitForm::kAttentionTiles:
      return fit_attention_tiles(s);
    case FitForm::kAttentionMakespan:
      return fit_attention_makespan(s);
    case FitForm::kAttentionLinear:
    case FitForm::kAttentionLinearEfficiency:
      return fit_attention(s, /*on_flops=*/true, form == FitForm::kAttentionLinearEfficiency);
    default:
      FDC_CHECK(false, "no prefill attention law " << form_name(form));
  }
  return {};
}

// attention_prefill_neighbours: the `base` prefill law and every sample's place in the prefill
// neighbour space with that law's error there.
OpFit fit_attention_prefill_neighbours(const std::vector<Sample>& s, FitForm base) {
  return with_neighbours(fit_prefill_law(s, base), s, FitForm::kAttentionPrefillNeighbours, NeighbourSpace::kPrefill);
}

// constant: the relative least-squares constant through the measured times.
OpFit fit_constant(const std::vector<Sample>& s) {
  OpFit fit;
  fit.form = FitForm::kConstant;
  std::vector<std::vector<double>> rows(s.size(), std::vector<double>{1.0});
  std::vector<double> t;
  for (const Sample& x : s) t.push_back(x.time_us);
  fit.alpha_us = relative_nnls(rows, t)[0];
  return fit;
}

// The candidate nearest the target (issue 5: held-out median <= 5%, P90 <= 10%): the smallest
// max(median / 5, P90 / 10). A later, more detailed form must lower it by 0.02 (0.1 points of median
// or 0.2 of P90), so rounding noise never trades an exact law for a curve.
size_t closest_to_target(const std::vector<CandidateError>& candidates) {
  auto score = [](const HeldOutError& h) {
    return h.median_ape_pct && h.p90_ape_pct ? std::max(*h.median_ape_pct / 5.0, *h.p90_ape_pct / 10.0)
                                             : std::numeric_limits<double>::infinity();
  };
  size_t pick = 0;
  for (size_t i = 1; i < candidates.size(); ++i)
    if (score(candidates[i].held_out) < score(candidates[pick].held_out) - 0.02) pick = i;
  return pick;
}

}  // namespace

GemmGrid GemmGrid::of(std::vector<GridPoint> points) {
  FDC_CHECK(!points.empty(), "a GEMM grid needs measured points");
  std::sort(points.begin(), points.end(),
            [](const GridPoint& a, const GridPoint& b) { return std::tie(a.m, a.n, a.k) < std::tie(b.m, b.n, b.k); });
  GemmGrid g;
  for (const GridPoint& p : points) {  // equal shapes: one point, mean efficiency
    FDC_CHECK(p.m > 0 && p.n > 0 && p.k > 0 && p.efficiency > 0,
              "GEMM grid point m " << p.m << " n " << p.n << " k " << p.k << " efficiency " << p.efficiency);
    if (!g.points.empty() && g.points.back().m == p.m && g.points.back().n == p.n && g.points.back().k == p.k) continue;
    double sum = 0;
    int count = 0;
    for (const GridPoint& q : points)
      if (q.m == p.m && q.n == p.n && q.k == p.k) sum += q.efficiency, ++count;
    g.points.push_back({p.m, p.n, p.k, sum / count});
  }
  std::vector<std::array<double, 3>> along_shape, along_m;
  for (const GridPoint& p : g.points) {
    const double lm = std::log2(p.m), lnk = std::log2(p.n * p.k), le = std::log(p.efficiency);
    along_shape.push_back({lm, lnk, le});
    along_m.push_back({lnk, lm, le});
  }
  g.by_m = lines_of(std::move(along_shape));
  g.by_shape = lines_of(std::move(along_m));
  return g;
}

double GemmGrid::efficiency(double m, double n, double k) const {
  FDC_CHECK(!by_m.empty() && m > 0 && n > 0 && k > 0, "GEMM grid query m " << m << " n " << n << " k " << k);
  const double lm = std::log2(m), lnk = std::log2(n * k);
  bool shape_clamped = false, m_clamped = false;
  const double across_shapes = across(by_m, lm, lnk, &shape_clamped);
  const double along_m = across(by_shape, lnk, lm, &m_clamped);
  // Where one reading interpolates and the other only holds its nearest end (a shape beyond the
  // measured ones at this m, or an m beyond those measured at this shape), the interpolation alone.
  if (interpolation_first && shape_clamped != m_clamped) return std::exp(shape_clamped ? along_m : across_shapes);
  return std::exp(0.5 * (across_shapes + along_m));
}

double straggler_work(const OpQuery& q, bool on_flops) {
  if (q.seqs <= 0 || q.keys_mean <= 0) return 0;
  return (on_flops ? q.flops : q.bytes) / q.seqs * (q.keys_max / q.keys_mean);
}

const char* form_name(FitForm f) {
  switch (f) {
    case FitForm::kGemmRooflineEfficiency:
      return "gemm_roofline_efficiency";
    case FitForm::kGemmRooflineGrid:
      return "gemm_roofline_grid";
    case FitForm::kAlphaBeta:
      return "alpha_beta";
    case FitForm::kAlphaBetaEfficiency:
      return "alpha_beta_efficiency";
    case FitForm::kAttentionLinear:
      return "attention_linear";
    case FitForm::kAttentionLinearEfficiency:
      return "attention_linear_efficiency";
    case FitForm::kAttentionTiles:
      return "attention_tiles";
    case FitForm::kAttentionMakespan:
      return "attention_makespan";
    case FitForm::kAttentionNeighbours:
      return "attention_neighbours";
    case FitForm::kAttentionPrefillNeighbours:
      return "attention_prefill_neighbours";
    case FitForm::kRooflineDerived:
      return "roofline_derived";
    case FitForm::kConstant:
      return "constant";
  }
  return "?";
}

std::optional<FitForm> form_from_name(const std::string& s) {
  for (FitForm f : {FitForm::kGemmRooflineEfficiency, FitForm::kGemmRooflineGrid, FitForm::kAlphaBeta,
                    FitForm::kAlphaBetaEfficiency, FitForm::kAttentionLinear, FitForm::kAttentionLinearEfficiency,
                    FitForm::kAttentionTiles, FitForm::kAttentionMakespan, FitForm::kAttentionNeighbours,
                    FitForm::kAttentionPrefillNeighbours, FitForm::kRooflineDerived, FitForm::kConstant})
    if (s == form_name(f)) return f;
  return std::nullopt;
}

OpQuery OpQuery::gemm(double m, double n, double k) {
  // The rows the kernel computes: whole 128-row tiles above one tile (costmodel::gemm_tiled_rows).
  // The measured grids' row counts are such multiples, so only the queries between them change.
  const double rows = costmodel::gemm_tiled_rows(m);
  const costmodel::OpWork w = costmodel::gemm_work(rows, n, k, 2.0);
  return OpQuery{w.bytes, w.flops, rows, n, k};
}

OpQuery OpQuery::of(const Sample& s) {
  if (s.m > 0) return gemm(s.m, s.n, s.k);
  OpQuery q{s.bytes, s.flops, 0, 0, 0};
  if (s.attn) q.seqs = s.attn->num_seqs, q.keys_mean = s.attn->keys_mean, q.keys_max = s.attn->keys_max;
  if (s.attn) q.balanced = s.attn->balanced, q.stage_bytes = s.attn->stage_bytes, q.units = s.attn->units;
  if (s.attn) {
    q.padded_flops = s.attn->padded_flops, q.block_elems = s.attn->block_elems;
    q.longest_block_flops = s.attn->longest_block_flops;
    q.tokens = s.attn->tokens;
  }
  return q;
}

OpQuery makespan_query(const Sample& s, const costmodel::PrefillScheduleConstants& schedule,
                       costmodel::PrefillMakespanScratch& scratch) {
  OpQuery q = OpQuery::of(s);
  FDC_CHECK(s.attn, s.where << ": a makespan query needs an attention case");
  const AttnFeatures& a = *s.attn;
  const auto seqs = static_cast<size_t>(std::llround(a.num_seqs));
  const costmodel::SeqWork chunk{static_cast<int32_t>(std::llround(a.tokens / a.num_seqs)),
                                 static_cast<int32_t>(std::llround(a.ctx_mean)), false};
  const std::vector<costmodel::SeqWork> chunks(seqs, chunk);
  q.makespan = costmodel::prefill_makespan_work(chunks, std::llround(a.q_heads),
                                                static_cast<int>(std::ceil(a.max_rank - 1e-9)), schedule, scratch);
  return q;
}

std::array<double, 6> neighbour_features(const OpQuery& q, NeighbourSpace space) {
  const double seqs = std::max(q.seqs, 1.0), keys = std::max(q.keys_mean, 1.0);
  if (space == NeighbourSpace::kPrefill) {
    // Per sequence: new tokens n after keys - n cached ones, so n (keys - n) + n (n + 1) / 2 scored
    // (query, key) pairs (kernels/attention/cost.cpp prefill_flops), in ceil(n / 128) Q tiles.
    const double n = std::max(q.tokens / seqs, 1.0), k = std::max(keys, n);
    const double pairs = seqs * (n * (k - n) + n * (n + 1) / 2);
    const double q_tiles = seqs * std::ceil(n / costmodel::kPrefillTileQ - 1e-9);
    const double heads_width = std::max(q.block_elems / (q_tiles * costmodel::kPrefillTileQ), 1.0);
    const double fill = q.flops > 0 ? q.flops / (4.0 * pairs * heads_width) : 1.0;
    return {2.0 * std::log2(seqs), 2.0 * std::log2(n),
            std::log2(k / n),      8.0 * std::log2(heads_width / 4096.0),
            2.0 * std::log2(fill), 2.0 * std::log2(std::max(q.keys_max, k) / k)};
  }
  return {std::log2(seqs),
          std::log2(keys),
          std::log2(std::max(q.bytes, 1.0) / (seqs * keys)),
          q.bytes > 0 ? 4.0 * q.stage_bytes / q.bytes : 0.0,
          std::log2(std::max(q.keys_max, keys) / keys),
          8.0 * q.balanced};
}

namespace {

// Bumped whenever a set of points is made (every maker sorts it): a thread's candidate lists for
// points at an address then compare the points once more before they serve again, since a set fitted
// later (another fold of the cross-validation, another profile) may sit where an earlier one was.
std::atomic<uint64_t> neighbour_sets_made{0};

}  // namespace

void sort_neighbours(std::vector<NeighbourPoint>& points) {
  std::sort(points.begin(), points.end(), [](const NeighbourPoint& a, const NeighbourPoint& b) {
    return std::tie(a.x, a.log_ratio) < std::tie(b.x, b.log_ratio);
  });
  neighbour_sets_made.fetch_add(1, std::memory_order_relaxed);
}

namespace {

// A point that can be among the neighbours of a query in a cell (below): its squared distance to the
// cell (the order of the cell's list), its coordinates and log ratio (copied from the points, so that
// a query reads one array front to back) and its index in the points' sorted order (which breaks
// ties of distance).
struct Candidate {
  double cell_d2 = 0;
  std::array<double, 6> x{};
  double log_ratio = 0;
  uint32_t index = 0;
};

// An axis-aligned box of the space: a cell or a block of cells.
struct Box {
  std::array<double, 6> lo{}, hi{};
  // The squared distance from p to the nearest and to the farthest point of the box, summed over
  // the coordinates in order as squared_distance() sums it. Rounding is monotone, so for every x in
  // the box near2 <= squared_distance(p, x) <= far2 as computed, not only as exact numbers.
  void distances(const std::array<double, 6>& p, double& near2, double& far2) const {
    near2 = 0, far2 = 0;
    for (size_t k = 0; k < p.size(); ++k) {
      const double gap = p[k] < lo[k] ? lo[k] - p[k] : p[k] > hi[k] ? p[k] - hi[k] : 0.0;
      const double reach = std::max(p[k] - lo[k], hi[k] - p[k]);
      near2 += gap * gap, far2 += reach * reach;
    }
  }
};

// The squared distance of a point from a query, summed over the coordinates in order as a scan over
// all points sums it (so the same bits), all six terms: a far point costs less than a mispredicted
// early exit would.
double squared_distance(const std::array<double, 6>& p, const std::array<double, 6>& x) {
  double d2 = 0;
  for (size_t k = 0; k < x.size(); ++k) d2 += (p[k] - x[k]) * (p[k] - x[k]);
  return d2;
}

// How a thread's lists are laid over a neighbour space: a grid of cells, `cell` per unit of each
// coordinate, within blocks of `block` per unit (powers of two, so that a query's cell and its
// cell's block are exact: x * 8 and its floor lose no bits). A block lists the points within the
// radius of it, and a cell's list is drawn from its block's, so that a cell costs a pass over about
// a hundred points rather than all of them.
// Decode: sequences, bytes per key, stage padding and kernel stay put while a decode stretch is
// fast-forwarded (a per-layer policy asks about one place per layer group each iteration); mean keys
// grow and the spread shrinks as every sequence grows, a step of about 1/700 of a unit at 1000 keys,
// so a query stays in its cell for tens of steps and in its block for hundreds.
// Prefill: sequences, new tokens per sequence, heads x width and the ranks' share stay put for one
// layer group's prompts of about one length; the cached share and the spread move between them.
struct GridLayout {
  std::array<double, 6> cell, block;
};
constexpr GridLayout kDecodeGrid{{8, 8, 8, 8, 8, 8}, {8, 1, 8, 8, 1, 8}};
constexpr GridLayout kPrefillGrid{{8, 8, 8, 8, 8, 8}, {8, 8, 2, 8, 8, 2}};

// A box of the grid by its corner (floor(x * per unit) per coordinate, as doubles) and its size.
using GridKey = std::array<double, 6>;
Box grid_box(const GridKey& key, const std::array<double, 6>& per_unit) {
  Box b;
  for (size_t k = 0; k < key.size(); ++k) b.lo[k] = key[k] / per_unit[k], b.hi[k] = (key[k] + 1) / per_unit[k];
  return b;
}
// The key of x's box at `per_unit`, or none when a coordinate is too large (or not a number) for
// its floor to be exact.
std::optional<GridKey> grid_key(const std::array<double, 6>& x, const std::array<double, 6>& per_unit) {
  GridKey key{};
  for (size_t k = 0; k < x.size(); ++k) {
    const double v = x[k] * per_unit[k];
    if (!(std::abs(v) < 1e15)) return std::nullopt;
    key[k] = std::floor(v);
  }
  return key;
}
// A hash of the bits of six numbers, in its high bits (the low bits of a cell's corner, a whole
// number, are all zero): six independent products, so that it costs one multiply's latency.
uint64_t hash_bits(const std::array<double, 6>& v) {
  constexpr std::array<uint64_t, 6> kOdd{0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull,
                                         0xD6E8FEB86659FD93ull, 0xFF51AFD7ED558CCDull, 0xC4CEB9FE1A85EC53ull};
  uint64_t h = 0;
  for (size_t k = 0; k < v.size(); ++k) h ^= std::bit_cast<uint64_t>(v[k]) * kOdd[k];
  return h;
}
bool same_bits(const std::array<double, 6>& a, const std::array<double, 6>& b) {
  for (size_t k = 0; k < a.size(); ++k)
    if (std::bit_cast<uint64_t>(a[k]) != std::bit_cast<uint64_t>(b[k])) return false;
  return true;
}

// The points that can be the neighbours of a query in `cell`, drawn from `from` (a superset of them:
// every point within the radius of the cell), nearest the cell first (ties by index). Every query in
// the cell has its k-th nearest no farther than the k-th smallest farthest distance to the cell (those
// k points are that near wherever it is), so a point farther than that from the whole cell is no
// neighbour of any; nor is one beyond the radius.
std::vector<Candidate> cell_candidates(const std::vector<Candidate>& from, const Box& cell) {
  const double radius2 = kNeighbourRadius * kNeighbourRadius;
  std::vector<Candidate> near;
  near.reserve(from.size());
  std::array<double, kNeighbours> reach2;  // the k smallest farthest distances, ascending
  reach2.fill(std::numeric_limits<double>::infinity());
  for (const Candidate& p : from) {
    double near2 = 0, far2 = 0;
    cell.distances(p.x, near2, far2);
    if (near2 > radius2) continue;
    near.push_back(p), near.back().cell_d2 = near2;
    if (far2 < reach2.back()) {
      size_t at = reach2.size() - 1;
      for (; at > 0 && far2 < reach2[at - 1]; --at) reach2[at] = reach2[at - 1];
      reach2[at] = far2;
    }
  }
  const double bound2 = std::min(reach2.back(), radius2);
  std::erase_if(near, [&](const Candidate& p) { return p.cell_d2 > bound2; });
  std::sort(near.begin(), near.end(), [](const Candidate& a, const Candidate& b) {
    return a.cell_d2 < b.cell_d2 || (a.cell_d2 == b.cell_d2 && a.index < b.index);
  });
  return near;
}

// The points within the radius of `block` (cell_d2: the distance to the block), in index order.
std::vector<Candidate> block_candidates(const std::vector<NeighbourPoint>& points, const Box& block) {
  std::vector<Candidate> out;
  for (size_t i = 0; i < points.size(); ++i) {
    double near2 = 0, far2 = 0;
    block.distances(points[i].x, near2, far2);
    if (near2 <= kNeighbourRadius * kNeighbourRadius)
      out.push_back({near2, points[i].x, points[i].log_ratio, static_cast<uint32_t>(i)});
  }
  return out;
}

// The correction at x from candidates that hold every neighbour of x, nearest x's cell first: the k
// nearest by (squared distance, index), whatever order the candidates are visited in, so the answer
// is that of a scan over all points, bit for bit; a candidate farther from the cell than the k-th
// nearest so far is farther from x too, and so are the rest.
double correction_from(const std::vector<Candidate>& candidates, const std::array<double, 6>& x) {
  struct Near {
    double d2;
    uint32_t index;
    double log_ratio;
    bool operator<(const Near& o) const { return d2 < o.d2 || (d2 == o.d2 && index < o.index); }
  };
  std::array<Near, kNeighbours> near{};  // the nearest so far, ascending by (distance, index)
  int found = 0;
  const double radius2 = kNeighbourRadius * kNeighbourRadius;
  for (const Candidate& p : candidates) {
    if (found == kNeighbours && p.cell_d2 > near[kNeighbours - 1].d2) break;  // the rest are farther still
    const Near c{squared_distance(p.x, x), p.index, p.log_ratio};
    if (c.d2 > radius2 || (found == kNeighbours && !(c < near[kNeighbours - 1]))) continue;
    int at = found < kNeighbours ? found++ : kNeighbours - 1;
    for (; at > 0 && c < near[static_cast<size_t>(at - 1)]; --at)
      near[static_cast<size_t>(at)] = near[static_cast<size_t>(at - 1)];
    near[static_cast<size_t>(at)] = c;
  }
  if (found == 0) return 1.0;
  double sum = 0, weight = 0;
  for (int i = 0; i < found; ++i) {
    const double w = 1.0 / (near[static_cast<size_t>(i)].d2 + 1e-6);
    sum += w * near[static_cast<size_t>(i)].log_ratio, weight += w;
  }
  return std::exp(sum / weight);
}

// What a thread keeps for one set of points (the decode and the prefill law of a profile, or of two
// profiles, ask in turn): the answers to its latest queries, the lists of the cells asked about
// lately and the lists of their blocks.
struct CandidateCache {
  // The answer to one of the latest queries, by its coordinates bit for bit. Equal coordinates have
  // equal neighbours, so a repeat is answered at once: a per-layer policy asks about several layer
  // groups of one shape each iteration (the per-head table with token classes for Llama-2-13B: 42
  // queries per decode step, 21 of them repeats of one 2 or 4 queries before). One slot per hash of
  // the coordinates; a later query takes it.
  struct Recent {
    std::array<double, 6> x{};
    double correction = 0;
    bool set = false;
  };
  static constexpr int kRecentSlotBits = 8;
  // A cell's list, in the slot of its key's hash (a later cell takes it).
  struct Cell {
    GridKey key{};
    bool set = false;
    std::vector<Candidate> candidates;
  };
  static constexpr int kCellSlotBits = 10;
  struct KeyHash {
    size_t operator()(const GridKey& k) const { return static_cast<size_t>(hash_bits(k) >> 32); }
  };
  struct SameKey {
    bool operator()(const GridKey& a, const GridKey& b) const { return same_bits(a, b); }
  };
  using Blocks = std::unordered_map<GridKey, std::vector<Candidate>, KeyHash, SameKey>;

  const NeighbourPoint* points = nullptr;  // the address of the points the lists are for
  std::vector<NeighbourPoint> copy;        // and the points, compared when a set was made since
  uint64_t checked = 0;                    // neighbour_sets_made when they were last compared
  std::vector<Recent> recent;
  std::vector<Cell> cells;
  std::array<Blocks, 2> blocks;  // per grid (decode, prefill): their blocks differ in size

  // For points at this cache's address: whether they are still the ones its lists are for.
  bool same_points(const std::vector<NeighbourPoint>& p) {
    if (copy.size() != p.size()) return false;
    const uint64_t made = neighbour_sets_made.load(std::memory_order_relaxed);
    if (made == checked) return true;
    const bool same = std::equal(
        p.begin(), p.end(), copy.begin(),
        [](const NeighbourPoint& a, const NeighbourPoint& b) { return a.x == b.x && a.log_ratio == b.log_ratio; });
    if (same) checked = made;
    return same;
  }
  void reset(const std::vector<NeighbourPoint>& p) {
    points = p.data(), copy = p, checked = neighbour_sets_made.load(std::memory_order_relaxed);
    recent.assign(size_t{1} << kRecentSlotBits, Recent{});
    cells.assign(size_t{1} << kCellSlotBits, Cell{});
    for (Blocks& b : blocks) b.clear();
  }
  Recent& recent_for(const std::array<double, 6>& x) { return recent[hash_bits(x) >> (64 - kRecentSlotBits)]; }
  // The list of x's cell (the cell and its block listed first if need be); none when x is off the
  // grid. Every cell of both grids is 1/8 of a unit wide, so cells of either grid serve both.
  const std::vector<Candidate>* candidates_for(const std::array<double, 6>& x, NeighbourSpace space) {
    const GridLayout& grid = space == NeighbourSpace::kPrefill ? kPrefillGrid : kDecodeGrid;
    const std::optional<GridKey> key = grid_key(x, grid.cell);
    if (!key) return nullptr;
    Cell& cell = cells[hash_bits(*key) >> (64 - kCellSlotBits)];
    if (cell.set && same_bits(cell.key, *key)) return &cell.candidates;
    const std::optional<GridKey> block_key = grid_key(x, grid.block);
    if (!block_key) return nullptr;
    Blocks& listed = blocks[space == NeighbourSpace::kPrefill ? 1 : 0];
    if (listed.size() > 4096) listed.clear();
    const auto [block, made] = listed.try_emplace(*block_key);
    if (made) block->second = block_candidates(copy, grid_box(*block_key, grid.block));
    cell.key = *key, cell.set = true;
    cell.candidates = cell_candidates(block->second, grid_box(*key, grid.cell));
    return &cell.candidates;
  }
};

// The cache of this thread for `points`.
CandidateCache& cache_for(const std::vector<NeighbourPoint>& points) {
  constexpr size_t kSets = 4;  // point sets kept per thread; the least recently used is dropped
  thread_local std::array<CandidateCache, kSets> caches;
  thread_local std::array<uint64_t, kSets> used{};
  thread_local uint64_t clock = 0;
  size_t at = 0;
  while (at < kSets && caches[at].points != points.data()) ++at;
  if (at == kSets) at = static_cast<size_t>(std::min_element(used.begin(), used.end()) - used.begin());
  if (caches[at].points != points.data() || !caches[at].same_points(points)) caches[at].reset(points);
  used[at] = ++clock;
  return caches[at];
}

// The held-out error of a decode fit over its balanced cases alone, when the cases also hold naive
// ones (`e.predicted` is in `samples`' order); nothing otherwise.
std::optional<HeldOutError> balanced_subset(const std::vector<Sample>& samples, const HeldOutError& e) {
  if (e.predicted.size() != samples.size()) return std::nullopt;
  std::vector<double> ape;
  for (size_t i = 0; i < samples.size(); ++i)
    if (samples[i].attn && samples[i].attn->balanced != 0)
      ape.push_back(std::abs(e.predicted[i] / samples[i].time_us - 1.0) * 100.0);
  if (ape.empty() || ape.size() == samples.size()) return std::nullopt;
  return HeldOutError{
      e.method + ", balanced cases", static_cast<int>(ape.size()), percentile(ape, 0.5), percentile(ape, 0.9), {}};
}

}  // namespace

double neighbour_correction(const std::vector<NeighbourPoint>& points, const OpQuery& q, NeighbourSpace space) {
  if (points.empty()) return 1.0;
  const std::array<double, 6> x = neighbour_features(q, space);
  CandidateCache& cache = cache_for(points);
  CandidateCache::Recent& recent = cache.recent_for(x);
  if (recent.set && same_bits(recent.x, x)) return recent.correction;
  if (const std::vector<Candidate>* candidates = cache.candidates_for(x, space)) {
    recent.x = x, recent.set = true, recent.correction = correction_from(*candidates, x);
    return recent.correction;
  }
  // Off the grid (a coordinate beyond 1e14, or not a number): a scan over all points.
  std::vector<Candidate> all;
  for (size_t i = 0; i < points.size(); ++i)
    all.push_back({0.0, points[i].x, points[i].log_ratio, static_cast<uint32_t>(i)});
  return correction_from(all, x);
}

double predict_sample_us(const OpFit& law, const Sample& s) {
  costmodel::PrefillMakespanScratch scratch;
  return predict_time_us(law, query_for(law, s, scratch));
}

double predict_time_us(const OpFit& fit, const OpQuery& q) {
  if (fit.form == FitForm::kConstant) return fit.alpha_us + fit.us_per_seq * q.seqs;
  if (fit.form == FitForm::kGemmRooflineGrid) return base_us(fit, q) / fit.grid.efficiency(q.m, q.n, q.k);
  double t = base_us(fit, q);
  if (!fit.knots.empty()) {
    const double ax = fit.flops_axis() ? q.flops : q.bytes;
    FDC_CHECK(ax > 0, fit.op << ": query with " << fit.axis_name() << " = " << ax);
    t /= efficiency(fit.knots, std::log2(ax));
  }
  const std::optional<NeighbourSpace> space = fit.neighbour_space();
  return space ? t * neighbour_correction(fit.neighbours, q, *space) : t;
}

bool outside_measured(const OpFit& fit, const OpQuery& q) {
  if (fit.extrapolated) return true;
  if (fit.form == FitForm::kConstant) return false;
  auto out = [](double v, const std::optional<Range>& r) { return r && !r->contains(v); };
  if (!fit.axis.contains(fit.flops_axis() ? q.flops : q.bytes)) return true;
  if (is_gemm(fit.form) && (out(q.m, fit.m_range) || out(q.n, fit.n_range) || out(q.k, fit.k_range))) return true;
  return out(q.seqs, fit.seqs_range) || out(q.keys_max, fit.keys_max_range);
}

Prediction predict(const OpFit& fit, const OpQuery& q) {
  Prediction p;
  p.time_us = predict_time_us(fit, q);
  if (fit.extrapolated) {  // derived, not measured: every answer is flagged
    p.extrapolated = true;
    p.why = "not measured on this GPU: " + fit.note;
    return p;
  }
  if (fit.form == FitForm::kConstant) return p;
  const double ax = fit.flops_axis() ? q.flops : q.bytes;
  std::ostringstream why;
  auto check = [&](const char* name, double v, const std::optional<Range>& r) {
    if (r && !r->contains(v))
      why << (why.tellp() > 0 ? "; " : "") << name << " " << v << " outside [" << r->min << ", " << r->max << "]";
  };
  check(fit.axis_name(), ax, fit.axis);
  if (is_gemm(fit.form)) check("m", q.m, fit.m_range), check("n", q.n, fit.n_range), check("k", q.k, fit.k_range);
  check("sequences", q.seqs, fit.seqs_range);
  check("keys_max", q.keys_max, fit.keys_max_range);
  p.why = why.str();
  p.extrapolated = !p.why.empty();
  return p;
}

OpFit fit_op(const std::string& op, std::vector<Sample> samples, const Peaks& peaks, bool with_flops,
             const std::optional<costmodel::DecodePlanConstants>& decode_plan) {
  FDC_INPUT_CHECK(!samples.empty(), op << ": no measured points to fit");
  if (samples[0].attn || op == "iteration_overhead") {
    const bool attn = samples[0].attn.has_value();
    for (const Sample& s : samples)
      FDC_INPUT_CHECK(s.attn.has_value() == attn, s.where << ": mixes attention and other cases in op " << op);
    const bool on_flops = op == "attn_prefill";
    // Attention: the linear law, the same law over an efficiency curve and, for prefill, the law on
    // the kernel's padded tile work and the one adding its blocks' makespan over the SMs (when the
    // raw folders give the GPU's SM count), then the prefill law nearest the held-out target times
    // its error at the nearest measured cases; the one nearest the held-out target is taken.
    std::vector<FitForm> forms{FitForm::kConstant};
    if (attn) forms = {FitForm::kAttentionLinear, FitForm::kAttentionLinearEfficiency};
    if (attn && on_flops) forms.push_back(FitForm::kAttentionTiles);
    if (attn && on_flops && std::all_of(samples.begin(), samples.end(), [&](const Sample& s) {
          return s.attn->num_sms > 0 && s.attn->num_sms == samples[0].attn->num_sms;
        }))
      forms.push_back(FitForm::kAttentionMakespan);
    if (attn && !on_flops) forms.push_back(FitForm::kAttentionNeighbours);
    FitForm prefill_base = FitForm::kAttentionTiles;  // attention_prefill_neighbours' base law
    auto fit_on = [&](const std::vector<Sample>& sub, FitForm form) {
      if (form == FitForm::kConstant) return fit_constant(sub);
      if (form == FitForm::kAttentionNeighbours) return fit_attention_neighbours(sub);
      if (form == FitForm::kAttentionPrefillNeighbours) return fit_attention_prefill_neighbours(sub, prefill_base);
      return on_flops ? fit_prefill_law(sub, form)
                      : fit_attention(sub, on_flops, form == FitForm::kAttentionLinearEfficiency);
    };
    costmodel::PrefillMakespanScratch scratch;
    std::sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.bytes < b.bytes; });
    std::vector<double> measured;
    for (const Sample& s : samples) measured.push_back(s.time_us);
    std::vector<CandidateError> candidates;
    // A form's held-out error: each held-out case predicted by the form fitted on the other folds
    // alone (a neighbour form's points are those folds' cases, never the held-out one).
    auto held_out = [&](FitForm form) {
      // The points of a fold share their training set: one fit per fold.
      std::vector<int> fitted_on;
      OpFit law;
      const HeldOutError e = cross_validate(measured, 1, [&](const std::vector<int>& train, int test) {
        if (train != fitted_on || fitted_on.empty()) {
          std::vector<Sample> sub;
          for (int i : train) sub.push_back(samples[static_cast<size_t>(i)]);
          law = fit_on(sub, form);
          fitted_on = train;
        }
        return predict(law, query_for(law, samples[static_cast<size_t>(test)], scratch)).time_us;
      });
      candidates.push_back({form, e});
    };
    for (FitForm form : forms) held_out(form);
    if (attn && on_flops) {  // the neighbours over the prefill law nearest the target so far
      prefill_base = forms[closest_to_target(candidates)];
      forms.push_back(FitForm::kAttentionPrefillNeighbours);
      held_out(FitForm::kAttentionPrefillNeighbours);
    }
    const size_t pick = closest_to_target(candidates);
    OpFit f = fit_on(samples, forms[pick]);
    f.op = op;
    if (attn && !on_flops) f.decode_plan = decode_plan;
    f.held_out = candidates[pick].held_out;
    for (const Sample& s : samples) f.held_out_cases.emplace_back(s.where, s.time_us);
    if (attn && !on_flops) f.held_out_balanced = balanced_subset(samples, f.held_out);
    f.candidates = std::move(candidates);
    return f;
  }
  const bool gemm = samples[0].m > 0;
  FDC_INPUT_CHECK(!gemm || (peaks.tflops > 0 && peaks.gbps > 0),
                  op << ": GEMMs need the peak/gemm_bf16 and peak/device_copy cases in the raw folders");
  const FitForm first = gemm ? FitForm::kGemmRooflineEfficiency : FitForm::kAlphaBeta;
  std::sort(samples.begin(), samples.end(), [&](const Sample& a, const Sample& b) {
    return axis_value(first, OpQuery::of(a)) < axis_value(first, OpQuery::of(b));
  });
  std::vector<double> measured;
  for (const Sample& s : samples) measured.push_back(s.time_us);
  // With a flops slot (kv_append's pairs, the rotation's MACs) the efficiency curve is tried over it
  // as well: kv_append's time follows its pairs, whatever their width (docs/fit.md).
  std::vector<CandidateError> tries{{first, {}},
                                    {gemm ? FitForm::kGemmRooflineGrid : FitForm::kAlphaBetaEfficiency, {}}};
  if (!gemm && with_flops && std::all_of(samples.begin(), samples.end(), [](const Sample& s) { return s.flops > 0; }))
    tries.push_back({FitForm::kAlphaBetaEfficiency, {}, true});
  if (gemm) tries.push_back({FitForm::kGemmRooflineGrid, {}, false, true});
  OpFit best;
  for (CandidateError& c : tries) {
    c.held_out = cross_validate(measured, 1, [&](const std::vector<int>& train, int test) {
      std::vector<Sample> sub;
      for (int i : train) sub.push_back(samples[static_cast<size_t>(i)]);
      return predict(fit_form(c.form, sub, peaks, with_flops, c.curve_on_flops, c.interpolation_first),
                     OpQuery::of(samples[static_cast<size_t>(test)]))
          .time_us;
    });
    best.candidates.push_back(c);
  }
  // The more detailed form (efficiency curve, grid) only when it is nearer the held-out target.
  const size_t pick = closest_to_target(best.candidates);
  std::vector<CandidateError> candidates = best.candidates;
  best = fit_form(candidates[pick].form, samples, peaks, with_flops, candidates[pick].curve_on_flops,
                  candidates[pick].interpolation_first);
  best.op = op;
  best.held_out = candidates[pick].held_out;
  for (const Sample& s : samples) best.held_out_cases.emplace_back(s.where, s.time_us);
  best.candidates = std::move(candidates);
  return best;
}

}  // namespace fdc::fit
