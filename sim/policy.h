// FDC ratio policies: which attention dims each layer and KV head keeps, per token class.
// A policy config is model independent where it can be (fractions of head_dim); resolve() turns
// it into concrete dims for one model and block size.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/attention_dims.h"
#include "costmodel/model_spec.h"

namespace fdc::sim {

enum class PolicyKind { kNone, kUniform, kTable, kHybrid };

struct PolicySpec {
  std::string name;
  PolicyKind kind = PolicyKind::kNone;
  std::string source;  // where it came from, for error messages in resolve()
  // kUniform / kHybrid: a rank as a fraction of head_dim (rounded up to rank_multiple) or absolute.
  double qk_fraction = 1, v_fraction = 1, qk_lo_fraction = 1, v_lo_fraction = 1;
  int r_qk = 0, r_v = 0, r_qk_lo = 0, r_v_lo = 0;  // 0 = use the fraction
  int rank_multiple = 8;
  // kHybrid: fraction of tokens kept at hi dims, per layer (one value = every layer; with ramp,
  // {shallowest, deepest} interpolated linearly over depth).
  std::vector<double> important_fraction;
  bool ramp = false;
  // kTable: [layer][kv_head] ranks. With token classes (`token_classes` in the config) each head's
  // lo ranks are lo_share of its hi ranks (rounded up to rank_multiple), and important_fraction /
  // ramp say how many tokens keep the hi ranks, as for kHybrid.
  std::vector<std::vector<int>> table_qk, table_v;
  bool table_classes = false;
  double qk_lo_share = 1, v_lo_share = 1;
};

PolicySpec parse_policy(const ConfigNode& node);

// Concrete dims for `model`. The hybrid fraction is rounded to whole token slots of a block
// (ceil(f * block_size) / block_size), the layout the KV cache really has. Throws InputError
// when the policy does not fit the model (wrong table size, rank above head_dim, ...).
costmodel::ModelDims resolve_policy(const PolicySpec& policy, const costmodel::ModelSpec& model, int block_size);

}  // namespace fdc::sim
