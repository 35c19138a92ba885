// One op's fitted law, its query API and its fitting. Forms (docs/fit.md):
//  - gemm_roofline_efficiency: t = max(flops / peak_flops, bytes / peak_bw) / eff(log2 flops);
//  - gemm_roofline_grid: the same roofline over an efficiency interpolated on the measured grid of
//    (log2 m, log2 n k) points (GemmGrid);
//  - alpha_beta: t = alpha + bytes / bandwidth (+ flops / rate for the fused RoPE + rotation; for
//    kv_append the "flops" are its (token, KV head) pairs, its work items);
//  - alpha_beta_efficiency: alpha_beta / eff(log2 bytes);
//  - attention_linear: t = alpha + bytes / bw + flops / rate + seqs x per-seq + a straggler term
//    (the longest sequence's share, from keys_max / keys_mean), balanced and unbalanced kernels apart,
//    + staged bytes x per-staged-byte (decode: K/V rows as the kernel stages them, so that ranks
//    that fill part of a stage cost more per byte) + units x per-unit (decode: the balanced plan's
//    work units, estimated by costmodel/decode_units.h, each with its fixed cost);
//  - attention_tiles (prefill): t = alpha + padded FLOPs / rate + per-block cost x Q tile elements
//    + longest block's padded FLOPs / rate, the work as the kernel tiles it (costmodel/prefill_tiles.h),
//    + FLOPs at the heads' own ranks / rate (us_per_flop: the kernel runs Q K^T over ceil16(r_qk)
//    dims, so within one padded width a smaller rank costs less);
//  - attention_makespan (prefill): attention_tiles + the makespan of the kernel's blocks over the
//    SMs x a rate per padded width (costmodel/prefill_makespan.h), with the schedule's constants;
//  - attention_neighbours (decode): attention_linear_efficiency x its error at the nearest measured
//    cases (neighbour_correction), so that a query on the measured grid gets the measured time;
//  - attention_prefill_neighbours (prefill): the prefill law nearest the held-out target among the
//    others (neighbour_base) x its error at the nearest measured cases, in a space of prefill shapes
//    (NeighbourSpace::kPrefill);
//  - roofline_derived: t = alpha + max(flops / rate, bytes / bw) with rates carried over from other
//    measurements (not measured for this op: always flagged extrapolated);
//  - constant: t = alpha (per-iteration overhead).
// eff is piecewise-linear in log2 of the axis between knots (one per measured size), constant
// beyond the ends; a query outside the measured ranges is answered and flagged as extrapolated.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "costmodel/decode_units.h"
#include "costmodel/fit/held_out.h"
#include "costmodel/fit/raw_reader.h"
#include "costmodel/prefill_makespan.h"

namespace fdc::fit {

enum class FitForm {
  kGemmRooflineEfficiency,
  kGemmRooflineGrid,  // roofline over an efficiency interpolated on the measured (log2 m, log2 n k) grid
  kAlphaBeta,
  kAlphaBetaEfficiency,
  kAttentionLinear,
  kAttentionLinearEfficiency,   // attention_linear over an efficiency curve in log bytes (half-octave bins)
  kAttentionTiles,              // prefill: linear in the kernel's padded tile work (prefill_tiles.h)
  kAttentionMakespan,           // prefill: attention_tiles + the blocks' makespan over the SMs (prefill_makespan.h)
  kAttentionNeighbours,         // decode: attention_linear_efficiency x its error at the nearest measured cases
  kAttentionPrefillNeighbours,  // prefill: the best other prefill law x its error at the nearest measured cases
  kRooflineDerived,
  kConstant
};
const char* form_name(FitForm f);
std::optional<FitForm> form_from_name(const std::string& s);

struct Knot {
  double log2_axis = 0;   // log2 of flops (GEMMs) or bytes (the rest)
  double efficiency = 1;  // base time / measured time
};

// Piecewise-linear interpolation of the knots' efficiency in log2 of the axis, constant beyond the
// ends; 1 without knots.
double efficiency(const std::vector<Knot>& knots, double log2_axis);

struct Range {
  double min = 0, max = 0;
  bool contains(double v) const { return v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9); }
};

// gemm_roofline_grid: one measured GEMM shape and its efficiency (roofline time / measured time).
struct GridPoint {
  double m = 0, n = 0, k = 0, efficiency = 1;
};

// The measured points of a GEMM as lines of the grid, in log space: at each measured m, log
// efficiency along log2(n k); at each measured n k, log efficiency along log2 m. A query's log
// efficiency is the mean of two piecewise-linear interpolations: across the shapes at the two
// nearest measured m, then along m; and along m at the two nearest measured shapes, then across
// shapes. Clamped beyond the ends (the roofline then carries the size).
struct GemmGrid {
  struct Line {
    double at = 0;                              // log2 m (by_m) or log2 n k (by_shape)
    std::vector<std::pair<double, double>> xy;  // (log2 n k or log2 m, log efficiency), x ascending
  };
  std::vector<GridPoint> points;  // equal shapes averaged, sorted by (m, n, k)
  std::vector<Line> by_m, by_shape;
  // Where one of the two readings interpolates and the other only holds its nearest end (a shape
  // beyond those measured at the query's m, or an m beyond those measured at its shape), the
  // interpolating one alone instead of the mean; chosen per op by held-out error.
  bool interpolation_first = false;
  static GemmGrid of(std::vector<GridPoint> points);
  double efficiency(double m, double n, double k) const;
};

// attention_neighbours (decode) and attention_prefill_neighbours: one measured case, at its place in
// the neighbour space (neighbour_features) with log(measured time / the base law's time).
struct NeighbourPoint {
  std::array<double, 6> x{};
  double log_ratio = 0;
};
// The correction of the neighbour forms: the base law's error at the kNeighbours measured cases
// nearest the query within kNeighbourRadius, weighted by inverse squared distance (a case at the
// query's own place alone decides); 1 when none is that near.
inline constexpr int kNeighbours = 4;
inline constexpr double kNeighbourRadius = 2.5;
// The two neighbour spaces: decode attention's (attention_neighbours) and prefill attention's
// (attention_prefill_neighbours); neighbour_features says what their coordinates are.
enum class NeighbourSpace { kDecode, kPrefill };

struct CandidateError {  // a form tried for this op and its held-out error
  FitForm form;
  HeldOutError held_out;
  bool curve_on_flops = false;  // alpha_beta_efficiency: its curve over the flops slot (OpFit)
  bool interpolation_first = false;  // gemm_roofline_grid: GemmGrid::interpolation_first
};

// How far the repetitions of one case lie apart, over an op's cases measured more than once
// (`fdcsim profile --repetitions N`): per case (max - min) / median of its repetitions, in percent.
// The measurement's own noise, beside the held-out error of the law.
struct RepeatSpread {
  int cases = 0;    // cases with repetitions
  int repeats = 0;  // the fewest repetitions of those cases
  double median_pct = 0, p90_pct = 0;
};

struct OpFit {
  std::string op;
  FitForm form = FitForm::kAlphaBeta;
  double alpha_us = 0, us_per_byte = 0, us_per_flop = 0;  // alpha-beta, attention, derived, constant
  double peak_tflops = 0, peak_gbps = 0;                  // GEMM roofline; roofline_derived: the carried rates
  // attention_linear: per sequence, and per unit of the longest sequence's work (bytes for decode,
  // flops for prefill) with the balanced split and without it.
  double us_per_seq = 0, us_per_straggler = 0, us_per_straggler_unbalanced = 0;
  // constant (a calibrated iteration overhead): the iteration's op time times its share of prefill
  // rows, times this, is added (the engine runs prefill faster or slower than the profile's ops
  // predict; validate/calibrate.h). 0 in profiles calibrated before the term.
  double prefill_scale = 0;
  // attention_linear, decode: per staged byte (AttnFeatures::stage_bytes), what a stage costs beyond
  // the bytes it holds.
  double us_per_stage_byte = 0;
  // attention_linear, decode: per work unit of the balanced plan (OpQuery::units), with the plan
  // constants the units are estimated with; 0 and none in profiles fitted before the term.
  double us_per_unit = 0;
  std::optional<costmodel::DecodePlanConstants> decode_plan;
  bool straggler_on_flops = false;  // attention_linear: prefill (flops) or decode (bytes)
  // alpha_beta_efficiency of an op with a flops slot: the efficiency curve over that slot (kv_append's
  // (token, KV head) pairs, the rotation's MACs) instead of bytes, when that is nearer the target.
  bool curve_on_flops = false;
  // attention_tiles: per padded FLOP of all tiles, per Q tile element loaded (a block's fixed cost),
  // per padded FLOP of the longest block (the critical path when blocks are few); its FLOPs at the
  // heads' own ranks go in us_per_flop.
  double us_per_padded_flop = 0, us_per_block_elem = 0, us_per_longest_flop = 0;
  // attention_makespan: per padded FLOP of the makespan at padded width 64 and at 128 (OpQuery::
  // makespan), and the schedule it is computed with (the SM count, a block's fixed cost, the speed
  // of two blocks sharing an SM).
  double us_per_makespan_flop_w64 = 0, us_per_makespan_flop_w128 = 0;
  std::optional<costmodel::PrefillScheduleConstants> prefill_schedule;
  std::vector<Knot> knots;
  GemmGrid grid;                           // gemm_roofline_grid
  std::vector<NeighbourPoint> neighbours;  // the neighbour forms: the measured cases
  // The neighbour forms: the law whose error the neighbours correct (its parameters are the ones
  // above): attention_linear_efficiency for decode, the prefill law picked by held-out error for
  // attention_prefill_neighbours.
  FitForm neighbour_base = FitForm::kAttentionLinearEfficiency;
  Range axis;                                       // flops (GEMMs) or bytes: the measured range
  std::optional<Range> m_range, n_range, k_range;   // GEMMs
  std::optional<Range> seqs_range, keys_max_range;  // attention
  HeldOutError held_out;
  std::optional<RepeatSpread> repeat_spread;  // when some of its cases were measured repeatedly
  // Decode attention fitted on balanced and naive (one block per sequence and head) cases alike: the
  // same held-out predictions over the balanced cases alone, the plan the simulator prices.
  std::optional<HeldOutError> held_out_balanced;
  // The measured cases behind held_out, in its order (Sample::where, measured time), so that each
  // held-out prediction can be named; only in a fit from raw data, not read back from a profile.
  std::vector<std::pair<std::string, double>> held_out_cases;
  std::vector<CandidateError> candidates;
  // Not measured on this GPU (derived from other measurements or a spec sheet): every prediction
  // is flagged, and `note` says where the law comes from.
  bool extrapolated = false;
  std::string note;
  // The law the time comes from before any neighbour correction: the form itself, or a neighbour
  // form's base.
  FitForm base_form() const {
    return form == FitForm::kAttentionNeighbours || form == FitForm::kAttentionPrefillNeighbours ? neighbour_base
                                                                                                 : form;
  }
  std::optional<NeighbourSpace> neighbour_space() const {
    if (form == FitForm::kAttentionNeighbours) return NeighbourSpace::kDecode;
    if (form == FitForm::kAttentionPrefillNeighbours) return NeighbourSpace::kPrefill;
    return std::nullopt;
  }
  // The efficiency curve's axis: flops for GEMMs, the prefill attention curve and an alpha-beta
  // curve on its flops slot; bytes otherwise.
  bool flops_axis() const {
    const FitForm base = base_form();
    return base == FitForm::kGemmRooflineEfficiency || base == FitForm::kGemmRooflineGrid ||
           (base == FitForm::kAttentionLinearEfficiency && straggler_on_flops) ||
           (base == FitForm::kAlphaBetaEfficiency && curve_on_flops);
  }
  const char* axis_name() const { return flops_axis() ? "flops" : "bytes"; }
};

// A query: m, n, k for GEMMs (bytes and flops then follow from ops.h); bytes (and flops for the
// fused RoPE + rotation) for the rest.
struct OpQuery {
  double bytes = 0, flops = 0, m = 0, n = 0, k = 0;
  // Attention: sequences, mean and longest keys per sequence, balanced split (1) or not (0).
  double seqs = 0, keys_mean = 0, keys_max = 0, balanced = 1;
  // Decode attention: K/V bytes as the kernel stages them (rows padded to 32, 64 or 128 elements).
  double stage_bytes = 0;
  // Decode attention: the balanced plan's work units (costmodel/decode_units.h estimate_decode_units).
  double units = 0;
  // Prefill attention: the kernel's padded tile work (costmodel/prefill_tiles.h PrefillTileWork).
  double padded_flops = 0, block_elems = 0, longest_block_flops = 0;
  // Prefill attention: the batch's new tokens, all sequences (attention_prefill_neighbours' place).
  double tokens = 0;
  // Prefill attention, attention_makespan: the blocks' makespan over the SMs with the law's schedule
  // (costmodel/prefill_makespan.h; makespan_query fills it for a measured case).
  costmodel::PrefillMakespanWork makespan{};
  // A GEMM of m output rows: its bytes, FLOPs and m over the rows its kernel computes (m rounded up
  // to whole 128-row tiles above one tile, costmodel::gemm_tiled_rows).
  static OpQuery gemm(double m, double n, double k);
  static OpQuery of(const Sample& s);
};

struct Prediction {
  double time_us = 0;
  bool extrapolated = false;  // outside the measured grid: the number is a guess, never silent
  std::string why;            // which range was left, when extrapolated
};

Prediction predict(const OpFit& fit, const OpQuery& q);
// Whether predict() would flag the query (outside a measured range, or a law not measured on this
// GPU), without building the reason: cheap enough for every query of a simulation.
bool outside_measured(const OpFit& fit, const OpQuery& q);
// The time alone, in us, without the range checks (the simulator's per-iteration path).
double predict_time_us(const OpFit& fit, const OpQuery& q);

struct Peaks {
  double tflops = 0, gbps = 0;
};

// Fits one op from its samples (all of one group); GEMMs need the peaks, `with_flops` adds the
// flops term to the alpha-beta forms. Alpha-beta ops take the efficiency curve only when it lowers
// the held-out error. `decode_plan`: the plan constants decode samples' units were estimated with
// (RawProfile::decode_plan), kept with the decode law so that its units can be estimated again.
OpFit fit_op(const std::string& op, std::vector<Sample> samples, const Peaks& peaks, bool with_flops,
             const std::optional<costmodel::DecodePlanConstants>& decode_plan = std::nullopt);

// The law's time for a measured case (its query built as the fit builds it: for attention_makespan
// with the law's schedule), in us: how `fdcsim profile-report --against` scores a profile on raw
// cases it was not fitted to.
double predict_sample_us(const OpFit& law, const Sample& s);

// A query's place in a neighbour space, one unit about one step of the measured attention grid.
// Decode (attention_neighbours): log2 sequences, log2 mean keys, log2 bytes per (sequence, key)
// (ranks, token classes, KV heads), 4 x staged / read bytes (the stage padding of ranks 96, 48, mixed
// tables), log2 longest / mean keys (the spread), 8 x balanced (the naive and the balanced kernel
// never meet). Prefill (attention_prefill_neighbours): 2 x log2 sequences, 2 x log2 new tokens per
// sequence (a step of the prefill grid is 2-4 units), log2 mean keys / new tokens per sequence (the
// cached context's share), 8 x log2 (q heads x padded width / 4096) (from the blocks' Q tile
// elements: 32 and 40 heads, widths 64 and 128 never meet, their blocks fill the SMs' waves
// differently), 2 x log2 of the ranks' share of the padded width (FLOPs per (token, key) over 4 x
// q heads x padded width: the padding of ranks 96, 32, mixed tables), 2 x log2 longest / mean keys
// (the spread).
std::array<double, 6> neighbour_features(const OpQuery& q, NeighbourSpace space = NeighbourSpace::kDecode);
// `points` sorted by sort_neighbours (the fit and the profile reader sort them), all in `space`.
double neighbour_correction(const std::vector<NeighbourPoint>& points, const OpQuery& q,
                            NeighbourSpace space = NeighbourSpace::kDecode);
void sort_neighbours(std::vector<NeighbourPoint>& points);

// The straggler feature of attention_linear: the longest sequence's work (bytes or flops).
double straggler_work(const OpQuery& q, bool on_flops);

// A measured prefill case's query with its makespan under `schedule`: the case's num_seqs equal
// chunks of tokens / num_seqs new tokens after ctx_mean cached ones (as the benchmark runs them),
// its q heads at its largest rank.
OpQuery makespan_query(const Sample& s, const costmodel::PrefillScheduleConstants& schedule,
                       costmodel::PrefillMakespanScratch& scratch);

}  // namespace fdc::fit
