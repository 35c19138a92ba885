// Causal prefill of FDC compressed attention (flash-attention 2 style, mma.sync m16n8k16 with
// fp32 accumulation; runs on sm_80 and sm_90).
//
// One block of 4 warps runs one PrefillTile: 128 new tokens of one q head; each warp owns 32 query
// rows (two m16 tiles), so every K/V fragment read from shared memory feeds two MMAs (shared-memory
// bandwidth, not the tensor cores, bounds a warp with one m16 tile). Q fragments are re-read from
// shared memory per k-step to leave registers for the two accumulators. K/V tiles of 64 cached tokens are read from the paged cache (hi pages) with a 2-stage
// cp.async pipeline into padded shared memory (row stride D + 8, so ldmatrix is conflict-free).
// D (64 or 128) is the launch's padded width; a head's own ranks bound the work at run time:
// the QK^T loop stops at ceil16(r_qk) and the PV loop at ceil16(r_v), so time follows the kept
// dims. Columns between a rank and its multiple of 16 are zero-filled.
#pragma once

#include <cuda_runtime.h>

#include "kernels/attention/attention.h"
#include "kernels/attention/mma.cuh"
#include "kernels/common/device_utils.cuh"

namespace fdc::kernels::attn::dev {

using namespace fdc::kernels::dev;

inline constexpr int kPrefillThreads = 128;
inline constexpr int kPrefillTileK = 64;

template <int D>
constexpr int prefill_smem_bytes() {
  return (kPrefillTileQ + 4 * kPrefillTileK) * (D + 8) * 2;
}

template <typename T, int D>
__global__ void __launch_bounds__(kPrefillThreads) prefill_kernel(PrefillParams p, int log2_block) {
  constexpr int BR = kPrefillTileQ;
  constexpr int BC = kPrefillTileK;
  constexpr int LD = D + 8;
  constexpr int KSTEPS = D / 16;
  constexpr int MT = 2;  // m16 tiles per warp
  static_assert(BR == 128 && BC == 64, "tile shape assumed below");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + BR * LD;       // [2][BC][LD]
  T* sV = sK + 2 * BC * LD;   // [2][BC][LD]

  const PrefillTile tile = p.tiles[blockIdx.x];
  const int group = p.num_q_heads / p.num_kv_heads;
  const int kv_head = tile.q_head / group;
  const int g = tile.q_head - kv_head * group;
  const HeadInfo hd = p.heads[kv_head];
  const int rk = hd.rk, rv = hd.rv;
  const int rk16 = (rk + 15) & ~15;
  const int rv16 = (rv + 15) & ~15;
  const int q_start = p.cu_q[tile.seq];
  const int q_len = p.cu_q[tile.seq + 1] - q_start;
  const int kv_len = p.kv_len[tile.seq];
  const int pos0 = kv_len - q_len;  // position of new token 0
  const int rows = min(BR, q_len - tile.q_begin);
  const int n_kv = pos0 + tile.q_begin + rows;  // keys visible to the tile's last row
  const int n_tiles = (n_kv + BC - 1) / BC;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int block = 1 << log2_block;

  const T* qsrc = static_cast<const T*>(p.q) + static_cast<int64_t>(q_start + tile.q_begin) * p.q_row + hd.q_offset + g * rk;
  const T* pool = static_cast<const T*>(p.cache.hi_pool);
  const int* pages = p.cache.hi_page_indices + p.cache.hi_page_indptr[tile.seq];

  // Q: rows past the sequence and columns in [rk, rk16) are zero.
  for (int i = tid; i < BR * (D / 8); i += kPrefillThreads) {
    const int r = i / (D / 8);
    const int c = (i % (D / 8)) * 8;
    if (c >= rk16) continue;
    const bool ok = r < rows && c < rk;
    cp_async16(sQ + r * LD + c, ok ? qsrc + static_cast<int64_t>(r) * p.q_row + c : qsrc, ok ? 16 : 0);
  }
  auto load_kv = [&](int j, int buf) {
    T* dk = sK + buf * BC * LD;
    T* dv = sV + buf * BC * LD;
#pragma unroll 2
    for (int it = 0; it < BC * (D / 8) / kPrefillThreads; ++it) {
      const int i = tid + it * kPrefillThreads;
      const int r = i / (D / 8);
      const int c = (i % (D / 8)) * 8;
      const int t = j * BC + r;
      const bool tok = t < n_kv;
      const T* base = pool;
      if (tok) base = pool + static_cast<int64_t>(pages[t >> log2_block]) * p.cache.page_elems_hi;
      const int slot = t & (block - 1);
      if (c < rk16) {
        const bool ok = tok && c < rk;
        cp_async16(dk + r * LD + c, ok ? base + hd.page_k_hi + slot * rk + c : pool, ok ? 16 : 0);
      }
      if (c < rv16) {
        const bool ok = tok && c < rv;
        cp_async16(dv + r * LD + c, ok ? base + hd.page_v_hi + slot * rv + c : pool, ok ? 16 : 0);
      }
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  const float qscale = p.sm_scale * 1.44269504088896340736f;
  float acc_o[MT][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc_o[mt][n][i] = 0.f;
  float m_row[MT][2], l_row[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m_row[mt][r] = -1e30f;
      l_row[mt][r] = 0.f;
    }
  const int qrow0 = warp * 16 * MT + lane / 4;  // this thread's rows: qrow0 + mt * 16 + {0, 8}
  const int first_pos = pos0 + tile.q_begin;

  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) load_kv(j + 1, (j + 1) & 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const T* tk = sK + (j & 1) * BC * LD;
    const T* tv = sV + (j & 1) * BC * LD;

    float s[MT][BC / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < BC / 8; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i) s[mt][n][i] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
      if (kk * 16 < rk) {
        uint32_t qf[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
          ldmatrix_x4(qf[mt], sQ + (warp * 16 * MT + mt * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int np = 0; np < BC / 16; ++np) {
          uint32_t b[4];
          ldmatrix_x4(b, tk + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(s[mt][2 * np], qf[mt], b[0], b[1]);
            mma_16816<T>(s[mt][2 * np + 1], qf[mt], b[2], b[3]);
          }
        }
      }
    }
    // Causal mask (only tiles that reach past the warp's first row need it) and online softmax.
    const int kv0 = j * BC;
    const bool need_mask = kv0 + BC - 1 > first_pos + warp * 16 * MT;
    uint32_t pa[BC / 16][MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float mx[2] = {m_row[mt][0], m_row[mt][1]};
#pragma unroll
      for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          float x = s[mt][n][i] * qscale;
          if (need_mask) {
            const int key = kv0 + n * 8 + (lane % 4) * 2 + (i & 1);
            const int pos = first_pos + qrow0 + mt * 16 + (i >> 1) * 8;
            if (key > pos) x = -INFINITY;
          }
          s[mt][n][i] = x;
          mx[i >> 1] = fmaxf(mx[i >> 1], x);
        }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      }
      float alpha[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        alpha[r] = exp2f(m_row[mt][r] - mx[r]);
        m_row[mt][r] = mx[r];
        l_row[mt][r] *= alpha[r];
      }
#pragma unroll
      for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          s[mt][n][i] = exp2f(s[mt][n][i] - m_row[mt][i >> 1]);
          l_row[mt][i >> 1] += s[mt][n][i];
        }
      }
#pragma unroll
      for (int kt = 0; kt < BC / 16; ++kt) {
        pa[kt][mt][0] = pack2<T>(s[mt][2 * kt][0], s[mt][2 * kt][1]);
        pa[kt][mt][1] = pack2<T>(s[mt][2 * kt][2], s[mt][2 * kt][3]);
        pa[kt][mt][2] = pack2<T>(s[mt][2 * kt + 1][0], s[mt][2 * kt + 1][1]);
        pa[kt][mt][3] = pack2<T>(s[mt][2 * kt + 1][2], s[mt][2 * kt + 1][3]);
      }
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        acc_o[mt][n][0] *= alpha[0];
        acc_o[mt][n][1] *= alpha[0];
        acc_o[mt][n][2] *= alpha[1];
        acc_o[mt][n][3] *= alpha[1];
      }
    }
    // O += P V, P (packed to 16 bits as the A operand) read once per V fragment for MT MMAs.
#pragma unroll
    for (int kt = 0; kt < BC / 16; ++kt) {
      const uint32_t(&a)[MT][4] = pa[kt];
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        if (dn * 16 < rv) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, tv + (kt * 16 + (lane & 15)) * LD + dn * 16 + (lane >> 4) * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            mma_16816<T>(acc_o[mt][2 * dn], a[mt], b[0], b[1]);
            mma_16816<T>(acc_o[mt][2 * dn + 1], a[mt], b[2], b[3]);
          }
        }
      }
    }
    __syncthreads();
  }
  cp_async_wait<0>();

  T* out = static_cast<T*>(p.out) + static_cast<int64_t>(q_start + tile.q_begin) * p.o_row + hd.o_offset + g * rv;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float l = l_row[mt][r];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int row = qrow0 + mt * 16 + r * 8;
      if (row >= rows) continue;
      const float inv = 1.f / l;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        const int col = n * 8 + (lane % 4) * 2;
        if (col < rv)
          *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(row) * p.o_row + col) =
              pack2<T>(acc_o[mt][n][2 * r] * inv, acc_o[mt][n][2 * r + 1] * inv);
      }
    }
  }
}

}  // namespace fdc::kernels::attn::dev
