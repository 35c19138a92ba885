#include "costmodel/forward_pass.h"

#include <cmath>

namespace fdc::costmodel {

std::vector<LayerShapes> layer_shapes(const ModelSpec& model, const ModelDims& dims, ParallelConfig par) {
  std::vector<LayerShapes> out;
  const double t = par.tp, d = model.head_dim;
  const int group = model.group_size();
  for (const LayerGroup& lg : group_layers(dims)) {
    LayerShapes g;
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
    g.row_bytes = e * static_cast<double>(sh.q_qk_dims + sh.q_v_dims);
    g.prefill_kv_bytes_per_token = g.kv_bytes_per_token;
    g.prefill_score_dims = g.score_dims;
    g.prefill_row_bytes = g.row_bytes;
    g.token_classes = f < 1.0 && sh.kv_dims_lo < sh.kv_dims_hi;
    g.kv_bytes_hi = e * static_cast<double>(sh.kv_dims_hi);
    g.kv_bytes_lo = e * static_cast<double>(sh.kv_dims_lo);
    g.score_dims_hi = static_cast<double>(sh.score_dims_hi);
    g.score_dims_lo = static_cast<double>(sh.score_dims_lo);
    g.kv_stage_bytes_hi = e * static_cast<double>(sh.kv_stage_dims_hi);
    g.kv_stage_bytes_lo = e * static_cast<double>(sh.kv_stage_dims_lo);
    g.kv_stage_bytes_per_token = f * g.kv_stage_bytes_hi + (1 - f) * g.kv_stage_bytes_lo;
    for (const KvHeadDims& h : sh.kv_head_dims)
      g.decode_head_bytes.push_back({std::llround(e * (h.qk_hi + h.v_hi)), std::llround(e * (h.qk_lo + h.v_lo))});
    const double hi = static_cast<double>(sh.kv_dims_hi), lo = static_cast<double>(sh.kv_dims_lo);
    g.append_dims_decode = f * hi + (1 - f) * lo;
    g.append_dims_prefill = hi;
    if (g.token_classes) {  // prefilled at hi dims from the staging cache, then classified
      g.prefill_kv_bytes_per_token = e * hi;
      g.prefill_score_dims = static_cast<double>(sh.score_dims_hi);
      g.append_dims_prefill = hi + (f * hi + (1 - f) * lo);
      g.classify_tail_dims = hi - lo;
    }
    out.push_back(g);
  }
  return out;
}

}  // namespace fdc::costmodel
