// Parameter checks of the layer ops: one place, run by every launcher and by the CPU references,
// so unsupported shapes are refused the same way on both sides (and testable without a GPU).
#include <cstdint>
#include <string>

#include "core/error.h"
#include "kernels/ops/op_params.h"

namespace fdc::kernels::ops {
namespace {

void check_dtype(DType t, const char* op) {
  FDC_INPUT_CHECK(t == DType::kBF16 || t == DType::kFP16,
                  op << ": dtype " << to_string(t) << " is not supported (bf16 or fp16 expected)");
}

}  // namespace

void require_aligned16(const void* ptr, const char* what) {
  FDC_INPUT_CHECK(ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % 16 == 0,
                  what << ": pointer " << ptr << " is not 16-byte aligned (the kernels move 16-byte vectors)");
}

void validate(const GemmParams& p) {
  check_dtype(p.dtype, "gemm");
  FDC_INPUT_CHECK(p.m >= 1 && p.n >= 1 && p.k >= 1,
                  "gemm: m, n, k must be positive, found m=" << p.m << " n=" << p.n << " k=" << p.k);
  // 16-byte aligned rows: cuBLASLt's tensor-core kernels need them, and every FDC width is a
  // multiple of 8 elements (ranks are).
  FDC_INPUT_CHECK(p.k % 8 == 0 && p.n % 8 == 0,
                  "gemm: n and k must be multiples of 8 elements (16-byte rows), found n=" << p.n << " k=" << p.k);
  FDC_INPUT_CHECK(p.x && p.w && p.out, "gemm: x, w and out must be non-null");
}

void validate(const RopeRotateParams& p) {
  check_dtype(p.dtype, "rope_rotate");
  FDC_INPUT_CHECK(p.head_dim == 64 || p.head_dim == 128,
                  "rope_rotate: head_dim " << p.head_dim << " is not supported (64 or 128)");
  FDC_INPUT_CHECK(p.num_tokens >= 0, "rope_rotate: num_tokens must be >= 0, found " << p.num_tokens);
  FDC_INPUT_CHECK(p.num_kv_heads >= 1 && p.num_q_heads >= p.num_kv_heads && p.num_q_heads % p.num_kv_heads == 0,
                  "rope_rotate: num_q_heads (" << p.num_q_heads << ") must be a positive multiple of num_kv_heads ("
                                               << p.num_kv_heads << ")");
  const int group = p.num_q_heads / p.num_kv_heads;
  FDC_INPUT_CHECK(group <= kRopeMaxGroup,
                  "rope_rotate: GQA group " << group << " is not supported (at most " << kRopeMaxGroup << ")");
  FDC_INPUT_CHECK(p.max_rank >= attn::kRankGranule && p.max_rank <= p.head_dim && p.max_rank % attn::kRankGranule == 0,
                  "rope_rotate: max_rank " << p.max_rank << " must be a multiple of " << attn::kRankGranule
                                           << " in [" << attn::kRankGranule << ", head_dim=" << p.head_dim << "]");
  FDC_INPUT_CHECK(p.rotation || p.max_rank == p.head_dim,
                  "rope_rotate: without a rotation (RoPE alone) every rank must equal head_dim " << p.head_dim
                                                                                                 << ", found max_rank "
                                                                                                 << p.max_rank);
  const int64_t qk_cols = static_cast<int64_t>(p.num_q_heads + p.num_kv_heads) * p.head_dim;
  FDC_INPUT_CHECK(p.qkv_row >= qk_cols && p.qkv_row % 8 == 0,
                  "rope_rotate: qkv_row " << p.qkv_row << " must be a multiple of 8 and hold the " << qk_cols
                                          << " q and k columns");
  FDC_INPUT_CHECK(p.max_position >= 1, "rope_rotate: max_position must be positive, found " << p.max_position);
  FDC_INPUT_CHECK(p.q_row >= p.num_q_heads * attn::kRankGranule && p.q_row % 8 == 0 &&
                      p.k_row >= p.num_kv_heads * attn::kRankGranule && p.k_row % 8 == 0,
                  "rope_rotate: q_row " << p.q_row << " / k_row " << p.k_row
                                        << " do not fit the head counts (use HeadLayout::q_row / k_row)");
  FDC_INPUT_CHECK(p.qkv && p.positions && p.cos_sin && p.heads && p.q_out,
                  "rope_rotate: qkv, positions, cos_sin, heads and q_out must be non-null");
  FDC_INPUT_CHECK(p.k_out || p.hi_pool, "rope_rotate: k needs a destination: k_out, hi_pool or both");
  if (p.hi_pool) {
    FDC_INPUT_CHECK(p.block_size == 16 || p.block_size == 32 || p.block_size == 64,
                    "rope_rotate: cache block size " << p.block_size << " is not supported (16, 32 or 64)");
    FDC_INPUT_CHECK(p.page_elems_hi > 0 && p.seq_of && p.pos_of && p.hi_page_indptr && p.hi_page_indices,
                    "rope_rotate: a cache write needs page_elems_hi, seq_of, pos_of and the hi page table");
  }
}

void validate(const NormParams& p) {
  check_dtype(p.dtype, "norm");
  FDC_INPUT_CHECK(p.rows >= 0, "norm: rows must be >= 0, found " << p.rows);
  FDC_INPUT_CHECK(p.dim >= 8 && p.dim <= 65536 && p.dim % 8 == 0,
                  "norm: dim " << p.dim << " is not supported (a multiple of 8 in [8, 65536])");
  FDC_INPUT_CHECK(p.eps > 0.f, "norm: eps must be positive, found " << p.eps);
  FDC_INPUT_CHECK(p.x && p.weight && p.out, "norm: x, weight and out must be non-null");
  FDC_INPUT_CHECK(p.kind == NormKind::kLayerNorm || !p.bias, "norm: RMSNorm takes no bias");
}

void validate(const ResidualParams& p) {
  check_dtype(p.dtype, "residual_add");
  FDC_INPUT_CHECK(p.count >= 0, "residual_add: count must be >= 0, found " << p.count);
  FDC_INPUT_CHECK(p.a && p.b && p.out, "residual_add: a, b and out must be non-null");
}

void validate(const ActParams& p) {
  check_dtype(p.dtype, "mlp_act");
  FDC_INPUT_CHECK(p.rows >= 0, "mlp_act: rows must be >= 0, found " << p.rows);
  FDC_INPUT_CHECK(p.ffn >= 8 && p.ffn % 8 == 0, "mlp_act: ffn " << p.ffn << " must be a positive multiple of 8");
  FDC_INPUT_CHECK(p.in && p.out, "mlp_act: in and out must be non-null");
}

}  // namespace fdc::kernels::ops
