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
    : model_(model), hw_(hw), par_(par), params_(params) {
  gemm_rate_ = hw.bf16_dense_tflops * 1e12 * params.gemm_efficiency;
  attn_rate_ = hw.bf16_dense_tflops * 1e12 * params.attention_efficiency;
  mem_rate_ = hw.hbm_bandwidth_gb_per_s * 1e9 * params.memory_efficiency;
  link_rate_ = hw.nvlink_bandwidth_gb_per_s * 1e9 * params.link_efficiency;
  const double t = par.tp, d = model.head_dim;
  const int group = model.group_size();
  for (const LayerGroup& lg : group_layers(dims)) {
    Group g;
    g.count = lg.count;
    g.shard = max_shard(lg.dims, model.num_heads, par.gpus());
    g.f_hi = lg.dims.important_fraction;
    // Totals over the layer (all heads), sharded over tp.
    double q_qk = 0, q_v = 0, k_qk = 0, k_v = 0, rot = 0;
    for (size_t j = 0; j < lg.dims.kv_heads.size(); ++j) {
      const KvHeadDims& h = lg.dims.kv_heads[j];
      q_qk += group * h.qk_hi;
      q_v += group * h.v_hi;
      k_qk += h.qk_hi;
      k_v += h.v_hi;
      if (h.qk_hi < model.head_dim) rot += (group + 1) * d * h.qk_hi;  // d x r rotation per head
    }
    if (model.rope) {
      // W_q, W_k cannot absorb the rotation (RoPE sits between): full q and k come out of the
      // projection; a fused RoPE(+rotation) kernel writes the compressed ones.
      g.qkv_out = ((model.num_heads + model.num_kv_heads) * d + k_v) / t;
      g.rope_in = (model.num_heads + model.num_kv_heads) * d / t;
      g.rope_out = (q_qk + k_qk) / t;
      g.rotate_macs = rot / t;
    } else {
      g.qkv_out = (q_qk + k_qk + k_v) / t;  // rotations folded into W_q, W_k, W_v
    }
    g.a2a_qkv = (q_qk + k_qk + k_v) / t;
    g.a2a_out = q_v / t;
    g.out_in = q_v / t;  // W_o' = R_v^T W_o: K dim shrinks with r_v
    const LayerShard& sh = g.shard;
    const double f = g.f_hi, e = model.dtype_bytes;
    g.kv_bytes_per_token = e * (f * static_cast<double>(sh.kv_dims_hi) + (1 - f) * static_cast<double>(sh.kv_dims_lo));
    g.score_dims = f * static_cast<double>(sh.score_dims_hi) + (1 - f) * static_cast<double>(sh.score_dims_lo);
    g.row_bytes = e * static_cast<double>(sh.q_qk_dims + sh.q_v_dims + sh.kv_dims_hi);
    groups_.push_back(g);
  }
}

namespace {
inline double roof(const OpWork& w, double flop_rate, double byte_rate) {
  return std::max(w.flops / flop_rate, w.bytes / byte_rate);
}
}  // namespace

template <bool kBreakdown>
Nanos RooflineCostModel::compute(const BatchTotals& b, OpBreakdown* bd, DecodeCache* cache) const {
  const double e = model_.dtype_bytes, D = model_.hidden, F = model_.ffn_hidden, t = par_.tp;
  const int sp = par_.sp;
  const double M = std::ceil(static_cast<double>(b.new_tokens) / sp);  // rows per GPU
  const double launch = params_.kernel_launch_us * 1e-6;
  const double alpha = params_.collective_latency_us * 1e-6;
  double total = 0;
  auto add = [&](OpKind k, const OpWork& w, double seconds, double times) {
    total += seconds * times;
    if constexpr (kBreakdown) {
      auto i = static_cast<size_t>(k);
      bd->seconds[i] += seconds * times;
      bd->work[i].flops += w.flops * times;
      bd->work[i].bytes += w.bytes * times;
      bd->work[i].comm_bytes += w.comm_bytes * times;
    }
  };
  auto kernel = [&](OpKind k, const OpWork& w, double flop_rate, double times) {
    add(k, w, roof(w, flop_rate, mem_rate_) + launch, times);
  };
  auto collective = [&](OpKind k, double payload_bytes, double send_factor, double times) {
    OpWork w{0, 0, payload_bytes * send_factor};
    add(k, w, alpha + w.comm_bytes / link_rate_, times);
  };

  for (const Group& g : groups_) {
    const double n = g.count;
    kernel(OpKind::kNorm, elementwise_work(M * D, M * D, e, 4.0), mem_rate_, 2 * n);
    kernel(OpKind::kQkvProj, gemm_work(M, g.qkv_out, D, e), gemm_rate_, n);
    if (g.rope_in > 0) {
      kernel(OpKind::kRopeRotate, rope_rotate_work(M, g.rope_in, g.rope_out, g.rotate_macs, e), gemm_rate_, n);
    }
    if (sp > 1) collective(OpKind::kAllToAllQkv, M * g.a2a_qkv * e, alltoall_send_factor(sp), n);
    if (b.prefill_seqs > 0) {
      OpWork w{2.0 * b.prefill_pairs * g.score_dims,
               static_cast<double>(b.prefill_kv_tokens) * g.kv_bytes_per_token +
                   static_cast<double>(b.prefill_tokens) * g.row_bytes,
               0};
      kernel(OpKind::kAttnPrefill, w, attn_rate_, n);
    }
    if (sp > 1) collective(OpKind::kAllToAllOut, M * g.a2a_out * e, alltoall_send_factor(sp), n);
    kernel(OpKind::kOutProj, gemm_work(M, D, g.out_in, e), gemm_rate_, n);
    if (par_.tp > 1) collective(OpKind::kAllReduce, M * D * e, allreduce_send_factor(par_.tp), 2 * n);
    kernel(OpKind::kResidual, elementwise_work(2 * M * D, M * D, e), mem_rate_, 2 * n);
    if (model_.mlp == MlpKind::kGated) {
      kernel(OpKind::kMlpUp, gemm_work(M, 2 * F / t, D, e), gemm_rate_, n);
      kernel(OpKind::kMlpAct, elementwise_work(2 * M * F / t, M * F / t, e, 4.0), mem_rate_, n);
    } else {
      kernel(OpKind::kMlpUp, gemm_work(M, F / t, D, e), gemm_rate_, n);
      kernel(OpKind::kMlpAct, elementwise_work(M * F / t, M * F / t, e, 1.0), mem_rate_, n);
    }
    kernel(OpKind::kMlpDown, gemm_work(M, D, F / t, e), gemm_rate_, n);
  }
  // Once per iteration: final norm and LM head on the rows that emit a token.
  const double rows = std::ceil(static_cast<double>(b.logits_rows) / sp);
  if (rows > 0) {
    kernel(OpKind::kNorm, elementwise_work(rows * D, rows * D, e, 4.0), mem_rate_, 1);
    kernel(OpKind::kLmHead, gemm_work(rows, model_.vocab / t, D, e), gemm_rate_, 1);
    if (par_.tp > 1) collective(OpKind::kAllGather, rows * (model_.vocab / t) * e, allgather_send_factor(par_.tp), 1);
  }
  add(OpKind::kIterationOverhead, OpWork{}, params_.iteration_overhead_us * 1e-6, 1);
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
double RooflineCostModel::add_decode_attention(const BatchTotals& b, double total, OpBreakdown* bd) const {
  if (b.decode_seqs == 0) return total;
  const double launch = params_.kernel_launch_us * 1e-6;
  for (const Group& g : groups_) {
    OpWork w{2.0 * static_cast<double>(b.decode_kv_tokens) * g.score_dims,
             static_cast<double>(b.decode_kv_tokens) * g.kv_bytes_per_token +
                 static_cast<double>(b.decode_seqs) * g.row_bytes,
             0};
    const double seconds = roof(w, attn_rate_, mem_rate_) + launch;
    total += seconds * g.count;
    if constexpr (kBreakdown) {
      auto i = static_cast<size_t>(OpKind::kAttnDecode);
      bd->seconds[i] += seconds * g.count;
      bd->work[i].flops += w.flops * g.count;
      bd->work[i].bytes += w.bytes * g.count;
    }
  }
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
