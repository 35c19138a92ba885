// Paged KV memory of one replica: how many bytes a block takes on each GPU (from the policy's
// kept dims), how many blocks fit after weights and reserve, and the block manager that hands
// out block ids. The validation engine allocates its caches from the same layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/attention_dims.h"
#include "costmodel/model_spec.h"

namespace fdc::sim {

struct MemoryConfig {
  double gpu_memory_utilization = 0.9;  // share of GPU memory the engine may use (vLLM's default)
  double activation_reserve_gib = 2.0;  // activations and workspace, per GPU
  int64_t num_blocks_override = 0;      // > 0: use exactly this many KV blocks per replica (what-if, tests)
};
MemoryConfig parse_memory_config(const ConfigNode& node);

struct KvLayout {
  int block_size = 16;                  // tokens per block
  int64_t weight_bytes_per_gpu = 0;     // model weights on one GPU of the replica
  int64_t kv_budget_bytes_per_gpu = 0;  // memory left for KV on one GPU
  int64_t block_bytes_max_gpu = 0;      // bytes one block takes on the most loaded GPU
  int64_t block_bytes_replica = 0;      // bytes one block takes summed over the replica's GPUs
  int64_t num_blocks = 0;               // blocks of the replica (the same ids on every GPU)
  double bytes_per_token_replica() const { return static_cast<double>(block_bytes_replica) / block_size; }
};

// Weights per GPU with the policy's compressed projections (W_v', W_o' always; W_q', W_k' for
// models without RoPE; RoPE models keep W_q, W_k and add the d x r rotations).
int64_t weight_bytes_per_gpu(const costmodel::ModelSpec& model, const costmodel::ModelDims& dims,
                             costmodel::ParallelConfig par);

// Throws InputError naming the model, GPU memory and parallelism when the weights do not fit.
KvLayout make_kv_layout(const costmodel::ModelSpec& model, const costmodel::ModelDims& dims,
                        costmodel::ParallelConfig par, double gpu_memory_gib, const MemoryConfig& mem, int block_size);

// Hands out block ids [0, num_blocks). Blocks in use never exceed num_blocks (checked).
class KvBlockManager {
 public:
  explicit KvBlockManager(int64_t num_blocks);
  int64_t num_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_blocks() const { return num_blocks_ - free_blocks(); }
  bool can_allocate(int64_t n) const { return n <= free_blocks(); }
  // Appends n block ids to `table`. Precondition: can_allocate(n).
  void allocate(std::vector<int32_t>& table, int64_t n) {
    if (n == 0) return;
    allocate_slow(table, n);
  }
  // Returns every block of `table` and clears it.
  void release(std::vector<int32_t>& table);

 private:
  void allocate_slow(std::vector<int32_t>& table, int64_t n);
  int64_t num_blocks_;
  std::vector<int32_t> free_;  // stack: the most recently freed block is reused first
};

inline int64_t blocks_for_tokens(int64_t tokens, int block_size) { return (tokens + block_size - 1) / block_size; }

}  // namespace fdc::sim
