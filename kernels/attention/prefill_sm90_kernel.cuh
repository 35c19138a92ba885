// Causal prefill of FDC compressed attention on Hopper: warpgroup MMA (wgmma.mma_async, sm_90a),
// the same PrefillParams / PrefillTile contract as the mma.sync kernel in prefill_kernel.cuh.
//
// One block of two warpgroups (256 threads) runs one PrefillTile of 128 new tokens of one q head;
// each warpgroup owns 64 query rows. Per K/V tile of BC cached tokens (BC = 128 at D = 128, 64 at
// D = 64, see tile_k):
//   S = Q K^T   wgmma m64nBCk16, Q and K both read from shared memory (K-major, 128-byte swizzle);
//               one k16 step per 16 kept dims of the head (ceil16(r_qk) / 16 steps);
//   softmax     online, in registers (each thread holds 2 rows x BC / 4 keys of S);
//   O += P V    wgmma m64nNk16 with P packed to 16 bits in registers (A operand) and V N-major in
//               shared memory; N = 128 when ceil16(r_v) > 64, else 64, so narrow V heads do half
//               the work.
// The step count and N are template parameters picked once per block (a head's ranks), so every
// MMA chain is branch-free code, which ptxas needs to keep the MMAs asynchronous.
// K/V tiles come from the paged cache (hi pages) into the swizzled layout, three stages: the copies
// of tile j + 2 are issued right after tile j's Q K^T MMAs, so they run behind the tensor cores and
// have two iterations to land. With PrefillParams::kv_maps (TMA = true) the tensor memory
// accelerator copies them, one page's 64-column boxes per warp, completing on a barrier per stage
// (load_kv_tma); otherwise every thread copies 16-byte chunks with cp.async (load_kv). The two
// warpgroups wait on the tensor cores in turn, so one's softmax overlaps the other's MMAs without
// explicit scheduling.
// With 8 warps per SM (2 per scheduler) the loop is bound by the instructions it issues per tile
// (ncu: 36% issue utilization, 31% tensor pipe before these), so they are kept few: the causal mask
// runs only on tiles that reach past a warp's first row, row max and sum run as 4 independent
// chains, a row's copy source is one wide multiply-add, and a warp skips the output rescale when no
// row max moved. (Issuing tile j's Q K^T with tile j - 1's P V, FA3's in-warpgroup overlap, was
// tried and was slower: K and V copies then go apart, at twice the page lookups.)
// D (64 or 128) is the padded width. Columns of Q and K in [r_qk, ceil16(r_qk)) and of V in
// [r_v, ceil16(r_v)) are zero-filled, as are Q rows past the sequence and K/V rows past the
// visible keys (V columns beyond ceil16(r_v) only feed output columns that are never stored).
#pragma once

#include <cuda_runtime.h>

#include "kernels/attention/attention.h"
#include "kernels/attention/wgmma.cuh"
#include "kernels/common/device_utils.cuh"

namespace fdc::kernels::attn::dev::sm90 {

using namespace fdc::kernels::dev;

inline constexpr int kThreads = 256;  // two warpgroups
inline constexpr int kTileQ = 128;    // new tokens per block (plan_prefill's tile_q)
inline constexpr int kStages = 3;     // K/V tiles in flight: copies run two tiles ahead
static_assert(kTileQ == kPrefillTileQ, "the sm_90 prefill runs the plan's tiles");

// Cached tokens per K/V stage (BC), and resident blocks per SM. D = 128: tiles of 128 keys, one
// block per SM (248 registers, 225 KiB of shared memory). D = 64: tiles of 64 keys, so that S
// takes half the registers (127) and two blocks (16 warps) share an SM and hide each other's
// latencies.
template <int D>
constexpr int tile_k() {
  return D > 64 ? 128 : 64;
}
template <int D, int BC>
constexpr int min_blocks() {
  return D == 64 && BC == 64 ? 2 : 1;
}

template <int D, int BC>
constexpr int smem_bytes() {
  // Q, kStages K and V tiles, the stages' barriers (TMA copies), plus slack to align the base to
  // 1024 bytes.
  return (kTileQ + 2 * kStages * BC) * D * 2 + kStages * 8 + 1024;
}

// Byte offset of element (r, c) (c a multiple of 8) in a swizzled operand tile of `rows` rows.
__device__ __forceinline__ uint32_t swz(int rows, int r, int c) {
  return static_cast<uint32_t>((c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4));
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Issues S (64 x 128 per warpgroup) = Q K^T over KS k16 steps as one wgmma group; the caller
// waits for it.
template <typename T, int KS, int BC>
__device__ __forceinline__ void qk_steps(float (&s)[BC / 2], uint64_t dq, uint64_t dk) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    const uint32_t q_off = (kk >> 2) * kTileQ * 128 + (kk & 3) * 32;
    const uint32_t k_off = (kk >> 2) * BC * 128 + (kk & 3) * 32;
    wgmma_ss<T, BC>(s, desc_add(dq, q_off), desc_add(dk, k_off), kk > 0 ? 1 : 0);
  }
  wgmma_commit();
}

// Issues O (64 x N per warpgroup) += P V over the tile's 128 keys as one wgmma group; N = 64 or
// 128 output columns.
template <typename T, int N, int D, int BC>
__device__ __forceinline__ void pv_issue(float (&o)[D / 2], const uint32_t (&pa)[BC / 16][4], uint64_t dv) {
  fence_regs(o);
  wgmma_fence();
#pragma unroll
  for (int kt = 0; kt < BC / 16; ++kt) wgmma_rs<T, N>(o, pa[kt], desc_add(dv, kt * 16 * 128), 1);
  wgmma_commit();
}

// What one block needs to know about its tile (set up once by the kernel, read by the main loop).
template <typename T>
struct TileCtx {
  unsigned char* sQ;  // [BR x D], swizzled
  unsigned char* sK;  // [kStages][BC x D]
  unsigned char* sV;  // [kStages][BC x D]
  const T* pool;      // hi pages
  const int* pages;   // the sequence's hi page ids
  T* out;             // the tile's first output row, at the q head's columns
  HeadInfo hd;
  int rk16, rv16;
  int rows;       // real query rows of the tile (<= BR)
  int first_pos;  // position of the tile's first query row
  int n_kv;       // keys visible to the tile's last row
  int n_tiles;    // K/V tiles of BC keys
  int log2_block;
  float qscale;  // softmax scale in log2 units
  // This thread's part of the K/V copies (load_kv): shared addresses of its first row's chunk in
  // stage 0, the pool's address, a page's bytes, its chunk's byte offset in a page's K and V rows of
  // the head at slot 0, the head's K and V row bytes, and whether its chunk is copied (inside
  // ceil16(rank)) and read (inside the rank).
  uint32_t sK_addr, sV_addr;
  // TMA copies (kv_maps given): the head's K and V tensor maps and the stages' barriers.
  const unsigned char* kmap;
  const unsigned char* vmap;
  uint32_t sK_base, sV_base, bar;
  uint64_t pool_addr;
  uint32_t page_bytes;
  int k_off, v_off, k_row_bytes, v_row_bytes;
  bool k_issue, v_issue, k_col, v_col;
};

// Copies K/V tile j (BC cached tokens) into stage `buf`: thread tid copies 16-byte column chunk
// (tid % (D/8)) of rows tid / (D/8), + 256 / (D/8), ... Rows past n_kv and columns in
// [rank, ceil16(rank)) are zero-filled (their source is page 0, never read). The rows' page ids are
// loaded first, all together, so that their latencies overlap; a row's source is then one wide
// multiply-add (page x page bytes + pool) and an offset, and its place in shared memory a constant
// step from the thread's first row (the row step is a multiple of 8, so the rows share their
// swizzle). The per-thread constants are worked out once per block (TileCtx).
template <typename T, int D, int BC>
__device__ __forceinline__ void load_kv(const TileCtx<T>& c, int j, int buf) {
  constexpr int CH = D / 8;
  constexpr int RSTEP = kThreads / CH;
  constexpr int NR = BC / RSTEP;  // rows per thread
  static_assert(RSTEP % 8 == 0, "a thread's rows share their swizzle");
  const int r0 = threadIdx.x / CH;
  const uint32_t stage = static_cast<uint32_t>(buf * BC * D * 2);
  const int lb = c.log2_block;
  const int mask = (1 << lb) - 1;
  const int rows_in = c.n_kv - j * BC - r0;  // row i is a visible key while i * RSTEP < rows_in
  const int* pages = c.pages + ((j * BC) >> lb);
  int pg[NR];
#pragma unroll
  for (int i = 0; i < NR; ++i) pg[i] = i * RSTEP < rows_in ? pages[(r0 + i * RSTEP) >> lb] : 0;
#pragma unroll
  for (int i = 0; i < NR; ++i) {
    const bool in = i * RSTEP < rows_in;
    const int slot = (r0 + i * RSTEP) & mask;
    const uint64_t page = c.pool_addr + static_cast<uint64_t>(static_cast<uint32_t>(pg[i])) * c.page_bytes;
    cp_async16_if(c.k_issue, c.sK_addr + stage + i * RSTEP * 128,
                  reinterpret_cast<const void*>(page + static_cast<uint32_t>(c.k_off + slot * c.k_row_bytes)),
                  in && c.k_col ? 16 : 0);
    cp_async16_if(c.v_issue, c.sV_addr + stage + i * RSTEP * 128,
                  reinterpret_cast<const void*>(page + static_cast<uint32_t>(c.v_off + slot * c.v_row_bytes)),
                  in && c.v_col ? 16 : 0);
  }
}

// The same copies of K/V tile j by TMA: warp w's lane 0 copies page w of the tile (its 64-column
// boxes of K and of V, ceil16(rank) / 64 rounded up of each) and thread 0 tells the stage's barrier
// how many bytes to expect (a copy may complete before that; the barrier's phase cannot end before
// thread 0 arrives). `page` is the page id of this warp's box (tma_page, loaded a tile ahead), -1
// past the keys. Pages past the visible keys are not copied; their rows, and the rows of the last
// page past the keys, are zeroed by zero_tail. Columns past the rank arrive as zeros (outside the
// tensor map).
template <typename T, int D, int BC>
__device__ __forceinline__ void load_kv_tma(const TileCtx<T>& c, int j, int buf, int page) {
  const int lb = c.log2_block;
  const int kh = D > 64 && c.rk16 > 64 ? 2 : 1;
  const int vh = D > 64 && c.rv16 > 64 ? 2 : 1;
  const uint32_t bar = c.bar + static_cast<uint32_t>(buf * 8);
  if (threadIdx.x == 0) {
    const int rows_in = c.n_kv - j * BC;
    const int boxes = min(BC >> lb, (rows_in + (1 << lb) - 1) >> lb);
    mbar_arrive_expect_tx(bar, static_cast<uint32_t>((boxes << lb) * 128 * (kh + vh)));
  }
  if (threadIdx.x % 32 == 0 && page >= 0) {
    const uint32_t off = static_cast<uint32_t>(buf * BC * D * 2 + ((threadIdx.x / 32) << lb) * 128);
    tma_load_3d(c.sK_base + off, c.kmap, 0, 0, page, bar);
    if (kh > 1) tma_load_3d(c.sK_base + off + BC * 128, c.kmap, 64, 0, page, bar);
    tma_load_3d(c.sV_base + off, c.vmap, 0, 0, page, bar);
    if (vh > 1) tma_load_3d(c.sV_base + off + BC * 128, c.vmap, 64, 0, page, bar);
  }
}

// Page id of warp w's box in K/V tile t (read by lane 0 only), or -1 when the box is past the keys
// or the tile has fewer pages than warps.
template <typename T, int BC>
__device__ __forceinline__ int tma_page(const TileCtx<T>& c, int t) {
  const int w = threadIdx.x / 32;
  const int row = t * BC + (w << c.log2_block);
  return threadIdx.x % 32 == 0 && w < (BC >> c.log2_block) && row < c.n_kv ? c.pages[row >> c.log2_block] : -1;
}

// Zeroes the K and V rows of stage `buf` past the visible keys of tile j (the last tile): TMA copies
// whole pages, so the last page's slots past the keys hold stale values, and pages past the keys
// are not copied at all; V rows there must be finite (their P is 0).
template <typename T, int D, int BC>
__device__ __forceinline__ void zero_tail(const TileCtx<T>& c, int j, int buf) {
  constexpr int CH = D / 8;
  const int rows_in = c.n_kv - j * BC;
  if (rows_in >= BC) return;
  const int n = (BC - rows_in) * CH;
  unsigned char* k = c.sK + buf * BC * D * 2;
  unsigned char* v = c.sV + buf * BC * D * 2;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const uint32_t o = swz(BC, rows_in + i / CH, (i % CH) * 8);
    *reinterpret_cast<uint4*>(k + o) = make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(v + o) = make_uint4(0, 0, 0, 0);
  }
  fence_proxy_async_smem();
}

// Causal mask (MASK: a tile that reaches past the warp's first row) and online softmax of one S
// tile, in place, on raw scores: p = 2^(s * qscale - m * qscale), one FFMA and one EX2 per score.
// Updates the running max and sums; alpha is the factor the output rows must be rescaled by. The
// row max and sum run as kChains independent chains per row, so that a chain of dependent FMNMX or
// FADD is BC / 8 / kChains long, not BC / 4.
template <int BC, bool MASK>
__device__ __forceinline__ void softmax_tile(float (&s)[BC / 2], float (&m_row)[2], float (&l_row)[2],
                                             float (&alpha)[2], int kv0, int row_pos0, float qscale) {
  constexpr int kChains = 4;
  static_assert((BC / 8) % (kChains / 2) == 0, "chains split the n8 blocks evenly");
  const int lane = threadIdx.x % 32;
  float mx[2][kChains];
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int k = 0; k < kChains; ++k) mx[r][k] = m_row[r];
#pragma unroll
  for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (MASK) {
        const int key = kv0 + n * 8 + (lane % 4) * 2 + (i & 1);
        if (key > row_pos0 + (i >> 1) * 8) s[4 * n + i] = -INFINITY;
      }
      float& m = mx[i >> 1][(n % (kChains / 2)) * 2 + (i & 1)];
      m = fmaxf(m, s[4 * n + i]);
    }
  }
  float msc[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float m = fmaxf(fmaxf(mx[r][0], mx[r][1]), fmaxf(mx[r][2], mx[r][3]));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
    alpha[r] = fast_exp2((m_row[r] - m) * qscale);
    m_row[r] = m;
    msc[r] = m * qscale;
  }
  float sum[2][kChains] = {};
#pragma unroll
  for (int n = 0; n < BC / 8; ++n) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      s[4 * n + i] = fast_exp2(fmaf(s[4 * n + i], qscale, -msc[i >> 1]));
      sum[i >> 1][(n % (kChains / 2)) * 2 + (i & 1)] += s[4 * n + i];
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) l_row[r] = l_row[r] * alpha[r] + ((sum[r][0] + sum[r][1]) + (sum[r][2] + sum[r][3]));
}

// P (16-bit, the A operand of P V) from the softmax'd S tile.
template <typename T, int BC>
__device__ __forceinline__ void pack_p(uint32_t (&pa)[BC / 16][4], const float (&s)[BC / 2]) {
#pragma unroll
  for (int kt = 0; kt < BC / 16; ++kt) {
    pa[kt][0] = pack2<T>(s[8 * kt + 0], s[8 * kt + 1]);
    pa[kt][1] = pack2<T>(s[8 * kt + 2], s[8 * kt + 3]);
    pa[kt][2] = pack2<T>(s[8 * kt + 4], s[8 * kt + 5]);
    pa[kt][3] = pack2<T>(s[8 * kt + 6], s[8 * kt + 7]);
  }
}

template <int D>
__device__ __forceinline__ void rescale_o(float (&acc_o)[D / 2], const float (&alpha)[2]) {
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    acc_o[4 * n + 0] *= alpha[0];
    acc_o[4 * n + 1] *= alpha[0];
    acc_o[4 * n + 2] *= alpha[1];
    acc_o[4 * n + 3] *= alpha[1];
  }
}

// Output rows divided by their softmax sums, the kept r_v columns stored.
template <typename T, int D>
__device__ __forceinline__ void store_o(const PrefillParams& p, const TileCtx<T>& c, const float (&acc_o)[D / 2],
                                        const float (&l_row)[2]) {
  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int warp = (tid % 128) / 32;
  const int lane = tid % 32;
  T* out = c.out;
  const int rv = c.hd.rv;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = l_row[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = wg * 64 + warp * 16 + lane / 4 + r * 8;
    if (row >= c.rows) continue;
    const float inv = 1.f / l;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const int col = n * 8 + (lane % 4) * 2;
      if (col < rv)
        *reinterpret_cast<uint32_t*>(out + static_cast<int64_t>(row) * p.o_row + col) =
            pack2<T>(acc_o[4 * n + 2 * r] * inv, acc_o[4 * n + 2 * r + 1] * inv);
    }
  }
}

// Main loop and epilogue for a head with KS k16 steps of Q K^T and P V of N = WIDE ? 128 : 64
// columns. Both are template parameters so that each wgmma chain, from issue to wait, is code
// without divergent branches (otherwise ptxas serializes the MMAs).
template <typename T, int D, int BC, int KS, bool WIDE, bool TMA>
__device__ __forceinline__ void attend(const PrefillParams& p, const TileCtx<T>& c) {
  const int tid = threadIdx.x;
  const int wg = tid / 128;
  const int warp = (tid % 128) / 32;  // warp within the warpgroup
  const int lane = tid % 32;
  const int warp_first_pos = c.first_pos + wg * 64 + warp * 16;
  const int row_pos0 = warp_first_pos + lane / 4;  // this thread's rows: + {0, 8}
  constexpr int NV = WIDE ? 128 : 64;
  const uint64_t dq = smem_desc_sw128(smem_addr(c.sQ) + wg * 64 * 128, 16, 1024);
  const auto desc_k = [&](int stage) { return smem_desc_sw128(smem_addr(c.sK + stage * BC * D * 2), 16, 1024); };
  const auto desc_v = [&](int stage) { return smem_desc_sw128(smem_addr(c.sV + stage * BC * D * 2), BC * 128, 1024); };

  float acc_o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc_o[i] = 0.f;
  float m_row[2] = {-1e30f, -1e30f};  // running max of raw scores
  float l_row[2] = {0.f, 0.f};
  float alpha[2];
  uint32_t pa[BC / 16][4];

  // Both warpgroups run every tile, so each MMA chain is non-divergent; rows past the sequence
  // (Q rows zero-filled) and tiles fully masked for a warpgroup compute finite values that are
  // never stored.
  int buf = 0;         // stage of tile j
  uint32_t phase = 0;  // parity of the stage barriers' phase tile j completes (TMA)
  int page_next = -1;  // this warp's page of tile j + 2 (TMA)
  if constexpr (TMA) {
    page_next = tma_page<T, BC>(c, 2);
    cp_async_wait<0>();  // Q
    fence_proxy_async_smem();
  }
  for (int j = 0; j < c.n_tiles; ++j) {
    if constexpr (TMA) {
      mbar_wait(c.bar + static_cast<uint32_t>(buf * 8), phase);
      if (j == c.n_tiles - 1) zero_tail<T, D, BC>(c, j, buf);
    } else {
      cp_async_wait<1>();  // tile j is in (tile j + 1 may still be in flight)
      fence_proxy_async_smem();
    }
    __syncthreads();  // everyone's copies of tile j landed; tile j - 1's stage is free
    float s[BC / 2];
    qk_steps<T, KS, BC>(s, dq, desc_k(buf));
    // Copies of tile j + 2 go out while the tensor cores work on S.
    if constexpr (TMA) {
      if (j + 2 < c.n_tiles) {
        load_kv_tma<T, D, BC>(c, j + 2, buf == 0 ? kStages - 1 : buf - 1, page_next);
        page_next = tma_page<T, BC>(c, j + 3);  // used an iteration later: its latency is hidden
      }
    } else {
      if (j + 2 < c.n_tiles) load_kv<T, D, BC>(c, j + 2, buf == 0 ? kStages - 1 : buf - 1);
      cp_async_commit();
    }
    const uint64_t dv = desc_v(buf);
    if (buf == kStages - 1) phase ^= 1u;
    buf = buf == kStages - 1 ? 0 : buf + 1;
    wgmma_wait<0>();
    fence_regs(s);
    if (j * BC + BC - 1 > warp_first_pos) {
      softmax_tile<BC, true>(s, m_row, l_row, alpha, j * BC, row_pos0, c.qscale);
    } else {
      softmax_tile<BC, false>(s, m_row, l_row, alpha, j * BC, row_pos0, c.qscale);
    }
    pack_p<T, BC>(pa, s);
    // A row's alpha is exactly 1 when its max did not move (2^0); past the first tiles that is most
    // tiles, and the warp then skips its 64 multiplies (the vote keeps the branch warp-uniform).
    if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) rescale_o<D>(acc_o, alpha);
    pv_issue<T, NV, D, BC>(acc_o, pa, dv);
    wgmma_wait<0>();
    fence_regs(acc_o);
  }
  cp_async_wait<0>();
  store_o<T, D>(p, c, acc_o, l_row);
}

template <typename T, int D, int BC, bool WIDE, bool TMA>
__device__ __forceinline__ void run_tile_w(const PrefillParams& p, const TileCtx<T>& c) {
  switch (c.rk16 / 16) {
    case 1:
      attend<T, D, BC, 1, WIDE, TMA>(p, c);
      break;
    case 2:
      attend<T, D, BC, 2, WIDE, TMA>(p, c);
      break;
    case 3:
      attend<T, D, BC, 3, WIDE, TMA>(p, c);
      break;
    case 4:
      attend<T, D, BC, 4, WIDE, TMA>(p, c);
      break;
    default:
      if constexpr (D > 64) {
        switch (c.rk16 / 16) {
          case 5:
            attend<T, D, BC, 5, WIDE, TMA>(p, c);
            break;
          case 6:
            attend<T, D, BC, 6, WIDE, TMA>(p, c);
            break;
          case 7:
            attend<T, D, BC, 7, WIDE, TMA>(p, c);
            break;
          default:
            attend<T, D, BC, 8, WIDE, TMA>(p, c);
            break;
        }
      }
      break;
  }
}

// Picks the instance for the head's Q K^T steps (ceil16(r_qk) / 16) and P V width.
template <typename T, int D, int BC, bool TMA>
__device__ __forceinline__ void run_tile(const PrefillParams& p, const TileCtx<T>& c) {
  if constexpr (D > 64) {
    if (c.rv16 > 64) {
      run_tile_w<T, D, BC, true, TMA>(p, c);
      return;
    }
  }
  run_tile_w<T, D, BC, false, TMA>(p, c);
}

// TMA: K/V tiles copied by the tensor memory accelerator from p.kv_maps (load_kv_tma), else by
// cp.async (load_kv).
template <typename T, int D, int BC, bool TMA>
__global__ void __launch_bounds__(kThreads, (min_blocks<D, BC>())) prefill_kernel(PrefillParams p, int log2_block) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int BR = kTileQ;
  constexpr int CH = D / 8;  // 16-byte chunks per row
  static_assert(D == 64 || D == 128, "padded width");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // Swizzle atoms must start on 1024-byte boundaries.
  const uint32_t raw_addr = smem_addr(smem_raw);
  unsigned char* base = smem_raw + ((1024u - (raw_addr & 1023u)) & 1023u);

  const PrefillTile tile = p.tiles[blockIdx.x];
  const int group = p.num_q_heads / p.num_kv_heads;
  const int kv_head = tile.q_head / group;
  const int g = tile.q_head - kv_head * group;
  TileCtx<T> c;
  c.sQ = base;
  c.sK = base + BR * D * 2;
  c.sV = c.sK + kStages * BC * D * 2;
  c.hd = p.heads[kv_head];
  c.rk16 = (c.hd.rk + 15) & ~15;
  c.rv16 = (c.hd.rv + 15) & ~15;
  const int q_start = p.cu_q[tile.seq];
  const int q_len = p.cu_q[tile.seq + 1] - q_start;
  const int pos0 = p.kv_len[tile.seq] - q_len;  // position of new token 0
  c.rows = min(BR, q_len - tile.q_begin);
  c.first_pos = pos0 + tile.q_begin;
  c.n_kv = c.first_pos + c.rows;
  c.n_tiles = (c.n_kv + BC - 1) / BC;
  c.log2_block = log2_block;
  c.qscale = p.sm_scale * 1.44269504088896340736f;
  c.pool = static_cast<const T*>(p.cache.hi_pool);
  c.pages = p.cache.hi_page_indices + p.cache.hi_page_indptr[tile.seq];
  {
    const int col = (threadIdx.x % CH) * 8;
    const uint32_t first = swz(BC, threadIdx.x / CH, col);
    c.sK_addr = smem_addr(c.sK) + first;
    c.sV_addr = smem_addr(c.sV) + first;
    c.pool_addr = reinterpret_cast<uint64_t>(c.pool);
    c.page_bytes = static_cast<uint32_t>(p.cache.page_elems_hi * static_cast<int64_t>(sizeof(T)));
    c.k_off = static_cast<int>((c.hd.page_k_hi + col) * static_cast<int64_t>(sizeof(T)));
    c.v_off = static_cast<int>((c.hd.page_v_hi + col) * static_cast<int64_t>(sizeof(T)));
    c.k_row_bytes = c.hd.rk * static_cast<int>(sizeof(T));
    c.v_row_bytes = c.hd.rv * static_cast<int>(sizeof(T));
    c.k_issue = col < c.rk16;
    c.v_issue = col < c.rv16;
    c.k_col = col < c.hd.rk;
    c.v_col = col < c.hd.rv;
  }
  c.sK_base = smem_addr(c.sK);
  c.sV_base = smem_addr(c.sV);
  c.bar = smem_addr(c.sV + kStages * BC * D * 2);
  if constexpr (TMA) {
    c.kmap = static_cast<const unsigned char*>(p.kv_maps) + kv_head * 256;  // [head][K, V] x 128 bytes
    c.vmap = c.kmap + 128;
  }
  c.out = static_cast<T*>(p.out) + static_cast<int64_t>(q_start + tile.q_begin) * p.o_row + c.hd.o_offset + g * c.hd.rv;

  // Q: rows past the sequence and columns in [r_qk, ceil16(r_qk)) are zero.
  const T* qsrc =
      static_cast<const T*>(p.q) + static_cast<int64_t>(q_start + tile.q_begin) * p.q_row + c.hd.q_offset + g * c.hd.rk;
  const int col = (threadIdx.x % CH) * 8;
  if (col < c.rk16) {
#pragma unroll 4
    for (int r = threadIdx.x / CH; r < BR; r += kThreads / CH) {
      const bool ok = r < c.rows && col < c.hd.rk;
      cp_async16(c.sQ + swz(BR, r, col), ok ? qsrc + static_cast<int64_t>(r) * p.q_row + col : qsrc, ok ? 16 : 0);
    }
  }
  if constexpr (TMA) {
    cp_async_commit();
    if (threadIdx.x == 0) {
#pragma unroll
      for (int i = 0; i < kStages; ++i) mbar_init(c.bar + i * 8, 1);
      mbar_init_fence();
      tma_prefetch_map(c.kmap);
      tma_prefetch_map(c.vmap);
    }
    __syncthreads();  // the barriers are initialized before anyone waits on them
    load_kv_tma<T, D, BC>(c, 0, 0, tma_page<T, BC>(c, 0));
    if (c.n_tiles > 1) load_kv_tma<T, D, BC>(c, 1, 1, tma_page<T, BC>(c, 1));
  } else {
    load_kv<T, D, BC>(c, 0, 0);
    cp_async_commit();
    if (c.n_tiles > 1) load_kv<T, D, BC>(c, 1, 1);
    cp_async_commit();
  }

  run_tile<T, D, BC, TMA>(p, c);
#else
  (void)p;
  (void)log2_block;
#endif
}

}  // namespace fdc::kernels::attn::dev::sm90
