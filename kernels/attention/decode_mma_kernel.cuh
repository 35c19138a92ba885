// Paged split-KV decode of FDC compressed attention on the tensor cores (mma.sync m16n8k16, fp32
// accumulation; sm_80 and sm_90). Same work units, outputs and combine step as decode_kernel.cuh.
//
// Why: the CUDA-core kernel converts every K and V element to fp32 and spends one FMA per element
// and head, so at ranks below 128 it is bound by the instructions it issues, not by DRAM (ncu on an
// H200: 65% of issue slots busy at 74% of DRAM peak at rank 96). Here attention is computed
// transposed, so the small dimension (the group's q heads, up to 8) is the MMA's N = 8:
//   S^T [16 tokens x 8 heads]  = K [16 tokens x r_qk] . q^T          (A = K from shared memory)
//   O^T [16 dims x 8 heads]   += V^T [16 dims x 16 tokens] . P^T     (A = V, ldmatrix.trans)
// so one mma covers 16 tokens x 16 dims whatever the group, q and P^T sit in registers as B
// operands (P^T by movmatrix from the scores' accumulator layout), and a token costs a few warp
// instructions at any rank.
//
// One block of 4 warps runs one DecodeUnit; the unit's tokens are cut into stages of SUB x 16
// tokens (SUB = 1 at width W = 128, 2 at W = 64, 4 at W = 32; W is the unit's larger rank rounded
// up), dealt to the warps in turn. Each warp runs its own 2-stage cp.async pipeline into its own
// shared memory (rows of stride W + 8, or swizzled 64-byte rows at W = 32: ldmatrix without bank
// conflicts) and its own online softmax, with no block barrier until the final merge. A 16-token slice
// of a page whose class slots are a multiple of 16 is one contiguous run of K (V) rows, so its
// copies need one page lookup and offsets computed once per unit; shared pages with other slot
// counts look pages up per 16-byte chunk. Columns between a rank and its multiple of 16 are zeroed
// once per unit, rows past the unit are zero-filled by the copies; the dim loops stop at the unit's
// own ranks, so time follows the kept dims. Each slice's page index is read one stage before its
// copies are issued, so the page-table load does not stall the warp.
//
// Two stages, not three: 72 KiB of shared memory lets three blocks (12 warps) share an SM, and on
// an H200 that beat three stages with two blocks by 3-4% with mixed ranks (docs/kernels.md). A
// launch whose units are all 33..48 (65..96) wide runs a kernel of width 48 (96) alone, whose
// unpadded rows fit three stages in the same 72 KiB.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

#include "kernels/attention/attention.h"
#include "kernels/attention/decode_unit.cuh"
#include "kernels/attention/mma.cuh"
#include "kernels/common/device_utils.cuh"

namespace fdc::kernels::attn::dev {

inline constexpr int kDecodeMmaThreads = 128;
inline constexpr int kDecodeMmaWarps = kDecodeMmaThreads / 32;

// 16-token slices per stage for rows of W elements: about 8 KiB of K and V per stage at full
// width, so a warp keeps the same bytes in flight at every width. W = 48 and 96 (units of those
// widths alone, in kernels of their own) keep two and one slices, 6 KiB, but three stages: two in
// flight while one is computed.
template <int W>
constexpr int decode_mma_sub() {
  return W == 128 || W == 96 ? 1 : W == 64 || W == 48 ? 2 : 4;
}
template <int W>
constexpr int decode_mma_stages() {
  return W == 48 || W == 96 ? 3 : kDecodeMmaStages;
}
// Rows in shared memory are unpadded and their 16-byte chunks swizzled at W = 32, 48 and 96 (so
// the footprint fits four slices at 32, and three stages at 48 and 96, in that of the other
// widths); padded to W + 8 elements otherwise (an odd multiple of 16 bytes: the 8 rows of an
// ldmatrix hit distinct banks).
template <int W>
constexpr bool decode_mma_swizzled() {
  return W == 32 || W == 48 || W == 96;
}
template <int W>
constexpr int decode_mma_ld() {  // row stride in shared memory, elements
  return decode_mma_swizzled<W>() ? W : W + 8;
}
// Where 16-byte chunk `c` of row `row` sits in its row, so that 8 consecutive rows' chunks c fill
// the 8 distinct 16-byte slots of a 128-byte bank line: at W = 32 (4 chunks a row) the chunk index
// is XORed with bits 1..2 of the row; at W = 48 (6 chunks, rows 96 bytes apart: rows 0..3 of 8
// start at slots 0, 6, 4, 2 and rows 4..7 again) chunk pairs are swapped on rows 4..7 of every 8;
// at W = 96 (12 chunks, rows start at slots 0 and 4 by turns) with bits 1..2 of the row, which
// keeps a chunk in its group of four.
template <int W>
__device__ __forceinline__ int decode_mma_chunk(int row, int c) {
  if constexpr (W == 32 || W == 96) return c ^ ((row >> 1) & 3);
  if constexpr (W == 48) return c ^ ((row >> 2) & 1);
  return c;
}
template <int W>
constexpr int decode_mma_warp_bytes() {  // one warp's K and V buffers, all stages
  return decode_mma_stages<W>() * 2 * decode_mma_sub<W>() * 16 * decode_mma_ld<W>() * 2;
}
constexpr int decode_mma_smem_bytes() {
  constexpr int a = decode_mma_warp_bytes<32>(), b = decode_mma_warp_bytes<64>(), c = decode_mma_warp_bytes<128>();
  constexpr int warp = a > b ? (a > c ? a : c) : (b > c ? b : c);
  constexpr int merge = kDecodeMmaWarps * 8 * (128 + 2) * 4;
  return kDecodeMmaWarps * warp > merge ? kDecodeMmaWarps * warp : merge;
}
static_assert(decode_mma_warp_bytes<48>() <= decode_mma_warp_bytes<64>() &&
                  decode_mma_warp_bytes<96>() <= decode_mma_warp_bytes<64>(),
              "widths 48 and 96 fit the launch's footprint");
static_assert(decode_mma_smem_bytes() == kDecodeMmaSmemBytes, "attention.h keeps the footprint");

template <typename T, int W, SlotIndex I>
__device__ __forceinline__ void decode_mma_unit(const DecodeParams& p, const SlotDivisors& sd, const DecodeUnit& u,
                                                unsigned char* smem_raw) {
  constexpr bool kAnySlots = I != SlotIndex::kShift;
  constexpr int S = decode_mma_stages<W>();
  // Pages whose slot counts are not multiples of 16 look a page up per 16-byte chunk. With the
  // integer divisions of kDivide, four slices per stage at W = 32 spilled registers, so that kernel
  // keeps two; kMultiply (a float quotient for the chunk's row, slot_page for its page) has four.
  constexpr int SUB = I == SlotIndex::kDivide && W == 32 ? 2 : decode_mma_sub<W>();
  constexpr int LD = decode_mma_ld<W>();  // row stride in shared memory, elements
  constexpr int ROWS = SUB * 16;          // rows of one stage
  constexpr int KS = W / 16;              // 16-wide steps over dims at full width
  constexpr int CPL = 16 * (W / 8) / 32;  // 16-byte chunks per lane of one 16-token slice, at most

  const int group = p.num_q_heads / p.num_kv_heads;
  const int kv_head = u.head_cls >> 1;
  const HeadInfo hd = p.heads[kv_head];
  const UnitRows<T> ur = unit_rows<T>(p, sd, u, hd);
  const int rk = ur.rk, rv = ur.rv;
  const int kr = rk >> 3;  // 16-byte chunks of a K row in the page
  const int vr = rv >> 3;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  const int slots = ur.slots;
  const int log2_slots = kAnySlots ? 0 : __ffs(slots) - 1;
  // Whole 16-token slices in one page: one lookup per slice.
  const bool contiguous = !kAnySlots && (slots & 15) == 0 && (u.begin & 15) == 0;

  const int* pages = ur.pages;
  const int64_t page_elems = ur.page_elems;
  const T* kpool = ur.kpool;
  const T* vpool = ur.vpool;

  // This warp's buffers: S stages of K rows, then S stages of V rows, ROWS x LD elements each.
  constexpr uint32_t kStageBytes = ROWS * LD * 2;
  T* sK = reinterpret_cast<T*>(smem_raw) + warp * (2 * S * ROWS * LD);
  T* sV = sK + S * ROWS * LD;
  const uint32_t sk_addr = smem_addr(sK);
  const uint32_t sv_addr = sk_addr + S * kStageBytes;

  // q^T as the B operand of S^T = K q^T: column gid is q head gid (a lo unit uses its first rk_lo
  // dims; heads past the group are zero).
  uint32_t qb[KS][2];
  {
    const T* qrow = static_cast<const T*>(p.q) + static_cast<int64_t>(u.seq) * p.q_row + hd.q_offset + gid * hd.rk;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int dim = kk * 16 + h * 8 + 2 * tig;
        qb[kk][h] = gid < group && dim < rk ? *reinterpret_cast<const uint32_t*>(qrow + dim) : 0u;
      }
  }

  // Shared-memory addresses of this lane's chunks of a slice in stage 0 (chunk lane + 32 j is row
  // / kr, column (% kr) * 8), the same for every slice of the unit (slices start at multiples of 16
  // rows, which the swizzle does not see).
  uint32_t kdst[CPL], vdst[CPL];
#pragma unroll
  for (int j = 0; j < CPL; ++j) {
    const int i = lane + 32 * j;
    kdst[j] = sk_addr + (i / kr * LD + decode_mma_chunk<W>(i / kr, i % kr) * 8) * 2;
    vdst[j] = sv_addr + (i / vr * LD + decode_mma_chunk<W>(i / vr, i % vr) * 8) * 2;
  }
  // Columns in [rank, multiple of 16) stay zero for the whole unit.
  if (rk & 15)
    for (int r = lane; r < S * ROWS; r += 32)
      *reinterpret_cast<uint4*>(sK + r * LD + decode_mma_chunk<W>(r, rk >> 3) * 8) = make_uint4(0, 0, 0, 0);
  if (rv & 15)
    for (int r = lane; r < S * ROWS; r += 32)
      *reinterpret_cast<uint4*>(sV + r * LD + decode_mma_chunk<W>(r, rv >> 3) * 8) = make_uint4(0, 0, 0, 0);

  // Copies of the 16-token slice starting at token t0 of the class into rows [0, 16) at byte
  // offset `off` of the buffers; `page` is the slice's page when `contiguous`. Rows past the unit
  // are zero-filled (nothing is read for them).
  auto load_slice = [&](int t0, uint32_t off, int page) {
    const int valid = min(16, u.end - t0);
    if (contiguous) {
      const int64_t base = static_cast<int64_t>(page) * page_elems;
      const int sl = t0 & (slots - 1);
      const T* ks = kpool + base + sl * rk + lane * 8;
      const T* vs = vpool + base + sl * rv + lane * 8;
      const int nk = valid * kr - lane, nv = valid * vr - lane;  // chunks j with 32 j < n are read
      const int ck = 16 * kr - lane, cv = 16 * vr - lane;        // chunks j with 32 j < c exist
#pragma unroll
      for (int j = 0; j < CPL; ++j) {
        if (32 * j < ck) cp_async16(kdst[j] + off, ks + 256 * j, 32 * j < nk ? 16 : 0);
        if (32 * j < cv) cp_async16(vdst[j] + off, vs + 256 * j, 32 * j < nv ? 16 : 0);
      }
    } else {
      // Chunk i of the slice's K (V) rows: row i / chunks, column (i % chunks) * 8, its page looked up.
      auto copy_chunk = [&](int i, int chunks, int rank, const T* base, uint32_t dst) {
        if (i >= 16 * chunks) return;
        // kMultiply: the float quotient is exact (i < 256, chunks <= 16: (i + 0.5) / chunks is at
        // least 1/32 from an integer) and takes fewer registers than the division (W = 128 kept
        // under the launch's 168 only so).
        const int row = I == SlotIndex::kMultiply
                            ? __float2int_rz((static_cast<float>(i) + 0.5f) * __frcp_rn(static_cast<float>(chunks)))
                            : i / chunks;
        const bool ok = row < valid;
        const T* src = base;
        if (ok) {
          const int t = t0 + row;
          const int2 ps = page_slot<I>(t, ur, log2_slots);
          src = base + static_cast<int64_t>(pages[ps.x]) * page_elems + ps.y * rank + (i - row * chunks) * 8;
        }
        cp_async16(dst, src, ok ? 16 : 0);
      };
#pragma unroll
      for (int j = 0; j < CPL; ++j) {
        copy_chunk(lane + 32 * j, kr, rk, kpool, kdst[j] + off);
        copy_chunk(lane + 32 * j, vr, rv, vpool, vdst[j] + off);
      }
    }
  };
  // Pages of the slices of stage j (contiguous case), read one stage ahead of their copies so the
  // page-table load is off the warp's critical path.
  auto stage_pages = [&](int j, int(&pg)[SUB]) {
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub) {
      const int t0 = u.begin + (j * SUB + sub) * 16;
      pg[sub] = contiguous && t0 < u.end ? pages[t0 >> log2_slots] : 0;
    }
  };
  // Stage j of the unit: slices [j * SUB, (j + 1) * SUB), those past the unit skipped.
  auto load_stage = [&](int j, int buf, const int(&pg)[SUB]) {
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub) {
      const int t0 = u.begin + (j * SUB + sub) * 16;
      if (t0 < u.end) load_slice(t0, buf * kStageBytes + sub * 16 * LD * 2, pg[sub]);
    }
  };

  const int nstages = (u.end - u.begin + ROWS - 1) / ROWS;
  const int mine = warp < nstages ? (nstages - warp + kDecodeMmaWarps - 1) / kDecodeMmaWarps : 0;
  __syncwarp();  // zeroed columns before any ldmatrix

  int pn[SUB];
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < mine) {
      stage_pages(warp + s * kDecodeMmaWarps, pn);
      load_stage(warp + s * kDecodeMmaWarps, s, pn);
    }
    cp_async_commit();
  }
  if (S - 1 < mine) stage_pages(warp + (S - 1) * kDecodeMmaWarps, pn);

  const float qscale = p.sm_scale * 1.44269504088896340736f;  // exp2 of scaled scores is the softmax
  float acc[KS][4];  // O^T: rows dim 16 dn + gid (+ 8), columns heads 2 tig, 2 tig + 1
#pragma unroll
  for (int n = 0; n < KS; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.f;
  float m_h[2] = {-1e30f, -1e30f}, l_h[2] = {0.f, 0.f};  // heads 2 tig, 2 tig + 1
  // ldmatrix rows of this lane: row lane % 16, chunk 2 kk + lane / 16 of the 16-wide step kk, for K
  // (A) and V (A, .trans): its byte offset in a slice.
  const uint32_t lane_off = ((lane & 15) * LD + (lane >> 4) * 8) * 2;
  auto step_off = [&](int kk) -> uint32_t {
    if constexpr (decode_mma_swizzled<W>()) {
      return ((lane & 15) * LD + decode_mma_chunk<W>(lane & 15, 2 * kk + (lane >> 4)) * 8) * 2;
    } else {
      return lane_off + kk * 16 * 2;
    }
  };

  for (int k = 0; k < mine; ++k) {
    if (k + S - 1 < mine) load_stage(warp + (k + S - 1) * kDecodeMmaWarps, (k + S - 1) % S, pn);
    cp_async_commit();
    if (k + S < mine) stage_pages(warp + (k + S) * kDecodeMmaWarps, pn);
    cp_async_wait<S - 1>();
    __syncwarp();

    const int j = warp + k * kDecodeMmaWarps;
    const uint32_t ka = sk_addr + (k % S) * kStageBytes;
    const uint32_t va = sv_addr + (k % S) * kStageBytes;
    int nvalid[SUB];  // tokens of each slice inside the unit (<= 0: none)
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub) nvalid[sub] = u.end - (u.begin + (j * SUB + sub) * 16);
    float s[SUB][4];
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub) {
      float s2[4] = {0.f, 0.f, 0.f, 0.f};  // odd k-steps: a second accumulator chain
#pragma unroll
      for (int i = 0; i < 4; ++i) s[sub][i] = 0.f;
      if (nvalid[sub] > 0) {
#pragma unroll
        for (int kk = 0; kk < KS; ++kk) {
          if (kk * 16 < rk) {
            uint32_t a[4];
            ldmatrix_x4(a, ka + sub * 16 * LD * 2 + step_off(kk));
            if (kk & 1)
              mma_16816<T>(s2, a, qb[kk][0], qb[kk][1]);
            else
              mma_16816<T>(s[sub], a, qb[kk][0], qb[kk][1]);
          }
        }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) s[sub][i] += s2[i];
    }
    // Online softmax per head over the stage's tokens (token gid + 8 r of each slice).
    float mx[2] = {m_h[0], m_h[1]};
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float x = gid + (i >> 1) * 8 < nvalid[sub] ? s[sub][i] * qscale : -INFINITY;
        s[sub][i] = x;
        mx[i & 1] = fmaxf(mx[i & 1], x);
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 4));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 8));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 16));
    }
    // Rescale only when some head's maximum moved (rare after the first tokens).
    if (__any_sync(0xffffffffu, mx[0] != m_h[0] || mx[1] != m_h[1])) {
      float alpha[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        alpha[h] = exp2f(m_h[h] - mx[h]);
        m_h[h] = mx[h];
        l_h[h] *= alpha[h];
      }
#pragma unroll
      for (int dn = 0; dn < KS; ++dn)
        if (dn * 16 < rv)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[dn][i] *= alpha[i & 1];
    }
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[sub][i] = exp2f(s[sub][i] - m_h[i & 1]);
        l_h[i & 1] += s[sub][i];
      }
      // O^T += V^T P^T: P^T (16 tokens x 8 heads) is the B operand, by transposing the scores'
      // two 8 x 8 token blocks.
#pragma unroll
    for (int sub = 0; sub < SUB; ++sub) {
      if (nvalid[sub] > 0) {
        const uint32_t b0 = movmatrix_trans(pack2<T>(s[sub][0], s[sub][1]));
        const uint32_t b1 = movmatrix_trans(pack2<T>(s[sub][2], s[sub][3]));
#pragma unroll
        for (int dn = 0; dn < KS; ++dn) {
          if (dn * 16 < rv) {
            uint32_t r[4];
            ldmatrix_x4_trans(r, va + sub * 16 * LD * 2 + step_off(dn));
            const uint32_t a[4] = {r[0], r[2], r[1], r[3]};
            mma_16816<T>(acc[dn], a, b0, b1);
          }
        }
      }
    }
    __syncwarp();  // the buffer is refilled next iteration
  }
  cp_async_wait<0>();
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l_h[h] += __shfl_xor_sync(0xffffffffu, l_h[h], 4);
    l_h[h] += __shfl_xor_sync(0xffffffffu, l_h[h], 8);
    l_h[h] += __shfl_xor_sync(0xffffffffu, l_h[h], 16);
  }
  __syncthreads();

  // Merge the warps (shared memory reused): [warp][head][W] outputs, then maxima and sums.
  float* sm_o = reinterpret_cast<float*>(smem_raw);
  float* sm_m = sm_o + kDecodeMmaWarps * 8 * W;
  float* sm_l = sm_m + kDecodeMmaWarps * 8;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int head = 2 * tig + h;
    if (head < group) {
#pragma unroll
      for (int dn = 0; dn < KS; ++dn) {
        sm_o[(warp * 8 + head) * W + dn * 16 + gid] = acc[dn][h];
        sm_o[(warp * 8 + head) * W + dn * 16 + gid + 8] = acc[dn][2 + h];
      }
      if (gid == 0) {
        sm_m[warp * 8 + head] = m_h[h];
        sm_l[warp * 8 + head] = l_h[h];
      }
    }
  }
  __syncthreads();
  const int pair = u.seq * p.num_kv_heads + kv_head;
  const bool sole = p.pair_indptr[pair + 1] - p.pair_indptr[pair] == 1;
  const int out_w = hd.rv;  // lo units leave [rv_lo, rv) of their partial at zero
  for (int idx = threadIdx.x; idx < group * out_w; idx += kDecodeMmaThreads) {
    const int g = idx / out_w;
    const int dim = idx - g * out_w;
    float M = -1e30f;
#pragma unroll
    for (int w = 0; w < kDecodeMmaWarps; ++w) M = fmaxf(M, sm_m[w * 8 + g]);
    float L = 0.f, O = 0.f;
#pragma unroll
    for (int w = 0; w < kDecodeMmaWarps; ++w) {
      const float wt = exp2f(sm_m[w * 8 + g] - M);
      L += sm_l[w * 8 + g] * wt;
      if (dim < rv) O = fmaf(sm_o[(w * 8 + g) * W + dim], wt, O);
    }
    if (sole) {
      T* out = static_cast<T*>(p.out) + static_cast<int64_t>(u.seq) * p.o_row + hd.o_offset + g * hd.rv;
      out[dim] = from_float<T>(O / L);
    } else {
      p.partial_o[(static_cast<int64_t>(blockIdx.x) * group + g) * kMaxRank + dim] = O / L;
      if (dim == 0) p.partial_lse[static_cast<int64_t>(blockIdx.x) * group + g] = M + log2f(L);
    }
  }
}

// kOnlyW = 48 or 96: every unit of the launch is in that width class (DecodeParams::width_classes:
// 33..48 or 65..96 wide), so one width is built and its three-stage pipeline has the registers to
// itself; the general kernel (kOnlyW = 0) runs such units at widths 64 and 128 with two stages (a
// fourth width there pushed it past its registers).
template <typename T, SlotIndex I, int kOnlyW = 0>
__global__ void __launch_bounds__(kDecodeMmaThreads, 3) decode_mma_kernel(DecodeParams p, SlotDivisors sd) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const DecodeUnit u = p.units[blockIdx.x];
  if constexpr (kOnlyW != 0) {
    decode_mma_unit<T, kOnlyW, I>(p, sd, u, smem_raw);
  } else {
    const int width = head_width(p.heads[u.head_cls >> 1], u.head_cls & 1);
    if (width <= 32)
      decode_mma_unit<T, 32, I>(p, sd, u, smem_raw);
    else if (width <= 64)
      decode_mma_unit<T, 64, I>(p, sd, u, smem_raw);
    else
      decode_mma_unit<T, 128, I>(p, sd, u, smem_raw);
  }
}

}  // namespace fdc::kernels::attn::dev
