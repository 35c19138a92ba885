// Calibrating a fitted profile's per-iteration overhead from engine timelines: what a real serving
// iteration costs beyond the sum of its ops (kernel launch gaps, host scheduling and planning,
// metadata upload, sampling). The microbenchmarks cannot see it; the engine measures it.
//
// The overhead depends on the model and the parallelism (how many kernels an iteration launches,
// how much each rank plans), so it is calibrated per (model, tp, sp) found in the timelines, into
// the profile op "iteration_overhead/<model>/tp<t>sp<s>" (costmodel::overhead_op), which the cost
// model prefers to the profile's general "iteration_overhead" for that configuration. Timelines of
// policies with token classes calibrate a line of their own, ".../classes" (their iterations also
// classify prompts and plan two-class decode units), which the cost model of such a policy prefers.
//
// For every measured iteration, residual = measured time - (the profile's prediction without its
// current overhead). The calibrated overhead is a + b x (sequences in the batch) + c x (the ops'
// time x the batch's share of prefill rows), fitted by least absolute deviations (a median fit: a
// few slow outliers, such as the first iteration, do not move it): per-sequence host work
// (metadata, plans, sampling) grows with the batch, and a prefill step in the engine may run faster
// or slower than the ops measured back to back predict (an H100's prefill steps ran 5-8% faster
// than its layer checks: docs/validate.md). The prefill term is fitted only from timelines with at
// least 10 iterations with prefill, and only when asked for (`fdcsim fit --overhead-prefill`; else
// c = 0: on the H200 the bursts' prefill steps and the held-out Poisson runs' disagreed). Held-out
// error: each half of every timeline (in time order) is predicted with the line fitted on the
// other halves, and the absolute percentage errors of those iteration times give the median and P90.
#pragma once

#include <string>
#include <vector>

#include "costmodel/fitted.h"
#include "costmodel/fit/profile_fit.h"
#include "sim/timeline.h"

namespace fdc::validate {

struct OverheadCalibration {
  std::string op;            // "iteration_overhead/<model>/tp<t>sp<s>"
  double overhead_us = 0;    // a: per iteration
  double per_seq_us = 0;     // b: per sequence of the batch
  double prefill_scale = 0;  // c: times the ops' time of the batch's prefill rows
  int prefill_iterations = 0;  // iterations with prefill rows
  double previous_us = 0;    // the profile's overhead before
  int iterations = 0;
  double held_out_median_pct = 0, held_out_p90_pct = 0;
  double before_median_pct = 0, before_p90_pct = 0;  // error of the profile as it was, same iterations
  double residual_p10_us = 0, residual_p90_us = 0;   // spread of the residuals
};

// One calibration per (model, tp, sp) in the timelines, in order of first appearance.
// `timeline_paths` must be engine runs on the profile's GPU (InputError naming the file otherwise).
// With `prefill_term`, the prefill term c is fitted too (else c = 0).
std::vector<OverheadCalibration> calibrate_overhead(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                                    const std::vector<std::string>& timeline_paths,
                                                    bool prefill_term = false);

// The file names (no folders) of `paths`, comma-separated: what a calibration's note cites.
std::string file_names(const std::vector<std::string>& paths);

// The profile with each calibration's op set to its line (measured, not extrapolated; note and
// held-out error say where it comes from). The general iteration_overhead is left as it was.
fit::FittedProfile with_overhead(fit::FittedProfile profile, const std::vector<OverheadCalibration>& calibrations,
                                 const std::vector<std::string>& timeline_paths);

}  // namespace fdc::validate
