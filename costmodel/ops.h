// The ops of one transformer forward pass, each with its FLOPs and bytes from its shape: the one
// place these formulas live (used by the roofline, the benchmarks' napkin math and the reports).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace fdc::costmodel {

enum class OpKind : int {
  kNorm,
  kQkvProj,
  kRopeRotate,
  kAllToAllQkv,
  kKvAppend,
  kKvClassify,
  kAttnPrefill,
  kAttnDecode,
  kAllToAllOut,
  kOutProj,
  kAllReduce,
  kResidual,
  kMlpUp,
  kMlpAct,
  kMlpDown,
  kLmHead,
  kAllGather,
  kIterationOverhead,
  kCount
};
constexpr int kNumOpKinds = static_cast<int>(OpKind::kCount);
std::string_view op_name(OpKind k);

// The short element-wise kernels of a layer: what a profile's `elementwise_in_layer` calibrates
// (fdcsim fit --elementwise-in-layer-from) and the cost model divides by it.
inline constexpr std::array<OpKind, 5> kElementwiseOps = {OpKind::kNorm, OpKind::kRopeRotate, OpKind::kKvAppend,
                                                          OpKind::kResidual, OpKind::kMlpAct};
constexpr bool is_elementwise(OpKind k) {
  for (OpKind e : kElementwiseOps)
    if (e == k) return true;
  return false;
}

// Work of one op on one GPU.
struct OpWork {
  double flops = 0;       // floating-point operations (a multiply-add counts 2)
  double bytes = 0;       // bytes moved through device memory (each input read once, outputs written once)
  double comm_bytes = 0;  // bytes each GPU sends over the intra-server link (collectives)
};

// GEMM out[m,n] = a[m,k] * b[k,n], element size e bytes.
inline OpWork gemm_work(double m, double n, double k, double e) {
  return {2.0 * m * n * k, e * (m * k + k * n + m * n), 0.0};
}
// Rows a GEMM's kernel computes for m rows of output: above one tile, whole tiles of
// kGemmTileRows (GEMM kernels tile M; 128 rows is the period of the engine runs' prompt-iteration
// errors before this rule, docs/fit.md "GEMMs priced on whole 128-row tiles"); at or below one tile,
// m itself (the narrow kernels of small batches). The fitted GEMM laws price these rows
// (fit::OpQuery::gemm).
inline constexpr double kGemmTileRows = 128;
inline double gemm_tiled_rows(double m) { return m > kGemmTileRows ? std::ceil(m / kGemmTileRows) * kGemmTileRows : m; }
// Element-wise op reading `in` elements and writing `out` elements.
inline OpWork elementwise_work(double in, double out, double e, double flops_per_elem = 1.0) {
  return {flops_per_elem * in, e * (in + out), 0.0};
}

// RoPE (+ FDC rotation) over `tokens` rows: reads in_per_token elements (the full q and k heads),
// writes out_per_token (the compressed ones); 6 flops per element for RoPE plus a multiply-add per
// rotation MAC (rotate_macs_per_token = sum over q and k heads of head_dim x r_qk; 0 when skipped).
inline OpWork rope_rotate_work(double tokens, double in_per_token, double out_per_token, double rotate_macs_per_token,
                               double e) {
  OpWork w = elementwise_work(tokens * in_per_token, tokens * out_per_token, e, 6.0);
  w.flops += 2.0 * tokens * rotate_macs_per_token;
  return w;
}

// KV append: `tokens` new rows of K/V, kv_dims_per_token elements each (the sum of r_qk + r_v over
// the KV heads, at each row's class), read from the projection's output and written into their
// cache slots. No flops.
inline OpWork kv_append_work(double tokens, double kv_dims_per_token, double e) {
  return {0.0, 2.0 * e * tokens * kv_dims_per_token, 0.0};
}

// Bytes a segmented radix sort of 32-bit keys and values moves per key: four 8-bit digit passes,
// each reading and writing the key and its value. The engine ranks a prompt's rows by counting
// instead (kernels/attention/classify.h), which reads each key once per 256-row tile of its prompt:
// about as many bytes for prompts of 4096 rows, fewer for shorter ones.
inline constexpr double kSortBytesPerKey = 4 * 2 * (4 + 4);

// Token classification of `tokens` prompt rows (hybrid token classes): each row's importance is
// the energy of the dims a lo token drops (tail_dims_per_token elements over the KV heads: a
// multiply-add each), then the rows of each prompt are ranked by it (kSortBytesPerKey per row) and
// assigned a class and slot (a class and a slot written per row).
inline OpWork kv_classify_work(double tokens, double tail_dims_per_token, double e) {
  return {2.0 * tokens * tail_dims_per_token, tokens * (e * tail_dims_per_token + kSortBytesPerKey + 2 * 4.0), 0.0};
}

// Collective factors as nccl-tests defines bus bandwidth: data each GPU sends per payload byte.
// all-to-all over g GPUs: (g-1)/g of the local buffer; ring all-reduce: 2(g-1)/g; all-gather: (g-1)/g.
inline double alltoall_send_factor(int g) { return g > 1 ? static_cast<double>(g - 1) / g : 0.0; }
inline double allreduce_send_factor(int g) { return g > 1 ? 2.0 * (g - 1) / g : 0.0; }
inline double allgather_send_factor(int g) { return g > 1 ? static_cast<double>(g - 1) / g : 0.0; }

// Per-op time totals of one iteration, on request.
// The decode attention kernels the fitted cost model prices with their own laws (their profile
// names: attn_decode, attn_decode/tensor_cores, attn_decode/shared_pages).
enum class DecodeKernel : int { kCudaCores, kTensorCores, kSharedPages, kCount };
constexpr int kNumDecodeKernels = static_cast<int>(DecodeKernel::kCount);
constexpr std::string_view decode_kernel_law(DecodeKernel k) {
  switch (k) {
    case DecodeKernel::kTensorCores:
      return "attn_decode/tensor_cores";
    case DecodeKernel::kSharedPages:
      return "attn_decode/shared_pages";
    default:
      return "attn_decode";
  }
}

struct OpBreakdown {
  std::array<double, kNumOpKinds> seconds{};
  std::array<OpWork, kNumOpKinds> work{};
  // Decode attention calls by the kernel that runs them (the fitted cost model records them; the
  // roofline leaves them at zero).
  std::array<double, kNumDecodeKernels> decode_calls{};
};

}  // namespace fdc::costmodel
