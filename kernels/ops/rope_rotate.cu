// Fused RoPE + FDC rotation (and RoPE alone, the same kernel without the rotation step).
//
// A block owns one KV head and loops over token tiles. Per tile it stages, in shared memory, the
// post-RoPE vectors of its group (the group's q heads, then the k head) for up to 64 tokens, rounded
// to the dtype; every warp then multiplies 16-row stripes by the head's rotation R (d x r_qk, held
// in shared memory for the whole block) with bf16/fp16 tensor cores (WMMA 16x16x16, fp32
// accumulate) and writes the compressed rows: q into the packed q row, k into the packed k row
// and/or the paged cache. R is read once per block, so its bytes are negligible next to q and k.
// RoPE alone writes the rotated halves straight from registers.
#include <mma.h>

#include <algorithm>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_utils.cuh"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTileRows = 128;  // vectors (tokens x (group + 1)) staged per tile, before padding

__host__ __device__ inline int ceil16(int x) { return (x + 15) / 16 * 16; }
__host__ __device__ inline int tile_tokens(int group) { return kTileRows / (group + 1) > 0 ? kTileRows / (group + 1) : 1; }

template <typename T>
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  uint4 out;
  uint32_t* w = reinterpret_cast<uint32_t*>(&out);
#pragma unroll
  for (int i = 0; i < 4; ++i) w[i] = dev::pack2<T>(f[2 * i], f[2 * i + 1]);
  return out;
}

// Global destination of column `col` (a multiple of 8) of output vector v (v < group: q head
// kv*group + v; v == group: the k head) of `token`; writes 8 values.
template <typename T>
__device__ __forceinline__ void store8(const RopeRotateParams& p, const attn::HeadInfo& h, int group, int token, int v,
                                       int col, const uint4& val) {
  if (v < group) {
    T* q = static_cast<T*>(p.q_out) + static_cast<int64_t>(token) * p.q_row + h.q_offset + v * h.rk + col;
    *reinterpret_cast<uint4*>(q) = val;
    return;
  }
  if (p.k_out) {
    T* k = static_cast<T*>(p.k_out) + static_cast<int64_t>(token) * p.k_row + h.k_offset + col;
    *reinterpret_cast<uint4*>(k) = val;
  }
  if (p.hi_pool) {
    const int seq = p.seq_of[token], slot = p.pos_of[token];
    const int page = p.hi_page_indices[p.hi_page_indptr[seq] + slot / p.block_size];
    T* c = static_cast<T*>(p.hi_pool) + static_cast<int64_t>(page) * p.page_elems_hi +
           attn::page_k_elem(h, 0, slot % p.block_size) + col;
    *reinterpret_cast<uint4*>(c) = val;
  }
}

template <typename T, bool kRotate>
__global__ void __launch_bounds__(kThreads) rope_rotate_kernel(const RopeRotateParams p) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int kv = blockIdx.x;
  const attn::HeadInfo h = p.heads[kv];
  const int d = p.head_dim, half = d / 2, group = p.num_q_heads / p.num_kv_heads;
  const int vecs = group + 1, tt = tile_tokens(group);
  const int rows = tt * vecs, rows_pad = ceil16(rows);
  const int ldx = d + 8;
  const int rpad = ceil16(h.rk), ldr = ceil16(p.max_rank) + 8;
  T* xs = reinterpret_cast<T*>(smem);                  // [rows_pad][ldx]
  T* rs = xs + static_cast<int64_t>(rows_pad) * ldx;   // [d][ldr]
  float* stage = reinterpret_cast<float*>(rs + static_cast<int64_t>(d) * ldr);  // [kWarps][16][16]

  if constexpr (kRotate) {
    // R of this head, zero-padded to a multiple of 16 columns.
    const T* r = static_cast<const T*>(p.rotation) + static_cast<int64_t>(d) * h.k_offset;
    const int cvecs = rpad / 8;
    for (int i = threadIdx.x; i < d * cvecs; i += kThreads) {
      const int row = i / cvecs, c = (i % cvecs) * 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (c < h.rk) v = *reinterpret_cast<const uint4*>(r + static_cast<int64_t>(row) * h.rk + c);
      *reinterpret_cast<uint4*>(rs + row * ldr + c) = v;
    }
  }

  const int num_tiles = (p.num_tokens + tt - 1) / tt;
  const int hvecs = half / 8;
  for (int tile = blockIdx.y; tile < num_tiles; tile += gridDim.y) {
    const int tok0 = tile * tt;
    // RoPE: work item = (staged row, 8-wide column pair block).
    for (int i = threadIdx.x; i < rows_pad * hvecs; i += kThreads) {
      const int rr = i / hvecs, c = (i % hvecs) * 8;
      const int token = tok0 + rr / vecs, v = rr % vecs;
      float lo[8], hi[8];
      const bool valid = rr < rows && token < p.num_tokens;
      if (valid) {
        const int64_t col = v < group ? static_cast<int64_t>(kv * group + v) * d
                                      : static_cast<int64_t>(p.num_q_heads + kv) * d;
        const T* x = static_cast<const T*>(p.qkv) + static_cast<int64_t>(token) * p.qkv_row + col;
        float x1[8], x2[8];
        dev::unpack8<T>(*reinterpret_cast<const uint4*>(x + c), x1);
        dev::unpack8<T>(*reinterpret_cast<const uint4*>(x + half + c), x2);
        const float* cs = p.cos_sin + static_cast<int64_t>(p.positions[token]) * d;
        const float4 c0 = *reinterpret_cast<const float4*>(cs + c), c1 = *reinterpret_cast<const float4*>(cs + c + 4);
        const float4 s0 = *reinterpret_cast<const float4*>(cs + half + c);
        const float4 s1 = *reinterpret_cast<const float4*>(cs + half + c + 4);
        const float co[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
        const float si[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          lo[j] = __fsub_rn(__fmul_rn(x1[j], co[j]), __fmul_rn(x2[j], si[j]));
          hi[j] = __fadd_rn(__fmul_rn(x2[j], co[j]), __fmul_rn(x1[j], si[j]));
        }
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) lo[j] = hi[j] = 0.f;
      }
      const uint4 plo = pack8<T>(lo), phi = pack8<T>(hi);
      if constexpr (kRotate) {
        *reinterpret_cast<uint4*>(xs + rr * ldx + c) = plo;
        *reinterpret_cast<uint4*>(xs + rr * ldx + half + c) = phi;
      } else if (valid) {
        store8<T>(p, h, group, token, v, c, plo);
        store8<T>(p, h, group, token, v, half + c, phi);
      }
    }
    if constexpr (kRotate) {
      __syncthreads();
      namespace wmma = nvcuda::wmma;
      const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
      float* st = stage + warp * 256;
      for (int s = warp; s < rows_pad / 16; s += kWarps) {
        for (int nt = 0; nt < rpad / 16; ++nt) {
          wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
          wmma::fill_fragment(acc, 0.f);
          for (int kt = 0; kt < d / 16; ++kt) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
            wmma::load_matrix_sync(a, xs + s * 16 * ldx + kt * 16, ldx);
            wmma::load_matrix_sync(b, rs + kt * 16 * ldr + nt * 16, ldr);
            wmma::mma_sync(acc, a, b, acc);
          }
          wmma::store_matrix_sync(st, acc, 16, wmma::mem_row_major);
          __syncwarp();
          const int rr = s * 16 + lane / 2, c = (lane % 2) * 8, col = nt * 16 + c;
          const int token = tok0 + rr / vecs, v = rr % vecs;
          if (rr < rows && token < p.num_tokens && col < h.rk) {
            float f[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) f[j] = st[(lane / 2) * 16 + c + j];
            store8<T>(p, h, group, token, v, col, pack8<T>(f));
          }
          __syncwarp();
        }
      }
      __syncthreads();  // xs is refilled by the next tile
    }
  }
}

template <typename T, bool kRotate>
void launch_typed(const RopeRotateParams& p, cudaStream_t stream) {
  const int group = p.num_q_heads / p.num_kv_heads;
  const int tt = tile_tokens(group);
  const int rows_pad = ceil16(tt * (group + 1));
  const size_t smem = kRotate ? (static_cast<size_t>(rows_pad) * (p.head_dim + 8) +
                                 static_cast<size_t>(p.head_dim) * (ceil16(p.max_rank) + 8)) * sizeof(T) +
                                    kWarps * 256 * sizeof(float)
                              : 0;
  if (kRotate)
    CUDA_CHECK(cudaFuncSetAttribute(rope_rotate_kernel<T, kRotate>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(smem)));
  int device = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int num_tiles = (p.num_tokens + tt - 1) / tt;
  // Enough blocks to fill the GPU a few times over; each loops over its share of tiles.
  const int per_sm = kRotate ? 2 : 8;
  const int ty = std::max(1, std::min(num_tiles, (sms * per_sm + p.num_kv_heads - 1) / p.num_kv_heads));
  const dim3 grid(static_cast<unsigned>(p.num_kv_heads), static_cast<unsigned>(ty));
  rope_rotate_kernel<T, kRotate><<<grid, kThreads, smem, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_rope_rotate(const RopeRotateParams& p, cudaStream_t stream) {
  validate(p);
  for (const void* q : {p.qkv, static_cast<const void*>(p.cos_sin), p.rotation, static_cast<const void*>(p.q_out),
                        static_cast<const void*>(p.k_out), static_cast<const void*>(p.hi_pool)})
    require_aligned16(q, "rope_rotate");
  if (p.num_tokens == 0) return;
  const bool rotate = p.rotation != nullptr;
  if (p.dtype == DType::kBF16) {
    rotate ? launch_typed<__nv_bfloat16, true>(p, stream) : launch_typed<__nv_bfloat16, false>(p, stream);
  } else {
    rotate ? launch_typed<__half, true>(p, stream) : launch_typed<__half, false>(p, stream);
  }
}

}  // namespace fdc::kernels::ops
