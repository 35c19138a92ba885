// Calibrating how a profile's ops run inside a forward pass (fdcsim fit --in-layer-from for the
// GEMMs, --attn-in-layer-from for prefill attention, --elementwise-in-layer-from for the norms,
// RoPE, KV append, residual and activation, --decode-in-layer-from for decode attention, below;
// docs/fit.md): the laws are fitted to microbenchmarks
// that run one kernel back to back; in the stream of a layer the same kernels run at another speed
// (GEMMs at 2048 rows about 4-10% slower on the H100 and H200, prefill attention 10-36%, the short
// element-wise kernels 15-35%, where the rest of the layer's kernels interleave with them).
//
// Input: layer-check reports measured per op (`fdcsim layer-check --per-op`) on the profile's GPU.
// For every batch of every report that runs the target's ops, those ops (the four GEMMs: QKV, output
// projection, MLP up and down; prefill attention; or the element-wise ops) are priced by the
// profile's laws alone and compared with their measured sum. The rows of a batch are its new tokens
// for the GEMMs and the element-wise ops, its prompt tokens for prefill attention. Batches whose row
// counts lie within a factor of 1.25 of the smallest in their group form one knot (at the
// prediction-weighted mean of their log2 rows): efficiency = sum of predicted / sum of measured. The cost model divides
// the op's time by the efficiency interpolated at its row count (fit::InLayerCalibration), constant beyond the measured
// rows.
//
// Held out: each report's batches predicted with the knots of the other reports (leave one report
// out), absolute percentage error of the target's time; `before` is the same without the correction.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "costmodel/fit/profile_fit.h"
#include "costmodel/fitted.h"

namespace fdc::validate {

// Which ops a calibration covers (and which of the profile's calibrations it makes).
// kElementwise: norms, RoPE (+ rotation), KV append, residual adds and the MLP activation, at the
// batch's new rows as the GEMMs.
enum class InLayerTarget { kGemms, kAttnPrefill, kElementwise };

// One batch of a report: its rows, the target's time the profile's laws predict and the time
// measured in the layer, ms per layer.
struct InLayerPoint {
  int report = 0;
  double rows = 0, predicted_ms = 0, measured_ms = 0;
};

// The points of the reports, priced with `profile` (its calibration of the target ignored). Throws
// InputError naming the file when a report was measured on another GPU, has no per-op times, or
// has no batch running the target's ops.
std::vector<InLayerPoint> in_layer_points(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                          const std::vector<std::string>& report_paths,
                                          InLayerTarget target = InLayerTarget::kGemms);

// The knots of the points (see the file comment); throws InputError when there are none.
std::vector<fit::Knot> in_layer_knots(const std::vector<InLayerPoint>& points);

// The whole calibration: knots, measured rows, held-out and before errors, note naming the files.
fit::InLayerCalibration calibrate_in_layer(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                           const std::vector<std::string>& report_paths,
                                           InLayerTarget target = InLayerTarget::kGemms);

// The profile's calibration of `target` (gemm_in_layer, attn_prefill_in_layer, elementwise_in_layer).
std::optional<fit::InLayerCalibration>& in_layer_of(fit::FittedProfile& profile, InLayerTarget target);

// Decode attention in a layer (fdcsim fit --decode-in-layer-from; docs/fit.md): per decode kernel,
// the time one call (one layer's launch) takes longer inside a layer than its law says. Input as
// above; the batches used are those that decode only (the engine runs prefill and decode in separate
// iterations). Per batch, the decode time measured in the layer minus the laws' (the profile's
// offsets left out) is the sum over kernels of the kernel's calls per layer times its extra time;
// the extra times are the least-squares solution over the batches (Eigen), for the kernels that run
// in them. Held out: each report's batches predicted with the offsets of the other reports (those
// whose kernels the others do not run are left out); each batch counts for the kernel of most of
// its calls.
struct DecodeInLayerPoint {
  int report = 0;
  std::array<double, costmodel::kNumDecodeKernels> calls{};  // per layer
  double predicted_us = 0, measured_us = 0;                  // decode attention per layer
};
std::vector<DecodeInLayerPoint> decode_in_layer_points(const fit::FittedProfile& profile,
                                                       const costmodel::ProfileRef& ref,
                                                       const std::vector<std::string>& report_paths);
// Extra time per call by kernel (0 for kernels no point runs); throws InputError when no point.
std::array<double, costmodel::kNumDecodeKernels> decode_in_layer_extra_us(
    const std::vector<DecodeInLayerPoint>& points);
std::map<std::string, fit::InLayerOffset> calibrate_decode_in_layer(const fit::FittedProfile& profile,
                                                                    const costmodel::ProfileRef& ref,
                                                                    const std::vector<std::string>& report_paths);

}  // namespace fdc::validate
