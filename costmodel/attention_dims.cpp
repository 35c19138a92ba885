#include "costmodel/attention_dims.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/attention/plan.h"

namespace fdc::costmodel {

std::vector<LayerGroup> group_layers(const ModelDims& dims) {
  std::vector<LayerGroup> groups;
  for (const auto& layer : dims.layers) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const LayerGroup& g) { return g.dims == layer; });
    if (it == groups.end()) {
      groups.push_back({layer, 1});
    } else {
      ++it->count;
    }
  }
  return groups;
}

int important_slots(double fraction, int block_size) {
  FDC_CHECK(fraction >= 0.0 && fraction <= 1.0, "important fraction " << fraction);
  return static_cast<int>(std::ceil(fraction * block_size - 1e-9));
}

int decode_stage_width(int rank) { return rank <= 32 ? 32 : rank <= 64 ? 64 : 128; }

int lo_class_rank(int rank, double lo_share) {
  return std::min(rank, std::max(16, static_cast<int>(std::floor(rank * lo_share / 8 + 1e-9)) * 8));
}

bool decode_uses_tensor_cores(const std::vector<KvHeadDims>& heads) {
  std::vector<kernels::attn::HeadRanks> ranks;
  ranks.reserve(heads.size());
  for (const KvHeadDims& d : heads) ranks.push_back({d.qk_hi, d.v_hi, d.qk_lo, d.v_lo});
  return kernels::attn::decode_auto_uses_tensor_cores(ranks);
}

int decode_mma_one_width(const std::vector<KvHeadDims>& heads) {
  unsigned classes = 0;
  for (const KvHeadDims& d : heads) {
    classes |= kernels::attn::decode_width_class(std::max(d.qk_hi, d.v_hi));
    if (d.qk_lo != d.qk_hi || d.v_lo != d.v_hi) classes |= kernels::attn::decode_width_class(std::max(d.qk_lo, d.v_lo));
  }
  return kernels::attn::decode_mma_one_width(classes, false);
}

LayerShard shard_of(const LayerDims& layer, int num_heads, int gpus, int gpu) {
  const int kv = static_cast<int>(layer.kv_heads.size());
  FDC_CHECK(kv > 0 && num_heads % kv == 0, "heads " << num_heads << " kv " << kv);
  FDC_CHECK(gpu >= 0 && gpu < gpus, "gpu " << gpu << " of " << gpus);
  const int group = num_heads / kv;
  // Contiguous split: GPU p gets query heads [p*H/g, (p+1)*H/g) in integer arithmetic.
  const int h0 = static_cast<int>(static_cast<int64_t>(gpu) * num_heads / gpus);
  const int h1 = static_cast<int>(static_cast<int64_t>(gpu + 1) * num_heads / gpus);
  LayerShard s;
  int last_kv = -1;
  for (int h = h0; h < h1; ++h) {
    const KvHeadDims& d = layer.kv_heads[h / group];
    s.q_heads += 1;
    s.q_qk_dims += d.qk_hi;
    s.q_v_dims += d.v_hi;
    s.score_dims_hi += d.qk_hi + d.v_hi;
    s.score_dims_lo += d.qk_lo + d.v_lo;
    if (h / group != last_kv) {
      last_kv = h / group;
      s.kv_heads += 1;
      s.kv_dims_hi += d.qk_hi + d.v_hi;
      s.kv_dims_lo += d.qk_lo + d.v_lo;
      s.k_dims_hi += d.qk_hi;
      s.v_dims_hi += d.v_hi;
      s.max_rank_hi = std::max({s.max_rank_hi, d.qk_hi, d.v_hi});
      s.kv_stage_dims_hi += 2 * decode_stage_width(std::max(d.qk_hi, d.v_hi));
      s.kv_stage_dims_lo += 2 * decode_stage_width(std::max(d.qk_lo, d.v_lo));
      s.kv_head_dims.push_back(d);
    }
  }
  s.decode_tensor_cores = decode_uses_tensor_cores(s.kv_head_dims);
  if (s.decode_tensor_cores) s.mma_one_width = decode_mma_one_width(s.kv_head_dims);
  return s;
}

LayerShard max_shard(const LayerDims& layer, int num_heads, int gpus) {
  LayerShard m;
  int64_t most_hi = -1, most_lo = -1;
  for (int p = 0; p < gpus; ++p) {
    LayerShard s = shard_of(layer, num_heads, gpus, p);
    if (s.kv_dims_hi > most_hi || (s.kv_dims_hi == most_hi && s.kv_dims_lo > most_lo)) {
      most_hi = s.kv_dims_hi, most_lo = s.kv_dims_lo;
      m.kv_head_dims = s.kv_head_dims;
      m.decode_tensor_cores = s.decode_tensor_cores;
      m.mma_one_width = s.mma_one_width;
    }
    m.q_heads = std::max(m.q_heads, s.q_heads);
    m.q_qk_dims = std::max(m.q_qk_dims, s.q_qk_dims);
    m.q_v_dims = std::max(m.q_v_dims, s.q_v_dims);
    m.score_dims_hi = std::max(m.score_dims_hi, s.score_dims_hi);
    m.score_dims_lo = std::max(m.score_dims_lo, s.score_dims_lo);
    m.kv_heads = std::max(m.kv_heads, s.kv_heads);
    m.kv_dims_hi = std::max(m.kv_dims_hi, s.kv_dims_hi);
    m.kv_dims_lo = std::max(m.kv_dims_lo, s.kv_dims_lo);
    m.kv_stage_dims_hi = std::max(m.kv_stage_dims_hi, s.kv_stage_dims_hi);
    m.kv_stage_dims_lo = std::max(m.kv_stage_dims_lo, s.kv_stage_dims_lo);
    m.k_dims_hi = std::max(m.k_dims_hi, s.k_dims_hi);
    m.v_dims_hi = std::max(m.v_dims_hi, s.v_dims_hi);
    m.max_rank_hi = std::max(m.max_rank_hi, s.max_rank_hi);
  }
  return m;
}

}  // namespace fdc::costmodel
