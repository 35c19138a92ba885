#include "costmodel/model_spec.h"

#include "core/error.h"

namespace fdc::costmodel {

int64_t ModelSpec::non_attention_params() const {
  const int64_t D = hidden, F = ffn_hidden, L = num_layers, V = vocab;
  const int64_t mlp_per_layer = (mlp == MlpKind::kGated ? 3 : 2) * D * F;
  const int64_t norm_per_layer = (norm == NormKind::kRmsNorm ? 2 : 4) * D;  // LayerNorm has a bias
  const int64_t embeddings = V * D * (tied_embeddings ? 1 : 2);
  return L * (mlp_per_layer + norm_per_layer) + embeddings + D;
}

ModelSpec parse_model(const ConfigNode& n) {
  ModelSpec m;
  m.name = n.get<std::string>("name");
  n.get_or<std::string>("comment", "");
  m.num_layers = n.get<int>("num_layers", Bounds::at_least(1));
  m.hidden = n.get<int>("hidden", Bounds::at_least(1));
  m.num_heads = n.get<int>("num_heads", Bounds::at_least(1));
  m.num_kv_heads = n.get<int>("num_kv_heads", Bounds::at_least(1));
  m.head_dim = n.get<int>("head_dim", Bounds::at_least(1));
  m.ffn_hidden = n.get<int>("ffn_hidden", Bounds::at_least(1));
  m.vocab = n.get<int>("vocab", Bounds::at_least(1));
  m.max_model_len = n.get<int>("max_model_len", Bounds::at_least(2));
  m.rope = n.get<bool>("rope");
  m.tied_embeddings = n.get_or<bool>("tied_embeddings", false);
  m.norm = n.get_enum("norm", {"rmsnorm", "layernorm"}) == "rmsnorm" ? NormKind::kRmsNorm : NormKind::kLayerNorm;
  m.mlp = n.get_enum("mlp", {"gated", "plain"}) == "gated" ? MlpKind::kGated : MlpKind::kPlain;
  std::string dtype = n.get_enum_or("dtype", "bf16", {"bf16", "fp16"});
  m.dtype_bytes = 2;
  (void)dtype;
  if (m.num_heads % m.num_kv_heads != 0)
    n.fail("num_kv_heads", "a divisor of num_heads (" + std::to_string(m.num_heads) + ")");
  n.finish();
  return m;
}

}  // namespace fdc::costmodel
