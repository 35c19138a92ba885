// Paged split-KV decode of FDC compressed attention, and its combine step.
//
// One block runs one DecodeUnit: a chunk of one (sequence, KV head, token class) segment, for all
// `G` q heads of the KV head's group (so K/V are read once). Pages are staged into shared memory
// with a 3-stage cp.async pipeline, 32 tokens a stage; a token's K row (r_qk of its class) is
// contiguous in its page, so the copies are fully coalesced at any rank. TX lanes cover a row, 8
// elements each; the tile width TX*8 is the launch's largest rank and lanes past a head's rank
// load nothing. Each token slot keeps its own online softmax; slots merge at the end. A pair with
// a single unit writes the output directly; otherwise units write (o, log2-sum-exp) partials and
// the combine kernel merges them.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

#include "kernels/attention/attention.h"
#include "kernels/common/device_utils.cuh"

namespace fdc::kernels::attn::dev {

using namespace fdc::kernels::dev;

inline constexpr int kDecodeThreads = 128;
inline constexpr int kDecodeStages = 3;

template <int TX, int G>
constexpr int decode_smem_bytes() {
  constexpr int stage = 2 * kDecodeStages * kDecodeTileTokens * TX * 8 * 2;
  constexpr int nty = kDecodeThreads / TX;
  constexpr int merge = G * nty * (TX * 8 + 2) * 4;
  return stage > merge ? stage : merge;
}

template <typename T, int TX, int G>
__global__ void __launch_bounds__(kDecodeThreads) decode_kernel(DecodeParams p, int log2_block) {
  constexpr int NTY = kDecodeThreads / TX;      // token slots
  constexpr int TILE = kDecodeTileTokens;
  constexpr int TPS = TILE / NTY;               // tokens per slot per tile
  constexpr int DP = TX * 8;                    // padded row width
  static_assert(TPS >= 1, "tile smaller than the slot count");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + kDecodeStages * TILE * DP;

  const DecodeUnit u = p.units[blockIdx.x];
  const int kv_head = u.head_cls >> 1;
  const int cls = u.head_cls & 1;
  const HeadInfo hd = p.heads[kv_head];
  const int rk = cls ? hd.rk_lo : hd.rk;
  const int rv = cls ? hd.rv_lo : hd.rv;
  const int tid = threadIdx.x;
  const int tx = tid % TX;
  const int ty = tid / TX;
  const int block = 1 << log2_block;

  const int* pages = cls ? p.cache.lo_page_indices + p.cache.lo_page_indptr[u.seq]
                         : p.cache.hi_page_indices + p.cache.hi_page_indptr[u.seq];
  const T* pool = static_cast<const T*>(cls ? p.cache.lo_pool : p.cache.hi_pool);
  const int64_t page_elems = cls ? p.cache.page_elems_lo : p.cache.page_elems_hi;
  const int k_off = cls ? hd.page_k_lo : hd.page_k_hi;
  const int v_off = cls ? hd.page_v_lo : hd.page_v_hi;

  // Queries, pre-scaled so that exp2 gives the softmax: s = q.k * scale * log2(e).
  const float qscale = p.sm_scale * 1.44269504088896340736f;
  float q[G][8];
  const T* qbase = static_cast<const T*>(p.q) + static_cast<int64_t>(u.seq) * p.q_row + hd.q_offset;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (tx * 8 < rk) {
      const uint4 raw = *reinterpret_cast<const uint4*>(qbase + g * hd.rk + tx * 8);
      unpack8<T>(raw, q[g]);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] *= qscale;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[g][i] = 0.f;
    }
  }

  const int ntok = u.end - u.begin;
  const int ntiles = (ntok + TILE - 1) / TILE;
  const int kchunks = rk >> 3;
  const int vchunks = rv >> 3;

  // Rows sit at the padded stride DP in shared memory; the trip count is a compile-time constant
  // so the page-index loads of all chunks issue together.
  auto load_tile = [&](int tile, int stage) {
    const int t0 = u.begin + tile * TILE;
    T* dk = sK + stage * TILE * DP;
    T* dv = sV + stage * TILE * DP;
#pragma unroll
    for (int it = 0; it < TILE * TX / kDecodeThreads; ++it) {
      const int i = tid + it * kDecodeThreads;
      const int row = i / TX;
      const int c = i % TX;
      const int t = t0 + row;
      if (t < u.end) {
        const int64_t base = static_cast<int64_t>(pages[t >> log2_block]) * page_elems;
        const int slot = t & (block - 1);
        if (c < kchunks) cp_async16(dk + row * DP + c * 8, pool + base + k_off + slot * rk + c * 8);
        if (c < vchunks) cp_async16(dv + row * DP + c * 8, pool + base + v_off + slot * rv + c * 8);
      }
    }
  };

  float m[G], d[G], o[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -1e30f;
    d[g] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) o[g][i] = 0.f;
  }

#pragma unroll
  for (int s = 0; s < kDecodeStages - 1; ++s) {
    if (s < ntiles) load_tile(s, s);
    cp_async_commit();
  }

  for (int tile = 0; tile < ntiles; ++tile) {
    const int next = tile + kDecodeStages - 1;
    if (next < ntiles) load_tile(next, next % kDecodeStages);
    cp_async_commit();
    cp_async_wait<kDecodeStages - 1>();
    __syncthreads();

    const int stage = tile % kDecodeStages;
    const T* tk = sK + stage * TILE * DP;
    const T* tv = sV + stage * TILE * DP;
    const int t0 = u.begin + tile * TILE;
    float s[TPS][G];
#pragma unroll
    for (int j = 0; j < TPS; ++j) {
      const int row = j * NTY + ty;
      const bool valid = t0 + row < u.end;
      float k[8];
      if (valid && tx * 8 < rk) {
        unpack8<T>(*reinterpret_cast<const uint4*>(tk + row * DP + tx * 8), k);
      } else {
#pragma unroll
        for (int i = 0; i < 8; ++i) k[i] = 0.f;
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float acc = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc = fmaf(q[g][i], k[i], acc);
#pragma unroll
        for (int off = TX / 2; off >= 1; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
        s[j][g] = valid ? acc : -INFINITY;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int j = 0; j < TPS; ++j) mx = fmaxf(mx, s[j][g]);
      const float alpha = exp2f(m[g] - mx);
      m[g] = mx;
      d[g] *= alpha;
#pragma unroll
      for (int i = 0; i < 8; ++i) o[g][i] *= alpha;
#pragma unroll
      for (int j = 0; j < TPS; ++j) {
        s[j][g] = exp2f(s[j][g] - mx);
        d[g] += s[j][g];
      }
    }
#pragma unroll
    for (int j = 0; j < TPS; ++j) {
      const int row = j * NTY + ty;
      const bool valid = t0 + row < u.end;
      if (valid && tx * 8 < rv) {
        float v[8];
        unpack8<T>(*reinterpret_cast<const uint4*>(tv + row * DP + tx * 8), v);
#pragma unroll
        for (int g = 0; g < G; ++g)
#pragma unroll
          for (int i = 0; i < 8; ++i) o[g][i] = fmaf(s[j][g], v[i], o[g][i]);
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();
  __syncthreads();

  // Merge the token slots (shared memory reused).
  float* sm_o = reinterpret_cast<float*>(smem_raw);  // [G][NTY][DP]
  float* sm_m = sm_o + G * NTY * DP;                 // [G][NTY]
  float* sm_d = sm_m + G * NTY;                      // [G][NTY]
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int i = 0; i < 8; ++i) sm_o[(g * NTY + ty) * DP + tx * 8 + i] = o[g][i];
    if (tx == 0) {
      sm_m[g * NTY + ty] = m[g];
      sm_d[g * NTY + ty] = d[g];
    }
  }
  __syncthreads();
  const int pair = u.seq * p.num_kv_heads + kv_head;
  const bool sole = p.pair_indptr[pair + 1] - p.pair_indptr[pair] == 1;
  for (int idx = tid; idx < G * hd.rv; idx += kDecodeThreads) {
    const int g = idx / hd.rv;
    const int dim = idx - g * hd.rv;
    float M = -1e30f;
    for (int y = 0; y < NTY; ++y) M = fmaxf(M, sm_m[g * NTY + y]);
    float D = 0.f, O = 0.f;
    for (int y = 0; y < NTY; ++y) {
      const float w = exp2f(sm_m[g * NTY + y] - M);
      D += sm_d[g * NTY + y] * w;
      O += sm_o[(g * NTY + y) * DP + dim] * w;
    }
    if (sole) {
      T* out = static_cast<T*>(p.out) + static_cast<int64_t>(u.seq) * p.o_row + hd.o_offset + g * hd.rv;
      out[dim] = from_float<T>(O / D);
    } else {
      p.partial_o[(static_cast<int64_t>(blockIdx.x) * G + g) * kMaxRank + dim] = O / D;
      if (dim == 0) p.partial_lse[static_cast<int64_t>(blockIdx.x) * G + g] = M + log2f(D);
    }
  }
}

// One block per (sequence, q head): merges the units of the pair (skips single-unit pairs, which
// the decode kernel already wrote).
template <typename T, int G>
__global__ void __launch_bounds__(kMaxRank) decode_combine_kernel(DecodeParams p) {
  const int seq = blockIdx.x / p.num_q_heads;
  const int qh = blockIdx.x - seq * p.num_q_heads;
  const int kv_head = qh / G;
  const int g = qh - kv_head * G;
  const int pair = seq * p.num_kv_heads + kv_head;
  const int b = p.pair_indptr[pair];
  const int e = p.pair_indptr[pair + 1];
  if (e - b <= 1) return;
  const HeadInfo hd = p.heads[kv_head];
  float M = -1e30f;
  for (int i = b; i < e; ++i) M = fmaxf(M, p.partial_lse[static_cast<int64_t>(p.pair_units[i]) * G + g]);
  const int dim = threadIdx.x;
  if (dim >= hd.rv) return;
  float W = 0.f, O = 0.f;
  for (int i = b; i < e; ++i) {
    const int unit = p.pair_units[i];
    const float w = exp2f(p.partial_lse[static_cast<int64_t>(unit) * G + g] - M);
    const int urv = (p.units[unit].head_cls & 1) ? hd.rv_lo : hd.rv;
    W += w;
    if (dim < urv) O += w * p.partial_o[(static_cast<int64_t>(unit) * G + g) * kMaxRank + dim];
  }
  T* out = static_cast<T*>(p.out) + static_cast<int64_t>(seq) * p.o_row + hd.o_offset + g * hd.rv;
  out[dim] = from_float<T>(O / W);
}

}  // namespace fdc::kernels::attn::dev
