// Cost model v0: every op's time is the larger of its FLOPs over the GPU's usable compute rate and
// its bytes over the usable memory bandwidth, plus a launch overhead; collectives are alpha-beta
// over the intra-server link. Usable rates are datasheet rates times efficiency factors from the
// config. Built from a spec sheet, so it always reports itself as extrapolated.
#pragma once

#include <vector>

#include "core/config.h"
#include "costmodel/attention_dims.h"
#include "costmodel/cost_model.h"
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
  struct Group {
    int count = 0;
    LayerShard shard;        // most loaded GPU's attention work
    double f_hi = 1.0;       // effective important fraction
    double qkv_out = 0;      // QKV projection output width per GPU (elements per token)
    double rope_in = 0;      // RoPE input width per GPU (0: no RoPE)
    double rope_out = 0;     // RoPE(+rotation) output width per GPU
    double rotate_macs = 0;  // rotation multiply-adds per token per GPU
    double a2a_qkv = 0;      // all-to-all #1 payload width per token (elements)
    double a2a_out = 0;      // all-to-all #2 payload width per token (elements)
    double out_in = 0;       // output projection K dim per GPU
    // Attention per context token and per query row on the most loaded GPU (bytes, FLOP/2).
    double kv_bytes_per_token = 0;  // cached K+V bytes read per context token (class mix)
    double score_dims = 0;          // (qk + v) dims per context token, summed over query heads
    double row_bytes = 0;           // q read + output written + new K/V appended, per new token
  };
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

  ModelSpec model_;
  HardwareSpec hw_;
  ParallelConfig par_;
  RooflineParams params_;
  std::vector<Group> groups_;
  double gemm_rate_, attn_rate_, mem_rate_, link_rate_;  // FLOP/s, FLOP/s, B/s, B/s
  mutable DecodeCache cache_;                            // one model serves one simulator (not shared across threads)
};

}  // namespace fdc::costmodel
