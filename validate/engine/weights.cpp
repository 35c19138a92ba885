#include "validate/engine/weights.h"

#include <Eigen/Dense>

#include <random>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention/layout.h"

namespace fdc::engine {

namespace {

bool is_opt(const costmodel::ModelSpec& m) { return !m.rope; }

std::string layer_prefix(const costmodel::ModelSpec& m, int layer) {
  return (is_opt(m) ? "model.decoder.layers." : "model.layers.") + std::to_string(layer) + ".";
}

kernels::attn::HeadLayout head_layout(const costmodel::ModelSpec& m, const costmodel::LayerDims& dims) {
  std::vector<kernels::attn::HeadRanks> ranks;
  for (const auto& h : dims.kv_heads) ranks.push_back({h.qk_hi, h.v_hi, h.qk_lo, h.v_lo});
  return kernels::attn::HeadLayout(m.num_heads, m.num_kv_heads, std::move(ranks), 16);
}

// Rotations of each query head: its KV head's (GQA groups share one rotation).
std::vector<kernels::ops::HeadRotation> per_q_head(const costmodel::ModelSpec& m,
                                                   const std::vector<kernels::ops::HeadRotation>& per_kv) {
  std::vector<kernels::ops::HeadRotation> out;
  out.reserve(static_cast<size_t>(m.num_heads));
  for (int qh = 0; qh < m.num_heads; ++qh) out.push_back(per_kv[static_cast<size_t>(qh / m.group_size())]);
  return out;
}

std::vector<float> read(const SafetensorsFile& f, const std::string& name, std::vector<int64_t> shape) {
  f.require(name, shape);
  return f.read_f32(name);
}

std::vector<float> append(std::vector<float> a, const std::vector<float>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

double rope_theta(const costmodel::ModelSpec& model) {
  return model.name.rfind("llama-3", 0) == 0 ? 500000.0 : 10000.0;
}

std::vector<TensorSpec> expected_tensors(const costmodel::ModelSpec& m) {
  const int64_t D = m.hidden, F = m.ffn_hidden, V = m.vocab, d = m.head_dim;
  const int64_t q = static_cast<int64_t>(m.num_heads) * d, kv = static_cast<int64_t>(m.num_kv_heads) * d;
  std::vector<TensorSpec> t;
  if (is_opt(m)) {
    t.push_back({"model.decoder.embed_tokens.weight", {V, D}});
    t.push_back({"model.decoder.embed_positions.weight", {static_cast<int64_t>(m.max_model_len) + 2, D}});
    for (int l = 0; l < m.num_layers; ++l) {
      const std::string p = layer_prefix(m, l);
      for (const char* n : {"q_proj", "k_proj", "v_proj"}) {
        const int64_t rows = std::string(n) == "q_proj" ? q : kv;
        t.push_back({p + "self_attn." + n + ".weight", {rows, D}});
        t.push_back({p + "self_attn." + n + ".bias", {rows}});
      }
      t.push_back({p + "self_attn.out_proj.weight", {D, q}});
      t.push_back({p + "self_attn.out_proj.bias", {D}});
      t.push_back({p + "self_attn_layer_norm.weight", {D}});
      t.push_back({p + "self_attn_layer_norm.bias", {D}});
      t.push_back({p + "fc1.weight", {F, D}});
      t.push_back({p + "fc1.bias", {F}});
      t.push_back({p + "fc2.weight", {D, F}});
      t.push_back({p + "fc2.bias", {D}});
      t.push_back({p + "final_layer_norm.weight", {D}});
      t.push_back({p + "final_layer_norm.bias", {D}});
    }
    t.push_back({"model.decoder.final_layer_norm.weight", {D}});
    t.push_back({"model.decoder.final_layer_norm.bias", {D}});
    if (!m.tied_embeddings) t.push_back({"lm_head.weight", {V, D}});
    return t;
  }
  t.push_back({"model.embed_tokens.weight", {V, D}});
  for (int l = 0; l < m.num_layers; ++l) {
    const std::string p = layer_prefix(m, l);
    t.push_back({p + "input_layernorm.weight", {D}});
    t.push_back({p + "self_attn.q_proj.weight", {q, D}});
    t.push_back({p + "self_attn.k_proj.weight", {kv, D}});
    t.push_back({p + "self_attn.v_proj.weight", {kv, D}});
    t.push_back({p + "self_attn.o_proj.weight", {D, q}});
    t.push_back({p + "post_attention_layernorm.weight", {D}});
    if (m.mlp == costmodel::MlpKind::kGated) {
      t.push_back({p + "mlp.gate_proj.weight", {F, D}});
      t.push_back({p + "mlp.up_proj.weight", {F, D}});
    } else {
      t.push_back({p + "mlp.up_proj.weight", {F, D}});
    }
    t.push_back({p + "mlp.down_proj.weight", {D, F}});
  }
  t.push_back({"model.norm.weight", {D}});
  if (!m.tied_embeddings) t.push_back({"lm_head.weight", {V, D}});
  return t;
}

bool full_rank(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims) {
  for (const auto& h : dims.kv_heads)
    if (h.qk_hi != model.head_dim || h.v_hi != model.head_dim || h.qk_lo != h.qk_hi || h.v_lo != h.v_hi) return false;
  return true;
}

LayerRotations make_layer_rotations(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims,
                                    uint64_t seed, int layer) {
  const int d = model.head_dim;
  std::mt19937_64 gen(seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(layer + 1)));
  std::normal_distribution<double> normal(0.0, 1.0);
  LayerRotations out;
  for (const auto& h : dims.kv_heads) {
    for (int which = 0; which < 2; ++which) {
      Eigen::MatrixXd g(d, d);
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) g(i, j) = normal(gen);
      const Eigen::MatrixXd qm = Eigen::HouseholderQR<Eigen::MatrixXd>(g).householderQ();
      kernels::ops::HeadRotation r;
      r.rank = which == 0 ? h.qk_hi : h.v_hi;
      r.r.resize(static_cast<size_t>(d) * r.rank);
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < r.rank; ++j) r.r[static_cast<size_t>(i) * r.rank + j] = static_cast<float>(qm(i, j));
      (which == 0 ? out.k : out.v).push_back(std::move(r));
    }
  }
  return out;
}

QkvWidths qkv_widths(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims) {
  const auto L = head_layout(model, dims);
  QkvWidths w;
  if (model.rope) {
    w.q = static_cast<int64_t>(model.num_heads) * model.head_dim;
    w.k = static_cast<int64_t>(model.num_kv_heads) * model.head_dim;
  } else {
    w.q = L.q_row();
    w.k = L.k_row();
  }
  w.v = L.v_row();
  return w;
}

int64_t attn_out_width(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims) {
  return head_layout(model, dims).o_row();
}

LayerWeights load_layer(const SafetensorsFile& f, const costmodel::ModelSpec& m, const costmodel::LayerDims& dims,
                        const LayerRotations& rot, int layer) {
  const int64_t D = m.hidden, F = m.ffn_hidden, d = m.head_dim;
  const int64_t q = static_cast<int64_t>(m.num_heads) * d, kv = static_cast<int64_t>(m.num_kv_heads) * d;
  const std::string p = layer_prefix(m, layer);
  const bool rotate = !full_rank(m, dims);
  using kernels::ops::absorb_input_rotation;
  using kernels::ops::absorb_output_rotation;
  FDC_CHECK(!rotate || (rot.k.size() == static_cast<size_t>(m.num_kv_heads) && rot.v.size() == rot.k.size()),
            "layer " << layer << " needs rotations for its " << m.num_kv_heads << " KV heads");
  const auto rk_q = rotate ? per_q_head(m, rot.k) : std::vector<kernels::ops::HeadRotation>{};
  const auto rv_q = rotate ? per_q_head(m, rot.v) : std::vector<kernels::ops::HeadRotation>{};
  LayerWeights w;
  if (!m.rope) {
    auto wq = read(f, p + "self_attn.q_proj.weight", {q, D});
    auto wk = read(f, p + "self_attn.k_proj.weight", {kv, D});
    auto wv = read(f, p + "self_attn.v_proj.weight", {kv, D});
    auto bq = read(f, p + "self_attn.q_proj.bias", {q});
    auto bk = read(f, p + "self_attn.k_proj.bias", {kv});
    auto bv = read(f, p + "self_attn.v_proj.bias", {kv});
    if (rotate) {
      // (x W^T + b) R = x (R^T W)^T + R^T b: biases rotate as one-column weights.
      wq = absorb_input_rotation(wq, D, static_cast<int>(d), rk_q);
      bq = absorb_input_rotation(bq, 1, static_cast<int>(d), rk_q);
      wk = absorb_input_rotation(wk, D, static_cast<int>(d), rot.k);
      bk = absorb_input_rotation(bk, 1, static_cast<int>(d), rot.k);
      wv = absorb_input_rotation(wv, D, static_cast<int>(d), rot.v);
      bv = absorb_input_rotation(bv, 1, static_cast<int>(d), rot.v);
    }
    w.w_qkv = append(append(std::move(wq), wk), wv);
    w.b_qkv = append(append(std::move(bq), bk), bv);
    w.w_o = read(f, p + "self_attn.out_proj.weight", {D, q});
    w.b_o = read(f, p + "self_attn.out_proj.bias", {D});
    w.attn_norm = read(f, p + "self_attn_layer_norm.weight", {D});
    w.attn_norm_bias = read(f, p + "self_attn_layer_norm.bias", {D});
    w.mlp_norm = read(f, p + "final_layer_norm.weight", {D});
    w.mlp_norm_bias = read(f, p + "final_layer_norm.bias", {D});
    w.w_up = read(f, p + "fc1.weight", {F, D});
    w.b_up = read(f, p + "fc1.bias", {F});
    w.w_down = read(f, p + "fc2.weight", {D, F});
    w.b_down = read(f, p + "fc2.bias", {D});
  } else {
    auto wq = read(f, p + "self_attn.q_proj.weight", {q, D});
    auto wk = read(f, p + "self_attn.k_proj.weight", {kv, D});
    auto wv = read(f, p + "self_attn.v_proj.weight", {kv, D});
    if (rotate) {
      wv = absorb_input_rotation(wv, D, static_cast<int>(d), rot.v);
      // The fused RoPE kernel reads KV head h's rotation at element d * k_offset(h), [d][r_qk].
      for (const auto& r : rot.k) w.rot_qk.insert(w.rot_qk.end(), r.r.begin(), r.r.end());
    }
    w.w_qkv = append(append(std::move(wq), wk), wv);
    w.w_o = read(f, p + "self_attn.o_proj.weight", {D, q});
    w.attn_norm = read(f, p + "input_layernorm.weight", {D});
    w.mlp_norm = read(f, p + "post_attention_layernorm.weight", {D});
    if (m.mlp == costmodel::MlpKind::kGated) {
      w.w_up = append(read(f, p + "mlp.gate_proj.weight", {F, D}), read(f, p + "mlp.up_proj.weight", {F, D}));
    } else {
      w.w_up = read(f, p + "mlp.up_proj.weight", {F, D});
    }
    w.w_down = read(f, p + "mlp.down_proj.weight", {D, F});
  }
  if (rotate) w.w_o = absorb_output_rotation(w.w_o, D, static_cast<int>(d), rv_q);
  return w;
}

GlobalWeights load_globals(const SafetensorsFile& f, const costmodel::ModelSpec& m) {
  const int64_t D = m.hidden, V = m.vocab;
  GlobalWeights g;
  if (!m.rope) {
    g.embed = read(f, "model.decoder.embed_tokens.weight", {V, D});
    g.positions = read(f, "model.decoder.embed_positions.weight", {static_cast<int64_t>(m.max_model_len) + 2, D});
    g.final_norm = read(f, "model.decoder.final_layer_norm.weight", {D});
    g.final_norm_bias = read(f, "model.decoder.final_layer_norm.bias", {D});
  } else {
    g.embed = read(f, "model.embed_tokens.weight", {V, D});
    g.final_norm = read(f, "model.norm.weight", {D});
  }
  g.lm_head = m.tied_embeddings ? g.embed : read(f, "lm_head.weight", {V, D});
  return g;
}

}  // namespace fdc::engine
