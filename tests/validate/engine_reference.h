// A plain CPU forward of the engine's models (Llama and OPT, with FDC rotations applied
// explicitly), the reference the engine's GPU tests compare logits with.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kernels/attention/classify.h"
#include "kernels/comm/ulysses_plan.h"
#include "kernels/ops/reference.h"
#include "tests/validate/tiny_models.h"
#include "validate/engine/gpu_model.h"
#include "validate/engine/safetensors.h"
#include "validate/engine/weights.h"

namespace fdc::test {

using Tensors = std::map<std::string, engine::StTensorData>;
using Vec = std::vector<double>;

// y[o] = sum_i W[o][i] x[i] (+ b[o])
inline Vec linear(const std::vector<float>& w, const Vec& x, int64_t out, const std::vector<float>* b = nullptr) {
  const auto in = static_cast<int64_t>(x.size());
  Vec y(static_cast<size_t>(out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    double s = b ? (*b)[static_cast<size_t>(o)] : 0.0;
    for (int64_t i = 0; i < in; ++i) s += w[static_cast<size_t>(o * in + i)] * x[static_cast<size_t>(i)];
    y[static_cast<size_t>(o)] = s;
  }
  return y;
}

inline Vec norm(const costmodel::ModelSpec& m, const Vec& x, const std::vector<float>& w, const std::vector<float>* b) {
  const double n = static_cast<double>(x.size());
  double mean = 0, sq = 0;
  for (double v : x) mean += v / n;
  Vec y(x.size());
  if (m.norm == costmodel::NormKind::kRmsNorm) {
    for (double v : x) sq += v * v / n;
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(sq + 1e-5) * w[i];
  } else {
    for (double v : x) sq += (v - mean) * (v - mean) / n;
    for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) / std::sqrt(sq + 1e-5) * w[i] + (*b)[i];
  }
  return y;
}

// Plain CPU forward over `ids` (positions 0..n-1); returns the logits of the last token.
// Token-class layers (kernels/attention/classify.h): the first prompt_len tokens were prefilled
// as one prompt (exact attention among them), then classified: the hi_count(prompt_len) of
// largest importance (ties: lower position first) are hi; each later token is hi when that keeps
// the hi count at hi_count(length). A later token attends to lo tokens with the first r_qk_lo dims
// of q and k, and their values add into the first r_v_lo output dims. prompt_len < 0: no classes.
// With sequence parallelism (sp > 1) each rank classifies with its own block of KV heads.
inline Vec reference_logits(const costmodel::ModelSpec& m, const costmodel::ModelDims& dims, const Tensors& t,
                     uint64_t seed, const std::vector<int32_t>& ids, int prompt_len = -1, int block_size = 16,
                     int sp = 1) {
  const int64_t D = m.hidden, d = m.head_dim, H = m.num_heads, Hk = m.num_kv_heads, n = static_cast<int64_t>(ids.size());
  const bool opt = !m.rope;
  auto W = [&](const std::string& name) -> const std::vector<float>& { return t.at(name).values; };
  std::vector<Vec> x(static_cast<size_t>(n));
  for (int64_t p = 0; p < n; ++p) {
    x[p].resize(static_cast<size_t>(D));
    const auto& e = W(opt ? "model.decoder.embed_tokens.weight" : "model.embed_tokens.weight");
    for (int64_t c = 0; c < D; ++c) {
      x[p][c] = e[static_cast<size_t>(ids[p] * D + c)];
      if (opt) x[p][c] += W("model.decoder.embed_positions.weight")[static_cast<size_t>((p + 2) * D + c)];
    }
  }
  const auto cs = kernels::ops::make_cos_sin_cache(static_cast<int>(n), static_cast<int>(d), engine::rope_theta(m));
  for (int l = 0; l < m.num_layers; ++l) {
    const auto& ld = dims.layers[static_cast<size_t>(l)];
    const bool rotate = !engine::full_rank(m, ld);
    const engine::LayerRotations rot = rotate ? engine::make_layer_rotations(m, ld, seed, l) : engine::LayerRotations{};
    const std::string pre = (opt ? "model.decoder.layers." : "model.layers.") + std::to_string(l) + ".";
    const std::string an = opt ? "self_attn_layer_norm" : "input_layernorm";
    const std::string mn = opt ? "final_layer_norm" : "post_attention_layernorm";
    const std::string on = opt ? "out_proj" : "o_proj";
    // Compressed q/k/v per token and head.
    std::vector<std::vector<Vec>> qc(n), kc(n), vc(n);
    for (int64_t p = 0; p < n; ++p) {
      const Vec h = norm(m, x[p], W(pre + an + ".weight"), opt ? &W(pre + an + ".bias") : nullptr);
      auto proj = [&](const char* nm, int64_t rows) {
        const std::string base = pre + "self_attn." + nm;
        return linear(W(base + ".weight"), h, rows, opt ? &W(base + ".bias") : nullptr);
      };
      Vec q = proj("q_proj", H * d), k = proj("k_proj", Hk * d), v = proj("v_proj", Hk * d);
      auto rope = [&](Vec& a, int64_t heads) {
        if (opt) return;
        for (int64_t hh = 0; hh < heads; ++hh)
          for (int64_t i = 0; i < d / 2; ++i) {
            const double c = cs[static_cast<size_t>(p * d + i)], s = cs[static_cast<size_t>(p * d + d / 2 + i)];
            const double a0 = a[hh * d + i], a1 = a[hh * d + i + d / 2];
            a[hh * d + i] = a0 * c - a1 * s;
            a[hh * d + i + d / 2] = a1 * c + a0 * s;
          }
      };
      rope(q, H);
      rope(k, Hk);
      auto compress = [&](const Vec& a, int64_t head, const std::vector<kernels::ops::HeadRotation>& r, int kvh) {
        if (!rotate) return Vec(a.begin() + head * d, a.begin() + (head + 1) * d);
        const auto& R = r[static_cast<size_t>(kvh)];
        Vec out(static_cast<size_t>(R.rank), 0.0);
        for (int j = 0; j < R.rank; ++j)
          for (int64_t i = 0; i < d; ++i) out[j] += R.r[static_cast<size_t>(i * R.rank + j)] * a[head * d + i];
        return out;
      };
      for (int64_t hh = 0; hh < H; ++hh) qc[p].push_back(compress(q, hh, rot.k, static_cast<int>(hh / m.group_size())));
      for (int64_t hh = 0; hh < Hk; ++hh) {
        kc[p].push_back(compress(k, hh, rot.k, static_cast<int>(hh)));
        vc[p].push_back(compress(v, hh, rot.v, static_cast<int>(hh)));
      }
    }
    // Token classes of this layer per KV head (all hi without them).
    std::vector<std::vector<int>> lo(static_cast<size_t>(Hk), std::vector<int>(static_cast<size_t>(n), 0));
    const int hi_slots = costmodel::important_slots(ld.important_fraction, block_size);
    bool classes = false;
    for (const auto& hd : ld.kv_heads) classes |= hd.qk_lo != hd.qk_hi || hd.v_lo != hd.v_hi;
    classes = classes && hi_slots < block_size && prompt_len >= 0;
    for (int r = 0; classes && r < sp; ++r) {
      const int kb = kernels::comm::kv_head_begin(static_cast<int>(Hk), sp, r);
      const int ke = kernels::comm::kv_head_begin(static_cast<int>(Hk), sp, r + 1);
      std::vector<std::pair<double, int64_t>> imp;  // (-importance, position): ascending = most important first
      for (int64_t j = 0; j < prompt_len; ++j) {
        double e = 0;
        for (int64_t hh = kb; hh < ke; ++hh) {
          const auto& hd = ld.kv_heads[static_cast<size_t>(hh)];
          for (int i = hd.qk_lo; i < hd.qk_hi; ++i) e += kc[j][hh][i] * kc[j][hh][i];
          for (int i = hd.v_lo; i < hd.v_hi; ++i) e += vc[j][hh][i] * vc[j][hh][i];
        }
        imp.push_back({-e, j});
      }
      std::sort(imp.begin(), imp.end());
      using kernels::attn::hi_count;
      const int keep = hi_count(prompt_len, hi_slots, block_size);
      for (int hh = kb; hh < ke; ++hh) {
        auto& cls = lo[static_cast<size_t>(hh)];
        for (size_t i = 0; i < imp.size(); ++i) cls[static_cast<size_t>(imp[i].second)] = static_cast<int>(i) >= keep;
        for (int64_t j = prompt_len; j < n; ++j)
          cls[static_cast<size_t>(j)] =
              hi_count(j + 1, hi_slots, block_size) > hi_count(j, hi_slots, block_size) ? 0 : 1;
      }
    }
    for (int64_t p = 0; p < n; ++p) {
      Vec o(static_cast<size_t>(H * d), 0.0);
      const bool after_prompt = classes && p >= prompt_len;
      for (int64_t hh = 0; hh < H; ++hh) {
        const int64_t kvh = hh / m.group_size();
        Vec sc(static_cast<size_t>(p + 1));
        double mx = -1e300;
        const auto& hd = ld.kv_heads[static_cast<size_t>(kvh)];
        auto lo_token = [&](int64_t j) { return after_prompt && lo[static_cast<size_t>(kvh)][static_cast<size_t>(j)]; };
        for (int64_t j = 0; j <= p; ++j) {
          double s = 0;
          const size_t dims_k = lo_token(j) ? static_cast<size_t>(hd.qk_lo) : qc[p][hh].size();
          for (size_t i = 0; i < dims_k; ++i) s += qc[p][hh][i] * kc[j][kvh][i];
          sc[j] = s / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (auto& s : sc) sum += (s = std::exp(s - mx));
        Vec oc(vc[p][kvh].size(), 0.0);
        for (int64_t j = 0; j <= p; ++j) {
          const size_t dims_v = lo_token(j) ? static_cast<size_t>(hd.v_lo) : oc.size();
          for (size_t i = 0; i < dims_v; ++i) oc[i] += sc[j] / sum * vc[j][kvh][i];
        }
        // Back to the head's d dims: o_h = R_v o_c (identity without rotation).
        for (int64_t i = 0; i < d; ++i) {
          if (!rotate) {
            o[hh * d + i] = oc[i];
            continue;
          }
          const auto& R = rot.v[static_cast<size_t>(kvh)];
          double s = 0;
          for (int j = 0; j < R.rank; ++j) s += R.r[static_cast<size_t>(i * R.rank + j)] * oc[j];
          o[hh * d + i] = s;
        }
      }
      const Vec a = linear(W(pre + "self_attn." + on + ".weight"), o, D, opt ? &W(pre + "self_attn." + on + ".bias") : nullptr);
      for (int64_t c = 0; c < D; ++c) x[p][c] += a[c];
    }
    for (int64_t p = 0; p < n; ++p) {
      const Vec h = norm(m, x[p], W(pre + mn + ".weight"), opt ? &W(pre + mn + ".bias") : nullptr);
      Vec act;
      if (opt) {
        act = linear(W(pre + "fc1.weight"), h, m.ffn_hidden, &W(pre + "fc1.bias"));
        for (auto& v : act) v = std::max(v, 0.0);
      } else {
        const Vec g = linear(W(pre + "mlp.gate_proj.weight"), h, m.ffn_hidden);
        const Vec u = linear(W(pre + "mlp.up_proj.weight"), h, m.ffn_hidden);
        act.resize(g.size());
        for (size_t i = 0; i < g.size(); ++i) act[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      }
      const Vec y = opt ? linear(W(pre + "fc2.weight"), act, D, &W(pre + "fc2.bias"))
                        : linear(W(pre + "mlp.down_proj.weight"), act, D);
      for (int64_t c = 0; c < D; ++c) x[p][c] += y[c];
    }
  }
  const Vec h = opt ? norm(m, x[n - 1], W("model.decoder.final_layer_norm.weight"), &W("model.decoder.final_layer_norm.bias"))
                    : norm(m, x[n - 1], W("model.norm.weight"), nullptr);
  const auto& lm = m.tied_embeddings ? W(opt ? "model.decoder.embed_tokens.weight" : "model.embed_tokens.weight")
                                     : W("lm_head.weight");
  return linear(lm, h, m.vocab);
}

// ||a - b|| / ||b||
inline double rel_error(const std::vector<float>& a, size_t offset, const Vec& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double g = a[offset + i];
    if (!std::isfinite(g)) return 1e300;  // never within tolerance
    num += (g - b[i]) * (g - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}


// Writes a random bf16 checkpoint of `m` to `path` and returns its tensors as the GPU reads them
// (bf16-rounded values read back).
inline Tensors write_checkpoint(const costmodel::ModelSpec& m, const std::string& path) {
  auto t = random_tensors(m, 21);
  engine::write_safetensors(path, t, engine::StDType::kBF16);
  engine::SafetensorsFile f(path);
  for (auto& [name, d] : t) d.values = f.read_f32(name);
  return t;
}

// The engine config the tests run the tiny models with: 64 blocks of 16, batches up to 256
// tokens and 8 sequences, weights from `weights`.
inline engine::GpuModelConfig tiny_engine_config(const costmodel::ModelSpec& m, const costmodel::ModelDims& dims,
                                                 uint64_t seed, const std::string& weights, const std::string& name) {
  engine::GpuModelConfig c;
  c.model = m;
  c.dims = dims;
  c.block_size = 16;
  c.num_blocks = 64;
  c.max_tokens = 256;
  c.max_seqs = 8;
  c.seed = seed;
  c.weights = weights;
  c.config_name = name;
  return c;
}

}  // namespace fdc::test
