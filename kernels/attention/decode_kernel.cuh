// Paged split-KV decode of FDC compressed attention, and its combine step.
//
// One block runs one DecodeUnit: a chunk of one (sequence, KV head, token class) segment, for all
// `G` q heads of the KV head's group (so K/V are read once). The unit's own width (the larger of
// its class's r_qk and r_v) picks the tile shape at run time, so heads of different ranks in one
// launch each get a tile matched to their rank: rows are W = 32, 64 or 128 elements wide (the width
// rounded up), TX = W/8 lanes cover a row, 8 elements each. A stage holds kDecodeStageElems
// elements of K (and as many of V), i.e. 128, 64 or 32 tokens, so narrow heads keep as many bytes
// in flight per SM as wide ones. (Two more shapes, W = 48 and 96, measured 7-9% slower at every
// rank on an H100, the rank-128 path included, so the kernel keeps three.) Pages are staged into shared memory with a 3-stage cp.async pipeline; the
// copies walk the tile's K (V) rows as one flat run of 16-byte chunks, so every lane issues a
// useful copy whatever the rank, and a token's rows are contiguous in its page (coalesced). Each
// token slot keeps its own online softmax; slots merge at the end. A pair with a single unit
// writes the output directly; otherwise units write (o, log2-sum-exp) partials and the combine
// kernel merges them.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

#include "kernels/attention/attention.h"
#include "kernels/attention/decode_unit.cuh"
#include "kernels/common/device_utils.cuh"

namespace fdc::kernels::attn::dev {

using namespace fdc::kernels::dev;

inline constexpr int kDecodeThreads = 128;
inline constexpr int kDecodeStages = 3;
inline constexpr int kDecodeStageElems = 32 * 128;  // K (and V) elements per stage at any width

// Tokens per stage for rows of W elements read by TX lanes: a multiple of the slot count.
template <int TX, int W>
constexpr int decode_tile_tokens() {
  return kDecodeStageElems / W / (kDecodeThreads / TX) * (kDecodeThreads / TX);
}

// Largest of the pipeline and the slot-merge footprints over the tile shapes (the merge keeps
// G x slots rows of W + 2 floats; W = 32 with 32 slots is the largest).
template <int G>
constexpr int decode_smem_bytes() {
  constexpr int stage = 2 * kDecodeStages * kDecodeStageElems * 2;
  constexpr int merge = G * (kDecodeThreads / 4) * (32 + 2) * 4;
  static_assert(G * (kDecodeThreads / 16) * (128 + 2) * 4 <= merge, "merge footprint");
  return stage > merge ? stage : merge;
}

// Register budget: q and o take 16*G floats a lane, so wide groups run fewer blocks per SM.
template <int G>
constexpr int decode_min_blocks() {
  return G <= 2 ? 4 : (G == 4 ? 3 : 2);
}

// I = kShift: a class's pages hold a power of two of its tokens (the block size, or shared pages
// of such counts), and a token's page and slot are a shift and a mask; otherwise any count
// (shared pages), found by a division (kDivide) or by slot_page (kMultiply).
template <typename T, int TX, int W, int G, SlotIndex I>
__device__ __forceinline__ void decode_unit(const DecodeParams& p, const SlotDivisors& sd, const DecodeUnit& u,
                                            unsigned char* smem_raw) {
  constexpr bool kAnySlots = I != SlotIndex::kShift;
  constexpr int NTY = kDecodeThreads / TX;      // token slots
  constexpr int TILE = decode_tile_tokens<TX, W>();
  constexpr int TPS = TILE / NTY;               // tokens per slot per tile
  constexpr int JB = G <= 2 ? TPS : (G == 4 && TPS % 2 == 0 ? 2 : 1);  // tokens per softmax update
  constexpr int DP = W;                         // row stride in shared memory
  constexpr int LOADS = (TILE * (W / 8) + kDecodeThreads - 1) / kDecodeThreads;
  static_assert(TPS >= 1 && TPS % JB == 0 && W <= TX * 8 && W % 8 == 0 && TILE * W <= kDecodeStageElems,
                "tile shape");
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + kDecodeStages * TILE * DP;

  const int kv_head = u.head_cls >> 1;
  const HeadInfo hd = p.heads[kv_head];
  const UnitRows<T> ur = unit_rows<T>(p, sd, u, hd);
  const int rk = ur.rk, rv = ur.rv;
  const int tid = threadIdx.x;
  const int tx = tid % TX;
  const int ty = tid / TX;
  // Tokens of this class per page: block_size, or a shared page's hi / lo slots (any count).
  const int log2_slots = kAnySlots ? 0 : __ffs(ur.slots) - 1;

  const int* pages = ur.pages;
  const int64_t page_elems = ur.page_elems;
  const T* kpool = ur.kpool;
  const T* vpool = ur.vpool;

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
  const float inv_k = 1.f / static_cast<float>(kchunks);
  const float inv_v = 1.f / static_cast<float>(vchunks);

  // Chunk i of a tile's K rows is row i / kchunks, column (i % kchunks) * 8; the quotient comes
  // from a float reciprocal (exact: i < 1024 and the fraction is at least 1/32 from an integer).
  // The trip count is a compile-time constant so the page-index loads of all chunks issue together.
  auto load_tile = [&](int tile, int stage) {
    const int t0 = u.begin + tile * TILE;
    T* dk = sK + stage * TILE * DP;
    T* dv = sV + stage * TILE * DP;
#pragma unroll
    for (int it = 0; it < LOADS; ++it) {
      const int i = tid + it * kDecodeThreads;
      const int rowk = __float2int_rz((static_cast<float>(i) + 0.5f) * inv_k);
      const int tk = t0 + rowk;
      if (rowk < TILE && tk < u.end) {
        const int c = i - rowk * kchunks;
        const int2 ps = page_slot<I>(tk, ur, log2_slots);
        const int sl = ps.y;
        const int64_t base = static_cast<int64_t>(pages[ps.x]) * page_elems;
        cp_async16(dk + rowk * DP + c * 8, kpool + base + sl * rk + c * 8);
      }
      const int rowv = __float2int_rz((static_cast<float>(i) + 0.5f) * inv_v);
      const int tv = t0 + rowv;
      if (rowv < TILE && tv < u.end) {
        const int c = i - rowv * vchunks;
        const int2 ps = page_slot<I>(tv, ur, log2_slots);
        const int sl = ps.y;
        const int64_t base = static_cast<int64_t>(pages[ps.x]) * page_elems;
        cp_async16(dv + rowv * DP + c * 8, vpool + base + sl * rv + c * 8);
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
#pragma unroll
    for (int jb = 0; jb < TPS; jb += JB) {
      float s[JB][G];
#pragma unroll
      for (int j = 0; j < JB; ++j) {
        const int row = (jb + j) * NTY + ty;
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
        for (int j = 0; j < JB; ++j) mx = fmaxf(mx, s[j][g]);
        const float alpha = exp2f(m[g] - mx);
        m[g] = mx;
        d[g] *= alpha;
#pragma unroll
        for (int i = 0; i < 8; ++i) o[g][i] *= alpha;
#pragma unroll
        for (int j = 0; j < JB; ++j) {
          s[j][g] = exp2f(s[j][g] - mx);
          d[g] += s[j][g];
        }
      }
#pragma unroll
      for (int j = 0; j < JB; ++j) {
        const int row = (jb + j) * NTY + ty;
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
    }
    __syncthreads();
  }
  cp_async_wait<0>();
  __syncthreads();

  // Merge the token slots (shared memory reused): per-slot weights first, then one pass per dim.
  float* sm_o = reinterpret_cast<float*>(smem_raw);  // [G][NTY][DP]
  float* sm_m = sm_o + G * NTY * DP;                 // [G][NTY] max, then weight
  float* sm_d = sm_m + G * NTY;                      // [G][NTY] sum; [G][0] the merged sum
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (tx * 8 < W)
#pragma unroll
      for (int i = 0; i < 8; ++i) sm_o[(g * NTY + ty) * DP + tx * 8 + i] = o[g][i];
    if (tx == 0) {
      sm_m[g * NTY + ty] = m[g];
      sm_d[g * NTY + ty] = d[g];
    }
  }
  __syncthreads();
  __shared__ float s_lse[G], s_inv[G];
  // One warp per q head turns the slot maxima into weights and the merged sum.
  for (int g = tid / 32; g < G; g += kDecodeThreads / 32) {
    const int lane = tid % 32;
    float M = -1e30f;
    for (int y = lane; y < NTY; y += 32) M = fmaxf(M, sm_m[g * NTY + y]);
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, off));
    float D = 0.f;
    for (int y = lane; y < NTY; y += 32) {
      const float w = exp2f(sm_m[g * NTY + y] - M);
      D += sm_d[g * NTY + y] * w;
      sm_m[g * NTY + y] = w;
    }
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) D += __shfl_xor_sync(0xffffffffu, D, off);
    if (lane == 0) {
      s_lse[g] = M + log2f(D);
      s_inv[g] = 1.f / D;
    }
  }
  __syncthreads();
  const int pair = u.seq * p.num_kv_heads + kv_head;
  const bool sole = p.pair_indptr[pair + 1] - p.pair_indptr[pair] == 1;
  const int out_w = hd.rv;  // lo units leave [rv_lo, rv) of their partial at zero
  for (int idx = tid; idx < G * out_w; idx += kDecodeThreads) {
    const int g = idx / out_w;
    const int dim = idx - g * out_w;
    float O = 0.f;
    if (dim < rv)
      for (int y = 0; y < NTY; ++y) O = fmaf(sm_o[(g * NTY + y) * DP + dim], sm_m[g * NTY + y], O);
    if (sole) {
      T* out = static_cast<T*>(p.out) + static_cast<int64_t>(u.seq) * p.o_row + hd.o_offset + g * hd.rv;
      out[dim] = from_float<T>(O * s_inv[g]);
    } else {
      p.partial_o[(static_cast<int64_t>(blockIdx.x) * G + g) * kMaxRank + dim] = O * s_inv[g];
      if (dim == 0) p.partial_lse[static_cast<int64_t>(blockIdx.x) * G + g] = s_lse[g];
    }
  }
}

template <typename T, int G, SlotIndex I>
__global__ void __launch_bounds__(kDecodeThreads, decode_min_blocks<G>())
    decode_kernel(DecodeParams p, SlotDivisors sd) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const DecodeUnit u = p.units[blockIdx.x];
  const int width = head_width(p.heads[u.head_cls >> 1], u.head_cls & 1);
  if (width <= 32)
    decode_unit<T, 4, 32, G, I>(p, sd, u, smem_raw);
  else if (width <= 64)
    decode_unit<T, 8, 64, G, I>(p, sd, u, smem_raw);
  else
    decode_unit<T, 16, 128, G, I>(p, sd, u, smem_raw);
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
