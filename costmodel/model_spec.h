// Transformer architecture of a served model: the shapes every op of the cost model derives from.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace fdc::costmodel {

enum class NormKind { kRmsNorm, kLayerNorm };
enum class MlpKind { kGated, kPlain };  // gated = SwiGLU (gate, up, down); plain = up, down

struct ModelSpec {
  std::string name;
  int num_layers = 0;
  int hidden = 0;        // model dim D
  int num_heads = 0;     // query heads H
  int num_kv_heads = 0;  // KV heads (GQA when < num_heads)
  int head_dim = 0;      // d
  int ffn_hidden = 0;    // MLP inner dim F
  int vocab = 0;
  int max_model_len = 0;  // longest prompt + output the model accepts, tokens
  bool rope = true;       // RoPE models fuse the FDC rotation after RoPE; others fold it into W_q/W_k
  bool tied_embeddings = false;
  NormKind norm = NormKind::kRmsNorm;
  MlpKind mlp = MlpKind::kGated;
  int dtype_bytes = 2;  // bf16 / fp16

  int group_size() const { return num_heads / num_kv_heads; }  // query heads per KV head
  // Parameters outside attention Q/K/V/O (which FDC shrinks and are counted with the policy):
  // MLP, norms, embeddings and LM head.
  int64_t non_attention_params() const;
};

// Reads a model config object (configs/models/*.json). Errors name source and key.
ModelSpec parse_model(const ConfigNode& node);

}  // namespace fdc::costmodel
