// Measured vs predicted: the comparison half of validation. Runs on the CPU from saved timelines
// (sim/timeline.h), so it is tested without a GPU.
//  - Iteration level: every measured iteration's batch is costed by the cost model and its time
//    compared with the measured one (the same batches, so any error is the time model's).
//  - Request level: TTFT, TBT and JCT percentiles of the measured run against those of the
//    simulator's run of the same config and workload.
//  - SLO: attainment and goodput under the experiment's slo section, from each timeline's
//    per-request token times, with the simulator's own definitions.
//  - KV memory: blocks per replica must be equal (the engine allocates from the same layout).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/cost_model.h"
#include "sim/experiment.h"
#include "sim/timeline.h"

namespace fdc::validate {

// The q-quantile of sorted values, linear between order statistics (the "R-7" definition); 0 when empty.
double quantile_sorted(const std::vector<double>& v, double q);

// Relative errors (predicted / measured - 1) of a set of items.
struct ErrorStats {
  size_t count = 0;
  double median_abs = 0, p90_abs = 0, worst_abs = 0;  // of |error|
  double mean = 0;                                    // signed: > 0 predicts too slow
};
ErrorStats error_stats(std::vector<double> errors);

struct IterationErrors {
  ErrorStats all, prefill, decode, mixed;  // by batch kind
  std::vector<double> measured_s, predicted_s;  // per iteration, in measured order
  std::vector<std::string> kind;
  std::vector<int64_t> seqs, new_tokens;  // the batch: sequences and new tokens
  // The prediction by op (seconds, costmodel::op_name order): where a miss comes from.
  std::vector<std::array<double, costmodel::kNumOpKinds>> predicted_op_s;
};
IterationErrors compare_iterations(const sim::Timeline& measured, const costmodel::CostModel& cost);

// Iterations of one kind grouped by a size in powers of two (1, 2-3, 4-7, ...): where along the
// batch size a time model is off. `summed_error` is sum(predicted) / sum(measured) - 1, the bias a
// queue integrates; `median_abs` the median |error| of the bin's iterations.
struct SizeBin {
  int64_t lo = 0, hi = 0;  // the size, inclusive
  size_t count = 0;
  double summed_error = 0, median_abs = 0;
};
// Decode iterations by the sequences in the batch.
std::vector<SizeBin> decode_by_sequences(const IterationErrors& it);
// Prefill iterations by the new tokens of the batch (its prompt rows).
std::vector<SizeBin> prefill_by_tokens(const IterationErrors& it);

struct PercentilePair {
  double measured = 0, predicted = 0;
  // Request percentiles: where the predicted value lies in the measured distribution, as a
  // quantile in [0, 1] (the share of measured samples below it, ties counted half; -1 when not
  // computed). A value error read as a quantile error: in a tail with a step (TBT gaps that span a
  // prefill) a P99 off by 40% may be the measured P99.4.
  double measured_quantile = -1;
  double error() const { return measured > 0 ? predicted / measured - 1.0 : 0.0; }
};
struct RequestErrors {
  // metric ("ttft", "tbt", "jct") -> P50, P90, P99 in seconds.
  std::map<std::string, std::array<PercentilePair, 3>> percentiles;
  PercentilePair throughput_rps;  // completed / (first arrival .. last token)
  // Sustained throughput: output tokens emitted from the first arrival until the last request was
  // first scheduled, per second, divided by the mean output length of the completed requests - the
  // request rate the server keeps up while requests are waiting. With every request arriving at
  // once (workload.arrival.process "burst") this is the server's capacity, free of the drain at the
  // end of the run (and, counting tokens rather than finished requests, of the first wave's late
  // finishes). 0 when the window is empty (every request scheduled on arrival).
  PercentilePair sustained_rps;
  int64_t measured_completed = 0, predicted_completed = 0;
  // Whether the measured sustained throughput is a capacity: at least half the run's throughput.
  // A server that holds every request of a burst at once schedules the last one within the first
  // prefills; the window then holds almost no decode and its rate is far below what the run
  // completed (an H200 with FDC 50% and 160 requests: 0.04 against 5.1 req/s).
  bool sustained_loaded() const {
    return sustained_rps.measured > 0 && sustained_rps.measured >= 0.5 * throughput_rps.measured;
  }
};
// A timeline's completed requests as samples, each list sorted: TTFT, every TBT gap, JCT (seconds).
struct RequestSamples {
  std::vector<double> ttft, tbt, jct;
  int64_t completed = 0;
  double first_arrival = 0, last_finish = 0;  // seconds, over the completed requests
};
RequestSamples request_samples(const sim::Timeline& t);
// A timeline's sustained throughput (as RequestErrors::sustained_rps).
double sustained_throughput(const sim::Timeline& t);
RequestErrors compare_requests(const sim::Timeline& measured, const sim::Timeline& predicted);

// A timeline's SLO figures. A completed request meets the SLO when its TTFT (first token - arrival)
// <= slo.ttft_ms and its TPOT ((last token - first token) / (output - 1), integer nanoseconds; 0 for
// one output token) <= slo.tpot_ms: the simulator's summary counts it the same way.
struct SloFigures {
  int64_t completed = 0, met = 0;
  int64_t ttft_met = 0, tpot_met = 0;  // each condition alone
  double attainment = 0;               // met / completed (0 with no completed request)
  double goodput_rps = 0;              // met per second, first arrival to last token of completed requests
};
SloFigures slo_figures(const sim::Timeline& t, const sim::SloConfig& slo);
// A completed request's TPOT as the SLO counts it, in integer nanoseconds.
int64_t request_tpot_ns(const sim::RequestRecord& r);

struct SloComparison {
  sim::SloConfig slo;
  SloFigures measured, predicted;
  // Predicted minus measured attainment, as a fraction (0.05 = 5 percentage points).
  double attainment_difference() const { return predicted.attainment - measured.attainment; }
  PercentilePair goodput() const { return {measured.goodput_rps, predicted.goodput_rps}; }
};
SloComparison compare_slo(const sim::Timeline& measured, const sim::Timeline& predicted, const sim::SloConfig& slo);

// The prediction band: the request metrics of the simulator's runs with every iteration (1 -
// fraction) and (1 + fraction) times as long as the cost model says (costmodel.time_scale), next
// to the central prediction. Near saturation a queue turns a percent of iteration time into tens
// of percent of TTFT; the band says how far the metrics move for an iteration error of that size,
// and whether the measured value lies within it (`fdcsim validate --band`).
struct MetricBand {
  double lo = 0, hi = 0;  // the smallest and largest of the predictions
  double measured = 0;
  bool inside() const { return lo <= measured && measured <= hi; }
};
struct PredictionBand {
  double fraction = 0;                                           // the iteration-time band: +-fraction
  std::map<std::string, std::array<MetricBand, 3>> percentiles;  // as RequestErrors: P50, P90, P99
  MetricBand throughput_rps, sustained_rps;
  std::optional<MetricBand> slo_attainment;  // with an SLO
  // Of TTFT, TBT and JCT at P50 and P99 (the request target's six metrics): how many lie within.
  int target_metrics_inside() const;
  Json to_json() const;
};
// predictions: the comparisons of the central prediction and of those at the band's ends, any
// order, each against the same measured run (not empty). slo: one per prediction, or empty.
PredictionBand prediction_band(double fraction, const std::vector<RequestErrors>& predictions,
                               const std::vector<SloComparison>& slo = {});

struct Targets {
  double iteration_median = 0.03, iteration_p90 = 0.08, request_percentile = 0.05;
};

struct Report {
  IterationErrors iterations;
  RequestErrors requests;
  int64_t measured_blocks = 0, predicted_blocks = 0;
  std::optional<SloComparison> slo;  // when compare() was given an SLO
  Targets targets;
  bool iteration_target_met() const;
  bool request_target_met() const;  // P50 and P99 of TTFT, TBT, JCT
  bool blocks_equal() const { return measured_blocks == predicted_blocks; }
  Json to_json() const;
};
// slo: the experiment's SLO section; without it the report has no SLO figures.
Report compare(const sim::Timeline& measured, const sim::Timeline& predicted, const costmodel::CostModel& cost,
               const std::optional<sim::SloConfig>& slo = std::nullopt);

}  // namespace fdc::validate
