#include "costmodel/roofline.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace fdc::costmodel {

RooflineParams parse_roofline_params(const ConfigNode& n) {
  RooflineParams p;
  p.gemm_efficiency = n.get_or<double>("gemm_efficiency", p.gemm_efficiency, {0.0, 1.0, true});
  p.attention_efficiency = n.get_or<double>("attention_efficiency", p.attention_efficiency, {0.0, 1.0, true});
  p.memory_efficiency = n.get_or<double>("memory_efficiency", p.memory_efficiency, {0.0, 1.0, true});
  p.link_efficiency = n.get_or<double>("link_efficiency", p.link_efficiency, {0.0, 1.0, true});
  p.kernel_launch_us = n.get_or<double>("kernel_launch_us", p.kernel_launch_us, Bounds::non_negative());
  p.collective_latency_us = n.get_or<double>("collective_latency_us", p.collective_latency_us, Bounds::non_negative());
  p.iteration_overhead_us = n.get_or<double>("iteration_overhead_us", p.iteration_overhead_us, Bounds::non_negative());
  return p;
}

RooflineCostModel::RooflineCostModel(const ModelSpec& model, const HardwareSpec& hw, const ModelDims& dims,
                                     ParallelConfig par, RooflineParams params)
    : model_(model), hw_(hw), par_(par), params_(params), groups_(layer_shapes(model, dims, par)) {
  gemm_rate_ = hw.bf16_dense_tflops * 1e12 * params.gemm_efficiency;
  attn_rate_ = hw.bf16_dense_tflops * 1e12 * params.attention_efficiency;
  mem_rate_ = hw.hbm_bandwidth_gb_per_s * 1e9 * params.memory_efficiency;
  link_rate_ = hw.nvlink_bandwidth_gb_per_s * 1e9 * params.link_efficiency;
}

double RooflineCostModel::seconds(const OpCall& c) const {
  switch (c.rate) {
    case RooflineRate::kLink:
      return params_.collective_latency_us * 1e-6 + c.work.comm_bytes / link_rate_;
    case RooflineRate::kNone:
      return params_.iteration_overhead_us * 1e-6;
    case RooflineRate::kGemm:
      return std::max(c.work.flops / gemm_rate_, c.work.bytes / mem_rate_) + params_.kernel_launch_us * 1e-6;
    case RooflineRate::kAttention:
      return std::max(c.work.flops / attn_rate_, c.work.bytes / mem_rate_) + params_.kernel_launch_us * 1e-6;
    case RooflineRate::kMemory:
      return std::max(c.work.flops / mem_rate_, c.work.bytes / mem_rate_) + params_.kernel_launch_us * 1e-6;
  }
  return 0;
}

template <bool kBreakdown>
Nanos RooflineCostModel::compute(const BatchTotals& b, OpBreakdown* bd, DecodeCache* cache) const {
  double total = 0;
  for_each_op(model_, par_, groups_, b, [&](const OpCall& c) { total = add<kBreakdown>(c, total, bd); });
  // Decode attention last: it is the only term that changes along a steady decode run, so
  // decode_time_shifted() can start from the cached sum of everything above (same order of
  // additions, so the same bits as a full evaluation).
  if constexpr (!kBreakdown) {
    if (cache) {
      cache->rest_seconds = total;
      cache->valid = true;
    }
  }
  return Nanos::from_seconds(add_decode_attention<kBreakdown>(b, total, bd));
}

template <bool kBreakdown>
double RooflineCostModel::add(const OpCall& c, double total, OpBreakdown* bd) const {
  const double s = seconds(c);
  if constexpr (kBreakdown) record(*bd, c, s);
  return total + s * c.times;
}

template <bool kBreakdown>
double RooflineCostModel::add_decode_attention(const BatchTotals& b, double total, OpBreakdown* bd) const {
  for_each_decode_attention(groups_, b, [&](const OpCall& c) { total = add<kBreakdown>(c, total, bd); });
  return total;
}

Nanos RooflineCostModel::iteration_time(const Batch& batch) const {
  return compute<false>(batch.totals, nullptr, nullptr);
}

Nanos RooflineCostModel::iteration_time(const Batch& batch, OpBreakdown& breakdown) const {
  return compute<true>(batch.totals, &breakdown, nullptr);
}

Nanos RooflineCostModel::decode_time_shifted(const Batch& batch, int64_t extra_context) const {
  BatchTotals t = batch.totals;
  FDC_CHECK(t.prefill_seqs == 0, "decode_time_shifted on a batch with prefills");
  t.decode_kv_tokens += t.decode_seqs * extra_context;
  // Every term but decode attention depends on the counts alone, fixed along a run.
  const bool hit = cache_.valid && cache_.num_seqs == t.num_seqs && cache_.new_tokens == t.new_tokens &&
                   cache_.logits_rows == t.logits_rows && cache_.decode_seqs == t.decode_seqs;
  if (!hit) {
    cache_ = DecodeCache{};
    cache_.num_seqs = t.num_seqs;
    cache_.new_tokens = t.new_tokens;
    cache_.logits_rows = t.logits_rows;
    cache_.decode_seqs = t.decode_seqs;
    return compute<false>(t, nullptr, &cache_);
  }
  return Nanos::from_seconds(add_decode_attention<false>(t, cache_.rest_seconds, nullptr));
}

std::string RooflineCostModel::describe() const {
  std::ostringstream os;
  os << "roofline v0 from the " << hw_.gpu << " spec sheet (extrapolated): gemm " << params_.gemm_efficiency
     << ", attention " << params_.attention_efficiency << ", memory " << params_.memory_efficiency << ", link "
     << params_.link_efficiency << " of peak";
  return os.str();
}

}  // namespace fdc::costmodel
