// Tiny Llama- and OPT-shaped models for the engine's tests (CPU and GPU), with random checkpoints.
#pragma once

#include <map>
#include <random>
#include <string>

#include "costmodel/attention_dims.h"
#include "costmodel/model_spec.h"
#include "validate/engine/safetensors.h"
#include "validate/engine/weights.h"

namespace fdc::test {

inline costmodel::ModelSpec tiny_llama() {
  costmodel::ModelSpec m;
  m.name = "tiny-llama";
  m.num_layers = 2;
  m.hidden = 256;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 64;
  m.ffn_hidden = 512;
  m.vocab = 384;
  m.max_model_len = 256;
  m.rope = true;
  m.tied_embeddings = false;
  m.norm = costmodel::NormKind::kRmsNorm;
  m.mlp = costmodel::MlpKind::kGated;
  return m;
}

inline costmodel::ModelSpec tiny_opt() {
  costmodel::ModelSpec m = tiny_llama();
  m.name = "tiny-opt";
  m.num_kv_heads = 4;
  m.rope = false;
  m.tied_embeddings = true;
  m.norm = costmodel::NormKind::kLayerNorm;
  m.mlp = costmodel::MlpKind::kPlain;
  return m;
}

inline costmodel::ModelDims uniform_dims(const costmodel::ModelSpec& m, int rk, int rv) {
  costmodel::ModelDims d;
  for (int l = 0; l < m.num_layers; ++l) {
    costmodel::LayerDims ld;
    for (int h = 0; h < m.num_kv_heads; ++h) ld.kv_heads.push_back({rk, rv, rk, rv});
    d.layers.push_back(ld);
  }
  return d;
}

// Token classes: ranks 48/40 for important tokens, 16/24 for the others; layer 0 keeps 5 of 16
// slots hi (0.3), layer 1 keeps 8 (0.5).
inline costmodel::ModelDims hybrid_dims(const costmodel::ModelSpec& m) {
  costmodel::ModelDims d = uniform_dims(m, 48, 40);
  for (size_t l = 0; l < d.layers.size(); ++l) {
    for (auto& h : d.layers[l].kv_heads) {
      h.qk_lo = 16;
      h.v_lo = 24;
    }
    d.layers[l].important_fraction = l % 2 == 0 ? 0.3 : 0.5;
  }
  return d;
}

// Every tensor of expected_tensors(m) with random values: weights ~ U(-1,1)/sqrt(in), norms near 1.
inline std::map<std::string, engine::StTensorData> random_tensors(const costmodel::ModelSpec& m, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::map<std::string, engine::StTensorData> out;
  for (const auto& t : engine::expected_tensors(m)) {
    engine::StTensorData d;
    d.shape = t.shape;
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    d.values.resize(static_cast<size_t>(n));
    const bool norm = t.name.find("norm") != std::string::npos;
    const bool bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
    const float scale = t.shape.size() == 2 && t.name.find("embed") == std::string::npos
                            ? 1.f / std::sqrt(static_cast<float>(t.shape[1]))
                            : 1.f;
    for (auto& v : d.values) {
      if (norm && !bias) {
        v = 1.f + 0.1f * u(gen);
      } else if (bias) {
        v = 0.05f * u(gen);
      } else {
        v = scale * u(gen);
      }
    }
    out[t.name] = std::move(d);
  }
  return out;
}

}  // namespace fdc::test
