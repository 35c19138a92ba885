#include "sim/kv_memory.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace fdc::sim {

using costmodel::LayerShard;

MemoryConfig parse_memory_config(const ConfigNode& n) {
  MemoryConfig m;
  m.gpu_memory_utilization = n.get_or<double>("gpu_memory_utilization", m.gpu_memory_utilization, {0.0, 1.0, true});
  m.activation_reserve_gib =
      n.get_or<double>("activation_reserve_gib", m.activation_reserve_gib, Bounds::non_negative());
  m.num_blocks_override = n.get_or<int64_t>("num_blocks_override", 0, Bounds::non_negative());
  n.finish();
  return m;
}

int64_t weight_bytes_per_gpu(const costmodel::ModelSpec& m, const costmodel::ModelDims& dims,
                             costmodel::ParallelConfig par) {
  const int64_t D = m.hidden, d = m.head_dim, G = m.group_size();
  int64_t attn = 0;
  for (const auto& layer : dims.layers) {
    for (const auto& h : layer.kv_heads) {
      const int64_t qk = h.qk_hi, v = h.v_hi;
      if (m.rope) {
        attn += (G + 1) * D * d;               // W_q, W_k unfolded
        if (qk < d) attn += (G + 1) * d * qk;  // post-RoPE rotations
      } else {
        attn += (G + 1) * D * qk;  // W_q' = W_q R, W_k' = W_k R
      }
      attn += D * v + G * v * D;  // W_v' and W_o' rows of the group's heads
    }
  }
  const int64_t params = attn + m.non_attention_params();
  // TP shards every matrix; SP keeps full weights on each GPU.
  return (params * m.dtype_bytes + par.tp - 1) / par.tp;
}

KvLayout make_kv_layout(const costmodel::ModelSpec& m, const costmodel::ModelDims& dims, costmodel::ParallelConfig par,
                        double gpu_memory_gib, const MemoryConfig& mem, int block_size) {
  KvLayout k;
  k.block_size = block_size;
  k.weight_bytes_per_gpu = weight_bytes_per_gpu(m, dims, par);
  const double usable = gpu_memory_gib * mem.gpu_memory_utilization * std::pow(2.0, 30);
  const double budget =
      usable - static_cast<double>(k.weight_bytes_per_gpu) - mem.activation_reserve_gib * std::pow(2.0, 30);
  const int g = par.gpus();
  // Bytes per block on each GPU: per layer, the GPU's KV heads times the block's slot layout.
  std::vector<int64_t> per_gpu(g, 0);
  for (const auto& layer : dims.layers) {
    const int hi = costmodel::important_slots(layer.important_fraction, block_size);
    for (int p = 0; p < g; ++p) {
      LayerShard s = costmodel::shard_of(layer, m.num_heads, g, p);
      per_gpu[p] += m.dtype_bytes * (hi * s.kv_dims_hi + (block_size - hi) * s.kv_dims_lo);
    }
  }
  k.block_bytes_max_gpu = *std::max_element(per_gpu.begin(), per_gpu.end());
  for (int64_t b : per_gpu) k.block_bytes_replica += b;
  if (budget < static_cast<double>(k.block_bytes_max_gpu)) {
    std::ostringstream os;
    os << "model " << m.name << " does not fit: " << static_cast<double>(k.weight_bytes_per_gpu) / std::pow(2.0, 30)
       << " GiB of weights per GPU (tp=" << par.tp << ", sp=" << par.sp << ") + " << mem.activation_reserve_gib
       << " GiB reserve leave no room for one KV block within " << gpu_memory_gib << " GiB x "
       << mem.gpu_memory_utilization << " utilisation";
    throw InputError(os.str());
  }
  k.kv_budget_bytes_per_gpu = static_cast<int64_t>(budget);
  k.num_blocks =
      mem.num_blocks_override > 0 ? mem.num_blocks_override : k.kv_budget_bytes_per_gpu / k.block_bytes_max_gpu;
  FDC_INPUT_CHECK(k.num_blocks < (int64_t{1} << 31),
                  "KV block count " << k.num_blocks << " exceeds 2^31; use a larger block_size");
  return k;
}

KvBlockManager::KvBlockManager(int64_t num_blocks) : num_blocks_(num_blocks) {
  FDC_CHECK(num_blocks >= 0 && num_blocks < (int64_t{1} << 31), "num_blocks " << num_blocks);
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));  // block 0 first
}

void KvBlockManager::allocate_slow(std::vector<int32_t>& table, int64_t n) {
  FDC_CHECK(n >= 0 && n <= free_blocks(), "allocating " << n << " KV blocks with " << free_blocks() << " free of "
                                                        << num_blocks_ << ": capacity exceeded");
  for (int64_t i = 0; i < n; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
}

void KvBlockManager::release(std::vector<int32_t>& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) free_.push_back(*it);
  FDC_CHECK(free_blocks() <= num_blocks_, "more KV blocks freed than exist");
  table.clear();
}

}  // namespace fdc::sim
