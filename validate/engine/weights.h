// The engine's weights on the host side: which tensors a model has (Hugging Face names and
// shapes, Llama and OPT layouts), how FDC changes them (rotations folded into W_v and W_o, and
// into W_q/W_k for models without RoPE; RoPE models keep W_q/W_k and get the d x r_qk rotations the
// fused RoPE kernel applies), and loading them from a safetensors file. CPU only: the engine
// uploads what this produces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "costmodel/attention_dims.h"
#include "costmodel/model_spec.h"
#include "kernels/ops/rotation.h"
#include "validate/engine/safetensors.h"

namespace fdc::engine {

struct TensorSpec {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // [out features][in features] for linear weights
};

// Every tensor a checkpoint of `model` must hold, in file order of a typical export.
std::vector<TensorSpec> expected_tensors(const costmodel::ModelSpec& model);

// Per-layer FDC rotations: one d x d orthonormal matrix per KV head (columns ordered as SVD
// dims would be), its first r columns are the head's kept dims. Seeded Gaussian -> QR (Eigen);
// the same seed gives the same rotations on every rank and run.
struct LayerRotations {
  std::vector<kernels::ops::HeadRotation> k;  // [num_kv_heads] rank = qk_hi
  std::vector<kernels::ops::HeadRotation> v;  // [num_kv_heads] rank = v_hi
};
LayerRotations make_layer_rotations(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims,
                                    uint64_t seed, int layer);
// True when the layer keeps every dim (no rotation needed at all).
bool full_rank(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims);

// One layer's weights as the engine runs them (fp32 on the host, converted on upload).
struct LayerWeights {
  std::vector<float> attn_norm, attn_norm_bias;  // [D] (bias: LayerNorm models)
  std::vector<float> w_qkv;                      // [q_n + k_n + v_n][D]
  std::vector<float> b_qkv;                      // [q_n + k_n + v_n] (OPT) or empty
  std::vector<float> rot_qk;                     // RoPE models: KV head h at d * k_offset(h), [d][r_qk]
  std::vector<float> w_o;                        // [D][o_n]
  std::vector<float> b_o;                        // [D] or empty
  std::vector<float> mlp_norm, mlp_norm_bias;    // [D]
  std::vector<float> w_up;                       // [F or 2F][D] (gated: gate rows then up rows)
  std::vector<float> b_up;                       // OPT
  std::vector<float> w_down;                     // [D][F]
  std::vector<float> b_down;                     // OPT
};

// Widths of the fused QKV projection's output row under FDC: q part, k part, v part.
struct QkvWidths {
  int64_t q = 0, k = 0, v = 0;
  int64_t total() const { return q + k + v; }
};
QkvWidths qkv_widths(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims);
// Output width of attention (sum of r_v over query heads): the output projection's K dim.
int64_t attn_out_width(const costmodel::ModelSpec& model, const costmodel::LayerDims& dims);

// Reads layer `layer` from `file`, folds the FDC rotations in (exact at full rank), and checks
// every shape against the model config (errors name the file, the tensor and both shapes).
LayerWeights load_layer(const SafetensorsFile& file, const costmodel::ModelSpec& model,
                        const costmodel::LayerDims& dims, const LayerRotations& rot, int layer);

struct GlobalWeights {
  std::vector<float> embed;      // [V][D]
  std::vector<float> positions;  // OPT learned positions [max_model_len + 2][D]; empty for RoPE models
  std::vector<float> final_norm, final_norm_bias;
  std::vector<float> lm_head;  // [V][D] (a copy of embed when tied)
};
GlobalWeights load_globals(const SafetensorsFile& file, const costmodel::ModelSpec& model);

// The RoPE theta of a model (Llama-3: 500000; others 10000).
double rope_theta(const costmodel::ModelSpec& model);

}  // namespace fdc::engine
