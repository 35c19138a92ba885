// Calibrating how a profile's GEMMs run inside a forward pass (fdcsim fit --in-layer-from,
// docs/fit.md): the GEMM laws are fitted to microbenchmarks that run one kernel back to back; in the
// stream of a layer the same GEMMs run at another speed (at 2048 rows about 4-10% slower on the
// H100 and H200, where the rest of the layer's kernels interleave with them).
//
// Input: layer-check reports measured per op (`fdcsim layer-check --per-op`) on the profile's GPU.
// For every batch of every report, the layer's four GEMMs (QKV, output projection, MLP up and down)
// are priced by the profile's laws alone and compared with their measured sum. Batches whose row
// counts lie within a factor of 1.25 of the smallest in their group form one knot (at the
// prediction-weighted mean of their log2 rows): efficiency = sum of predicted / sum of measured.
// The cost model divides each GEMM's time by the efficiency interpolated at its row count
// (fit::InLayerGemm), constant beyond the measured rows.
//
// Held out: each report's batches predicted with the knots of the other reports (leave one report
// out), absolute percentage error of their GEMM time; `before` is the same without the correction.
#pragma once

#include <string>
#include <vector>

#include "costmodel/fit/profile_fit.h"
#include "costmodel/fitted.h"

namespace fdc::validate {

// One batch of a report: its rows (new tokens), the GEMM time the profile's laws predict and the
// time measured in the layer, ms per layer.
struct InLayerPoint {
  int report = 0;
  double rows = 0, predicted_ms = 0, measured_ms = 0;
};

// The points of the reports, priced with `profile` (any gemm_in_layer of it ignored). Throws
// InputError naming the file when a report was measured on another GPU or has no per-op times.
std::vector<InLayerPoint> in_layer_points(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                          const std::vector<std::string>& report_paths);

// The knots of the points (see the file comment); throws InputError when there are none.
std::vector<fit::Knot> in_layer_knots(const std::vector<InLayerPoint>& points);

// The whole calibration: knots, measured rows, held-out and before errors, note naming the files.
fit::InLayerGemm calibrate_gemm_in_layer(const fit::FittedProfile& profile, const costmodel::ProfileRef& ref,
                                         const std::vector<std::string>& report_paths);

}  // namespace fdc::validate
