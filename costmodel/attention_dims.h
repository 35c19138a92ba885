// Kept attention dimensions per layer and KV head after FDC compression, and how they split over
// the GPUs of a replica. Produced by the FDC policy (sim/policy.h); read by the cost model and the
// KV memory layout.
#pragma once

#include <cstdint>
#include <vector>

namespace fdc::costmodel {

// Kept dims of one KV head (and of every query head in its GQA group, which share its rotation).
// Important tokens keep (qk_hi, v_hi); unimportant ones keep the first (qk_lo, v_lo) of those,
// since SVD dims are ordered. Without token classes lo == hi.
struct KvHeadDims {
  int qk_hi = 0, v_hi = 0, qk_lo = 0, v_lo = 0;
  friend bool operator==(const KvHeadDims&, const KvHeadDims&) = default;
};

struct LayerDims {
  std::vector<KvHeadDims> kv_heads;  // [num_kv_heads]
  // Token slots of each KV block kept at hi dims: ceil(important_fraction * block_size) of the
  // block's block_size slots (the rest at lo dims). 1.0 without token classes.
  double important_fraction = 1.0;
  friend bool operator==(const LayerDims&, const LayerDims&) = default;
};

struct ModelDims {
  std::vector<LayerDims> layers;  // [num_layers]
};

// Layers with identical dims are costed once and multiplied by their count.
struct LayerGroup {
  LayerDims dims;
  int count = 0;
};
std::vector<LayerGroup> group_layers(const ModelDims& dims);

// Hi-dims token slots in a block of block_size tokens: ceil(fraction * block_size), exact for
// fractions given to 1e-9.
int important_slots(double important_fraction, int block_size);

// Replica parallelism inside one server: tensor parallel (weights and heads sharded) times
// sequence parallel (Ulysses: full weights per GPU, tokens sharded for projections/MLP, heads
// sharded for attention through all-to-all).
struct ParallelConfig {
  int tp = 1;
  int sp = 1;
  int gpus() const { return tp * sp; }
};

// Per-GPU attention work of one layer, for the most loaded GPU of the replica. Query heads are
// split contiguously over the tp*sp GPUs (uneven counts: some GPUs get one more); a GPU holds the
// KV heads its query heads need (a KV head is replicated when its group spans GPUs).
struct LayerShard {
  // Sums over the query heads on the GPU.
  int64_t q_heads = 0;
  int64_t q_qk_dims = 0;  // sum of qk_hi over query heads (compressed q width)
  int64_t q_v_dims = 0;   // sum of v_hi over query heads (attention output width)
  // Per-context-token attention work, split by token class.
  int64_t score_dims_hi = 0;  // sum over query heads of (qk_hi + v_hi): FLOPs/2 per hi key
  int64_t score_dims_lo = 0;  // sum over query heads of (qk_lo + v_lo)
  // Sums over the KV heads held by the GPU.
  int64_t kv_heads = 0;
  int64_t kv_dims_hi = 0;  // sum of (qk_hi + v_hi): cached elements per hi token
  int64_t kv_dims_lo = 0;  // sum of (qk_lo + v_lo)
  // Decode stage dims per token: sum of 2 x decode_stage_width(max(qk, v)), K and V rows as the
  // CUDA-core decode kernel and the general tensor-core one stage them (a class whose width is not
  // 32, 64 or 128 fills part of each stage; the tensor-core kernels of one width: mma_one_width).
  int64_t kv_stage_dims_hi = 0;
  int64_t kv_stage_dims_lo = 0;
  int64_t k_dims_hi = 0;  // sum of qk_hi over KV heads (compressed k width from the projection)
  int64_t v_dims_hi = 0;  // sum of v_hi over KV heads
  int max_rank_hi = 0;    // max of qk_hi and v_hi over the KV heads: the prefill launch's padded width follows it
  // The KV heads held by the GPU, in order (the decode planner cuts units per KV head and class).
  std::vector<KvHeadDims> kv_head_dims;
  // The engine decodes these KV heads on the tensor-core kernel (decode_uses_tensor_cores), and on
  // its kernel of one width, 48 or 96, which stages rows at that width instead of 64 or 128
  // (decode_mma_one_width; 0: the general kernel or the CUDA cores).
  bool decode_tensor_cores = false;
  int mma_one_width = 0;
};

// Row width the decode kernel stages a class of `rank` kept dims at (the larger of r_qk and r_v):
// 32, 64 or 128 elements, the rank rounded up (kernels/attention/decode_kernel.cuh); a stage holds
// the same number of elements at every width, so the tokens per stage follow 1 / width.
int decode_stage_width(int rank);

// The rank an unimportant token keeps of a head's `rank` when it keeps a share `lo_share` of it:
// rounded down to a multiple of 8, at least 16 and at most the rank (the attention benchmarks'
// token-class tables, bench/ops/attention_grid.h, and the fit's rebuild of them).
int lo_class_rank(int rank, double lo_share);

// Whether the engine decodes a layer of these KV heads on the tensor-core kernel (the kAuto rule of
// kernels::attn::choose_decode_path); a profile prices those layers with its attn_decode/tensor_cores
// law when it has one (costmodel/fitted.h).
bool decode_uses_tensor_cores(const std::vector<KvHeadDims>& heads);

// On the tensor cores, a launch whose units all fall in width class 48 (33..48) or 96 (65..96)
// runs a kernel of that width, which stages rows at exactly 48 or 96 elements
// (kernels::attn::decode_mma_one_width): that width for these KV heads, 0 when they take the
// general kernel (widths of decode_stage_width). A profile's tensor-core law prices such layers'
// staged bytes at that width (costmodel/fitted.cpp), as `fdcsim fit` reads their cases.
int decode_mma_one_width(const std::vector<KvHeadDims>& heads);

// Work of GPU `gpu` (0-based) of a replica with `gpus` GPUs, for layer `layer`.
LayerShard shard_of(const LayerDims& layer, int num_heads, int gpus, int gpu);
// Element-wise maximum over all GPUs of the replica (the straggler sets the time); kv_head_dims are
// those of the GPU holding the most KV dims (hi, then lo; the first such GPU).
LayerShard max_shard(const LayerDims& layer, int num_heads, int gpus);

}  // namespace fdc::costmodel
