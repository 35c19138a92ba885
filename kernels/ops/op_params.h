// Parameter structs of the non-attention ops of one transformer layer (projections, fused RoPE +
// FDC rotation, norms, residual adds, MLP activation). Every pointer field says its shape; element
// counts, not bytes. Tensors are row-major and 16-bit (bf16 or fp16) unless a field says otherwise;
// all kernels accumulate in fp32. validate() (validate.cpp, CPU) refuses unsupported shapes with
// fdc::InputError before anything is launched, and the CPU references read the same structs.
#pragma once

#include <cstdint>

#include "kernels/attention/layout.h"
#include "kernels/common/dtype.h"

namespace fdc::kernels::ops {

// out[m][n] = x[m][k] * w[n][k]^T (the nn.Linear convention: weights stored [out features][in
// features]). Every projection of the layer is one of these:
//   QKV projection   n = q + k + v output widths (FDC rotations absorbed into W_q, W_k for models
//                    without RoPE, R_v into W_v for all: absorb_* in rotation.h), k = hidden
//   output proj.     n = hidden, k = sum over q heads of r_v (W_o' = R_v^T W_o absorbed)
//   MLP up / gate    n = ffn (plain) or 2 * ffn (gated: gate then up), k = hidden
//   MLP down         n = hidden, k = ffn;   LM head  n = vocab, k = hidden
struct GemmParams {
  DType dtype = DType::kBF16;
  int64_t m = 0, n = 0, k = 0;
  const void* x = nullptr;  // [m][k] activations
  const void* w = nullptr;  // [n][k] weights
  void* out = nullptr;      // [m][n]
};

// The row count a projection's cuBLASLt algorithm is chosen for: up to 64 rows the smallest of 8,
// 12, 16, 24, 32, 48, 64 that holds m; then m rounded up to a multiple of 32 (to 1024 rows), of 128
// (to 8192) and of 1024. A server sees a new row count in nearly every iteration; choosing per
// bucket keeps the algorithms (and the kernels cuBLASLt loads for them) to about 60 per shape up to
// 4096 rows, all of which the engine runs once before it measures anything. Buckets this fine keep
// the algorithm the heuristic picks for the exact count (coarser 1.5x steps measured 5-10% slower
// on H200 at 935 and 941 rows, where the 1024-row choice was reused).
inline int64_t gemm_row_bucket(int64_t m) {
  if (m <= 64) {
    for (int64_t b : {8, 12, 16, 24, 32, 48})
      if (m <= b) return b;
    return 64;
  }
  const int64_t step = m <= 1024 ? 32 : m <= 8192 ? 128 : 1024;
  return (m + step - 1) / step * step;
}

// Fused RoPE + FDC rotation for RoPE models. From the QKV projection's output row it takes each q
// and k head (full head_dim), applies RoPE (rotate-half pairing, i with i + head_dim/2, as Llama),
// rounds to the dtype, multiplies by the KV head's rotation R (head_dim x r_qk) and writes the
// compressed q into a packed q row and the compressed k into a packed k row and/or straight into
// the paged cache (important pool, layout of kernels/attention/layout.h). Without a rotation it is
// RoPE alone (every r_qk must equal head_dim): the baseline the fused kernel is measured against.
struct RopeRotateParams {
  DType dtype = DType::kBF16;
  int num_tokens = 0;
  int num_q_heads = 0;   // H
  int num_kv_heads = 0;  // Hk; H % Hk == 0, group H / Hk in 1..8
  int head_dim = 0;      // d: 64 or 128
  int max_rank = 0;      // largest r_qk over the KV heads (sizes shared memory)
  const void* qkv = nullptr;      // [num_tokens][qkv_row]: q heads at [0, H*d), k heads at [H*d, (H+Hk)*d)
  int64_t qkv_row = 0;            // elements per token row of qkv (>= (H+Hk)*d; v follows, untouched)
  const int* positions = nullptr;  // [num_tokens] RoPE position of each token, in [0, max_position)
  const float* cos_sin = nullptr;  // [max_position][head_dim] fp32: cos for i < d/2, then sin (make_cos_sin_cache)
  int max_position = 0;
  const void* rotation = nullptr;  // KV head h: [d][r_qk(h)] at element d * k_offset(h); null = RoPE alone
  const attn::HeadInfo* heads = nullptr;  // [num_kv_heads] device copy of HeadLayout::head_info()
  int q_row = 0;                   // HeadLayout::q_row()
  int k_row = 0;                   // HeadLayout::k_row()
  void* q_out = nullptr;           // [num_tokens][q_row] compressed q
  void* k_out = nullptr;           // [num_tokens][k_row] compressed k, or null (cache only)
  // Paged cache destination of k (optional; as attn::AppendParams): null hi_pool = no cache write.
  void* hi_pool = nullptr;             // [hi pages][page_elems_hi]
  int64_t page_elems_hi = 0;
  int block_size = 0;
  const int* seq_of = nullptr;         // [num_tokens] sequence of each token
  const int* pos_of = nullptr;         // [num_tokens] hi slot of each token within its sequence
  const int* hi_page_indptr = nullptr;   // [num_seqs + 1]
  const int* hi_page_indices = nullptr;  // [hi_page_indptr[num_seqs]]
};

enum class NormKind { kRmsNorm, kLayerNorm };

// out = norm(x) * weight (+ bias for LayerNorm), one row at a time, statistics in fp32.
struct NormParams {
  DType dtype = DType::kBF16;
  NormKind kind = NormKind::kRmsNorm;
  int64_t rows = 0;
  int dim = 0;                  // multiple of 8, at most 65536
  float eps = 1e-5f;
  const void* x = nullptr;      // [rows][dim]
  const void* weight = nullptr;  // [dim]
  const void* bias = nullptr;    // [dim], LayerNorm only (null = no bias)
  void* out = nullptr;          // [rows][dim]; may alias x
};

// out = a + b, element-wise (fp32 add, one rounding). out may alias a or b.
struct ResidualParams {
  DType dtype = DType::kBF16;
  int64_t count = 0;
  const void* a = nullptr;  // [count]
  const void* b = nullptr;  // [count]
  void* out = nullptr;      // [count]
};

enum class ActKind { kSwiGlu, kRelu };

// MLP activation. SwiGLU: out = silu(gate) * up with in = [gate | up] per row (the gated up
// projection's output); ReLU: out = max(in, 0) (plain MLPs, OPT).
struct ActParams {
  DType dtype = DType::kBF16;
  ActKind kind = ActKind::kSwiGlu;
  int64_t rows = 0;
  int ffn = 0;               // F, multiple of 8
  const void* in = nullptr;  // [rows][2F] (SwiGLU) or [rows][F] (ReLU)
  void* out = nullptr;       // [rows][F]
};

// Throw fdc::InputError naming the first unsupported value (dtype, shape, null pointer).
void validate(const GemmParams& p);
void validate(const RopeRotateParams& p);
void validate(const NormParams& p);
void validate(const ResidualParams& p);
void validate(const ActParams& p);

// The GPU kernels move 16-byte vectors: refuses a device pointer that is not 16-byte aligned.
void require_aligned16(const void* ptr, const char* what);

inline constexpr int kRopeMaxGroup = 8;

}  // namespace fdc::kernels::ops
