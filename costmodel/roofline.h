// Cost model v0: every op's time is the larger of its FLOPs over the GPU's usable compute rate and
// its bytes over the usable memory bandwidth, plus a launch overhead; collectives are alpha-beta
// over the intra-server link. Usable rates are datasheet rates times efficiency factors from the
// config. Built from a spec sheet, so it always reports itself as extrapolated.
#pragma once

#include <vector>

#include "core/config.h"
#include "costmodel/attention_dims.h"
#include "costmodel/cost_model.h"
#include "costmodel/forward_pass.h"
#include "costmodel/hardware_spec.h"
#include "costmodel/model_spec.h"

namespace fdc::costmodel {

struct RooflineParams {
  double gemm_efficiency = 0.75;         // of bf16_dense_tflops for GEMMs
  double attention_efficiency = 0.5;     // of bf16_dense_tflops for attention FLOPs
  double memory_efficiency = 0.88;       // of hbm_bandwidth_gb_per_s for streaming ops
  double link_efficiency = 0.8;          // of nvlink_bandwidth_gb_per_s for collectives
  double kernel_launch_us = 2.0;         // added to every kernel
  double collective_latency_us = 10.0;   // alpha of every collective
  double iteration_overhead_us = 200.0;  // scheduling, sampling and launch gaps per iteration
};

RooflineParams parse_roofline_params(const ConfigNode& node);

class RooflineCostModel final : public CostModel {
 public:
  RooflineCostModel(const ModelSpec& model, const HardwareSpec& hw, const ModelDims& dims, ParallelConfig par,
                    RooflineParams params);

  Nanos iteration_time(const Batch& batch) const override;
  Nanos iteration_time(const Batch& batch, OpBreakdown& breakdown) const override;
  Nanos decode_time_shifted(const Batch& batch, int64_t extra_context) const override;
  std::string describe() const override;
  bool extrapolated() const override { return true; }

 private:
  // Sum of every term except decode attention for one set of batch counts (steady decode runs).
  struct DecodeCache {
    bool valid = false;
    int64_t num_seqs = 0, new_tokens = 0, logits_rows = 0, decode_seqs = 0;
    double rest_seconds = 0;
  };
  template <bool kBreakdown>
  Nanos compute(const BatchTotals& b, OpBreakdown* breakdown, DecodeCache* cache) const;
  template <bool kBreakdown>
  double add_decode_attention(const BatchTotals& b, double total, OpBreakdown* breakdown) const;
  template <bool kBreakdown>
  double add(const OpCall& c, double total, OpBreakdown* breakdown) const;
  double seconds(const OpCall& c) const;

  ModelSpec model_;
  HardwareSpec hw_;
  ParallelConfig par_;
  RooflineParams params_;
  std::vector<LayerShapes> groups_;
  double gemm_rate_, attn_rate_, mem_rate_, link_rate_;  // FLOP/s, FLOP/s, B/s, B/s
  mutable DecodeCache cache_;                            // one model serves one simulator (not shared across threads)
};

}  // namespace fdc::costmodel
