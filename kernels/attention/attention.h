// Launchers of the FDC compressed-attention kernels (bf16/fp16 in, fp32 accumulate; sm_80, sm_90).
//
//   append_paged_kv  writes new tokens' compressed k/v rows into the hi pages of the paged cache
//   prefill          causal attention of new tokens over their sequence's cached hi tokens
//                    (variable-length batch, GQA, per-head ranks, chunked prefill after a prefix)
//   decode           one query per sequence over hi and lo cached tokens, split-KV work units from
//                    a DecodePlan (balanced or naive), then a combine step
//
// One iteration of a mixed batch (prefill chunks + decodes) is: append (all new tokens), prefill
// (the chunks), decode (the rest), on one stream; all three read and write the same cache.
// Layouts are those of layout.h. Every launcher validates its parameters and throws
// fdc::InputError on unsupported values (rank, head dim, dtype, block size, group).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention/layout.h"
#include "kernels/attention/plan.h"
#include "kernels/common/device_buffer.h"
#include "kernels/common/dtype.h"

namespace fdc::kernels::attn {

// Paged cache, as the kernels see it (device pointers).
struct PagedCacheParams {
  const void* hi_pool = nullptr;       // [hi pages][page_elems_hi] elements of the dtype
  const void* lo_pool = nullptr;       // [lo pages][page_elems_lo]; may be null without lo tokens
  int64_t page_elems_hi = 0;
  int64_t page_elems_lo = 0;
  int block_size = 0;                  // tokens per page: 16, 32 or 64
  // Tokens of each class per page: 0 = block_size (separate pools); with shared pages
  // (HeadLayout::shared) the hi and lo slots, any counts summing to block_size. Decode only.
  int slots_hi = 0;
  int slots_lo = 0;
  const int* hi_page_indptr = nullptr;   // [num_seqs + 1]
  const int* hi_page_indices = nullptr;  // [hi_page_indptr[num_seqs]]
  const int* lo_page_indptr = nullptr;   // [num_seqs + 1]
  const int* lo_page_indices = nullptr;  // [lo_page_indptr[num_seqs]]
};

inline constexpr int kDecodeMmaStages = 2;                            // cp.async stages of each warp of a kMma block
inline constexpr int kDecodeMmaSmemBytes = kDecodeMmaStages * 36864;  // 4 warps x (K, V) x 32 rows x 72 x 2 B

struct DecodeParams {
  DType dtype = DType::kBF16;
  DecodePath path = DecodePath::kAuto;
  int num_seqs = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int q_row = 0;                       // elements per sequence in q (HeadLayout::q_row)
  int o_row = 0;                       // elements per sequence in out (HeadLayout::o_row)
  int max_rank = 0;                    // max over heads of r_qk and r_v (validated; tiles follow each unit)
  float sm_scale = 0.f;                // softmax scale, usually 1/sqrt(original head dim)
  const void* q = nullptr;             // [num_seqs][q_row] compressed queries
  void* out = nullptr;                 // [num_seqs][o_row] compressed outputs
  PagedCacheParams cache;
  const HeadInfo* heads = nullptr;     // [num_kv_heads]
  const DecodeUnit* units = nullptr;   // [num_units] in launch order
  int num_units = 0;
  const int* pair_indptr = nullptr;    // [num_seqs * num_kv_heads + 1]
  const int* pair_units = nullptr;     // [num_units]
  int max_units_per_pair = 0;
  // DecodePlan::width_classes of the units (0: not known). A plan whose units are all in width
  // class 48 (or 96) runs the tensor-core kernel built for that width (decode_mma_kernel.cuh); any
  // other, the general one.
  unsigned width_classes = 0;
  float* partial_o = nullptr;          // [num_units * group * kMaxRank] workspace
  float* partial_lse = nullptr;        // [num_units * group] workspace (log2 of the softmax sum)
};

// Which prefill kernel runs. kAuto: the Hopper (wgmma) kernel on sm_90 devices when the build has
// it (sm_90 in FDCSIM_CUDA_ARCHITECTURES), else the mma.sync kernel. kWgmma refuses (InputError)
// where that kernel cannot run; kMmaSync runs everywhere (sm_80, sm_90).
enum class PrefillPath : int { kAuto = 0, kMmaSync = 1, kWgmma = 2 };

struct PrefillParams {
  DType dtype = DType::kBF16;
  PrefillPath path = PrefillPath::kAuto;
  int num_seqs = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int q_row = 0;
  int o_row = 0;
  int max_rank = 0;
  float sm_scale = 0.f;
  const int* cu_q = nullptr;           // [num_seqs + 1] new-token offsets into q/out
  const int* kv_len = nullptr;         // [num_seqs] cached hi tokens, the new ones included
  const void* q = nullptr;             // [cu_q[num_seqs]][q_row]
  void* out = nullptr;                 // [cu_q[num_seqs]][o_row]
  PagedCacheParams cache;              // hi pages only are read
  const HeadInfo* heads = nullptr;     // [num_kv_heads]
  const PrefillTile* tiles = nullptr;  // [num_tiles] from plan_prefill(..., kPrefillTileQ, ...)
  int num_tiles = 0;
  // TMA descriptors of the hi pool's K/V blocks (PrefillTensorMaps::data() of this cache), or null.
  // With them the Hopper kernel copies K/V tiles with the tensor memory accelerator, one
  // instruction per page and 64 columns, instead of 16-byte cp.async per thread; the mma.sync
  // kernel ignores them.
  const void* kv_maps = nullptr;
};

// TMA descriptors (CUtensorMap) of every KV head's K and V blocks in a hi pool, for
// PrefillParams::kv_maps: each describes [pages][block_size slots][rank] elements of one head at its
// page offset, read in boxes of 64 columns x one page, 128-byte swizzled (the layout wgmma reads);
// columns past the rank come back as zeros. Built once per pool and layout (host-side encoding and
// one upload) and valid while the pool lives; `hi_pages` is the pool's page count.
class PrefillTensorMaps {
 public:
  PrefillTensorMaps(const HeadLayout& L, const void* hi_pool, int64_t hi_pages);
  const void* data() const { return maps_.data(); }

 private:
  DeviceBuffer<unsigned char> maps_;  // [num_kv_heads][K, V] x 128 bytes
};

struct AppendParams {
  DType dtype = DType::kBF16;
  int num_tokens = 0;
  int num_kv_heads = 0;
  int k_row = 0;
  int v_row = 0;
  const void* k = nullptr;             // [num_tokens][k_row] compressed keys (post-RoPE, rotated)
  const void* v = nullptr;             // [num_tokens][v_row] compressed values
  const int* seq_of = nullptr;         // [num_tokens] sequence of each token
  const int* pos_of = nullptr;         // [num_tokens] slot of each token among its class's tokens
  // [num_tokens] class of each token (0 hi, 1 lo); null = every token hi. A lo token keeps the
  // first r_qk_lo / r_v_lo dims of its rows.
  const int* cls_of = nullptr;
  void* hi_pool = nullptr;             // written
  void* lo_pool = nullptr;             // written when cls_of marks lo tokens
  int64_t page_elems_hi = 0;
  int64_t page_elems_lo = 0;
  int block_size = 0;
  int slots_hi = 0;                    // tokens per page of each class; 0 = block_size
  int slots_lo = 0;
  const int* hi_page_indptr = nullptr;   // [num_seqs + 1]
  const int* hi_page_indices = nullptr;
  const int* lo_page_indptr = nullptr;   // with cls_of
  const int* lo_page_indices = nullptr;
  const HeadInfo* heads = nullptr;     // [num_kv_heads]
};

inline constexpr int kPrefillTileQ = 128;  // new tokens per prefill tile (plan_prefill's tile_q)
inline constexpr int kDecodeTileTokens = 32;  // tokens per pipeline stage of the kCudaCores decode at rank 128

void launch_decode(const DecodeParams& p, cudaStream_t stream);
void launch_prefill(const PrefillParams& p, cudaStream_t stream);
// The kernel launch_prefill runs for `path` on the current device (kMmaSync or kWgmma); throws
// InputError when kWgmma is asked for and cannot run there.
PrefillPath resolve_prefill_path(PrefillPath path);
void launch_append(const AppendParams& p, cudaStream_t stream);

// Decode plan on the device plus its workspace; fills the plan fields of DecodeParams.
class DeviceDecodePlan {
 public:
  DeviceDecodePlan(const DecodePlan& plan, int group);
  void fill(DecodeParams& p) const;
  int num_units() const { return num_units_; }

 private:
  DeviceBuffer<DecodeUnit> units_;
  DeviceBuffer<int> pair_indptr_, pair_units_;
  DeviceBuffer<float> partial_o_, partial_lse_;
  int num_units_ = 0;
  int max_units_per_pair_ = 0;
  unsigned width_classes_ = 0;
};

// The decode kernel launch_decode runs for `path` (kCudaCores or kMma; kAuto, which launch_decode
// cannot resolve from the device's head table, is kCudaCores there: callers that hold the layout
// resolve kAuto with choose_decode_path first, as the engine and `fdcsim profile` do).
DecodePath resolve_decode_path(DecodePath path);

// How launch_decode finds pages on shared pages whose slot counts are not powers of two (plan.h,
// SlotIndex): kDivide, the kernels both GPUs' profiles measured, or kMultiply when the environment
// variable FDCSIM_DECODE_SLOT_INDEX is "multiply" (not yet run on a GPU: docs/kernels.md; "divide"
// or unset: kDivide; anything else throws InputError naming the value). Read at every launch, so
// that one process can time both; `fdcsim profile` records it in provenance.
SlotIndex decode_uneven_slot_index();
const char* to_string(SlotIndex s);

// Options for plan_decode_balanced that match the device and the decode kernel of `path`.
DecodePlanOptions decode_plan_options_for_device(int device, DecodePath path = DecodePath::kAuto);

}  // namespace fdc::kernels::attn
