// A fitted profile: every op's law for one GPU model, with the provenance of its measurements.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "core/config.h"
#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/raw_reader.h"

namespace fdc::fit {

// How ops of a forward pass run against their isolated microbenchmarks (fdcsim fit --in-layer-from
// for the GEMMs, --attn-in-layer-from for prefill attention; docs/fit.md): an efficiency (the law's
// time over the time inside a measured layer) per measured row count, interpolated in log2 rows and
// constant beyond the ends. The cost model divides the op's law time by it (GEMMs at their M,
// prefill attention at the call's prompt rows).
struct InLayerCalibration {
  std::vector<Knot> knots;  // (log2 rows, efficiency), rows ascending
  Range rows;               // the row counts measured
  int points = 0;           // batches of the layer-check reports it comes from
  HeldOutError held_out;    // the layers' op time per batch, each report predicted by the others' knots
  HeldOutError before;      // the same batches without the correction
  std::string note;         // where it comes from
  double efficiency(double rows_m) const;
};

// Decode attention inside a forward pass against back to back (fdcsim fit --decode-in-layer-from;
// docs/fit.md): the time one call of a decode kernel (one layer's launch) takes longer in the stream
// of a layer than its law says, added to the law's time.
struct InLayerOffset {
  double extra_us = 0;    // per call
  int points = 0;         // batches of the layer-check reports it comes from
  HeldOutError held_out;  // the layers' decode time per batch, each report predicted by the others' offsets
  HeldOutError before;    // the same batches without the offsets
  std::string note;       // where it comes from
};

struct FittedProfile {
  std::string gpu;
  std::string fitted_by;         // the command(s) that made it, as read back (written by write_profile's `command`)
  Json sources = Json::array();  // per raw folder: folder, cases used and excluded, provenance.json
  Peaks peaks;
  std::string peaks_source;
  // Derived for a GPU nobody measured (fdcsim fit --derive): every op is extrapolated; `derived`
  // records from what and how.
  bool extrapolated = false;
  Json derived = nullptr;
  std::map<std::string, OpFit> ops;                         // by op group name (raw_reader.h)
  std::optional<InLayerCalibration> gemm_in_layer;          // absent: GEMMs as their laws say
  std::optional<InLayerCalibration> attn_prefill_in_layer;  // absent: prefill attention as its law says
  // Norms, RoPE (+ rotation), KV append, residual adds and the MLP activation; absent: as their laws say.
  std::optional<InLayerCalibration> elementwise_in_layer;
  // Per decode kernel, by its law's name (attn_decode, attn_decode/tensor_cores,
  // attn_decode/shared_pages); a kernel absent: as its law says.
  std::map<std::string, InLayerOffset> attn_decode_in_layer;
  const OpFit* find(const std::string& op) const {
    const auto it = ops.find(op);
    return it == ops.end() ? nullptr : &it->second;
  }
};

// Terms of the attention laws that are off by default (docs/fit.md says why).
struct FitSwitches {
  // The decode law also prices the balanced plan's units (AttnFeatures::units; every decode case
  // needs the GPU's SM count for them, an InputError naming the case otherwise) and keeps the plan
  // constants; without it the column is left out and the law is the seven-column one.
  bool decode_units = false;
  // Prefill also tries attention_makespan, the tile law plus its blocks' makespan over the SMs
  // (every prefill case needs the GPU's SM count, an InputError naming the case otherwise); the
  // candidate nearest the held-out target is taken as for every op.
  bool prefill_makespan = false;
};

// Groups the samples by op and fits each group; then adds the carried-over entries for the ops the
// raw data lacks (add_carried_ops).
FittedProfile fit_profile(const RawProfile& raw, const FitSwitches& switches = {});
// The spread of the repetitions of the samples run more than once; none when no sample was.
std::optional<RepeatSpread> repeat_spread(const std::vector<Sample>& samples);

// The per-iteration overhead assumed when no iteration_overhead case was measured, in us.
inline constexpr double kAssumedIterationOverheadUs = 200.0;

// Ops the simulator needs that no measurement covers yet, each flagged extrapolated with its source:
//  - attn_prefill, attn_decode (roofline_derived): bytes and flops at the measured peaks times the
//    efficiencies of the measured ops (median GEMM efficiency for flops; median element-wise
//    bandwidth over the copy peak for bytes; median element-wise alpha); replaced once attention
//    cases are measured (attention.json);
//  - iteration_overhead (constant): kAssumedIterationOverheadUs until iteration_overhead cases exist.
void add_carried_ops(FittedProfile& p);

}  // namespace fdc::fit
