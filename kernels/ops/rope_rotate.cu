// Fused RoPE + FDC rotation, and RoPE alone (the baseline it is measured against).
//
// Fused kernel. The rotation is a (rows x d) x (d x r_qk) product per KV head, where a row is one
// post-RoPE vector of the head's group (its q heads, then its k head) for one token. It runs on the
// tensor cores (mma.sync m16n8k16, bf16/fp16 in, fp32 accumulate; sm_80 and sm_90):
//  - Work is cut into chunks of 16 rows (one m16 tile) of one KV head. The chunks of all heads,
//    head by head, are split into equal contiguous ranges, one per resident block, so every SM
//    gets the same work whatever the head count. A block loads its head's R (d x r_qk, zero-padded
//    to a multiple of 16 columns) into shared memory with cp.async once per head it touches (one
//    or two), in flight together with its warps' first chunks, and reuses it for every chunk.
//  - Each warp streams its own chunks through a 2-stage cp.async pipeline (the next chunk's raw q/k
//    rows load while this one computes), so the loads need no block-wide barrier.
//  - Per chunk, nothing waits on a dependent global load in the warp's critical path. Lane i (and
//    i + 16) plans row i of the next chunk while the current one is processed: its source in qkv
//    (handed to the lanes issuing the 16-byte cp.asyncs by shuffle), its RoPE position, and for a
//    k row the cache slot. The page walk (sequence -> page list -> page) is spread over the
//    current chunk's MMAs, stores and the next chunk's RoPE, and the row's destinations (q row;
//    packed k row and/or cache slot) go into a 16-entry table in shared memory.
//  - A chunk's RoPE runs as soon as its rows are in, at the end of the previous chunk's turn (the
//    first chunk's in the prologue, before the block waits for R), in place in shared memory in fp32,
//    rounded to the dtype (as the reference); cos/sin come straight from global memory (L2-resident),
//    their position already known. Then the warp loads its 16 x d A fragments into registers once
//    (ldmatrix) and walks R's columns 32 at a time (ldmatrix.trans one k step ahead of the MMAs,
//    four independent MMA accumulator chains per k step; a last 16 columns when r_qk padded is an
//    odd multiple of 16). Results (rounded to the dtype) go back into the warp's own rows, whose
//    inputs are already in registers, and leave as 16-byte stores: lane-strided over (row, vector)
//    with a fixed step, each row's pointers read from the table.
//  - Measured variants (docs/profile.md, "RoPE + rotation on the H200, 2026-12-03") that lost: two
//    m16 tiles per warp sharing every fragment of R (half the warps per SM), cos/sin loaded a phase
//    earlier (register spills), 48-column groups, R's stride fixed at d + 8 with constant offsets;
//    and (docs/kernels.md, "Two kernel variants that lost (2026-12-06)") the rows loaded straight
//    into the A fragments' registers (R's rows permuted to match, RoPE in registers, no staging):
//    more instructions, 1-13% slower on an H100.
// RoPE alone writes the rotated halves straight from registers, one thread per 8 column pairs.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/error.h"
#include "kernels/attention/mma.cuh"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_utils.cuh"
#include "kernels/ops/launch.h"

namespace fdc::kernels::ops {
namespace {

using attn::dev::ldmatrix_x4;
using attn::dev::ldmatrix_x4_trans;
using attn::dev::mma_16816;

__host__ __device__ inline int ceil16(int x) { return (x + 15) / 16 * 16; }

template <typename T>
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  uint4 out;
  uint32_t* w = reinterpret_cast<uint32_t*>(&out);
#pragma unroll
  for (int i = 0; i < 4; ++i) w[i] = dev::pack2<T>(f[2 * i], f[2 * i + 1]);
  return out;
}

// RoPE of 8 (x1, x2) pairs at columns c..c+7 and half+c..half+c+7, in fp32 with explicit
// round-to-nearest multiplies (no FMA contraction, so the result matches the reference's).
// cs = {cos[c..c+3], cos[c+4..c+7], sin[c..c+3], sin[c+4..c+7]}.
__device__ __forceinline__ void rope8(const float4 (&cs)[4], const float (&x1)[8], const float (&x2)[8], float (&lo)[8],
                                      float (&hi)[8]) {
  const float co[8] = {cs[0].x, cs[0].y, cs[0].z, cs[0].w, cs[1].x, cs[1].y, cs[1].z, cs[1].w};
  const float si[8] = {cs[2].x, cs[2].y, cs[2].z, cs[2].w, cs[3].x, cs[3].y, cs[3].z, cs[3].w};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    lo[j] = __fsub_rn(__fmul_rn(x1[j], co[j]), __fmul_rn(x2[j], si[j]));
    hi[j] = __fadd_rn(__fmul_rn(x2[j], co[j]), __fmul_rn(x1[j], si[j]));
  }
}
__device__ __forceinline__ void rope8(const float* cs, int half, int c, const float (&x1)[8], const float (&x2)[8],
                                      float (&lo)[8], float (&hi)[8]) {
  const float4 v[4] = {*reinterpret_cast<const float4*>(cs + c), *reinterpret_cast<const float4*>(cs + c + 4),
                       *reinterpret_cast<const float4*>(cs + half + c),
                       *reinterpret_cast<const float4*>(cs + half + c + 4)};
  rope8(v, x1, x2, lo, hi);
}

// Column of vector v (v < group: q head kv*group + v; v == group: the k head) in a qkv row.
__device__ __forceinline__ int64_t qkv_col(const RopeRotateParams& p, int kv, int group, int v) {
  return v < group ? static_cast<int64_t>(kv * group + v) * p.head_dim
                   : static_cast<int64_t>(p.num_q_heads + kv) * p.head_dim;
}

// Global destination of column `col` (a multiple of 8) of output vector v of `token`; writes 8 values.
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

// ---------------------------------------------------------------------------------------------
// Fused RoPE + rotation on the tensor cores.

constexpr int kRotWarps = 8;
constexpr int kRotThreads = kRotWarps * 32;
constexpr int kChunkRows = 16;  // one m16 tile
constexpr int kRotStages = 2;
constexpr unsigned kFullMask = 0xffffffffu;

// Row stride of R in shared memory: a multiple of 16 columns plus 8, so a row is an odd multiple
// of 16 bytes and the 8 rows of every ldmatrix hit distinct banks.
__host__ __device__ inline int rot_ldr(int max_rank) { return ceil16(max_rank) + 8; }

// Where one row of a chunk goes: the q row, or the k row's packed destination and/or its cache
// slot (two pointers when both are written). Null dst0: a row past the end, nothing is stored.
template <typename T>
struct __align__(16) RowDst {
  T* dst0;
  T* dst1;
};

// Shared memory: R ([D][ldr]), then per warp its stages ([stages][16][D + 8]), then per warp the
// destinations of its current chunk's rows ([16] RowDst).
template <int D>
size_t rotate_smem_bytes(int max_rank) {
  return (static_cast<size_t>(D) * rot_ldr(max_rank) +
          static_cast<size_t>(kRotWarps) * kRotStages * kChunkRows * (D + 8)) *
             2 +
         static_cast<size_t>(kRotWarps) * kChunkRows * sizeof(RowDst<__half>);
}

// What one lane knows of row (lane & 15) of a chunk, resolved in three steps spread over the
// previous chunk's work, so the dependent loads (token metadata, then the sequence's page list,
// then the page) are in flight while the warp computes instead of stalling it.
template <typename T>
struct RowPlan {
  const T* src;    // the row's raw q/k vector in qkv; null past the end (zero-filled)
  int pos;         // its RoPE position (0 past the end: a valid cos/sin row, results unused)
  int token, vec;  // vec < group: q head kv * group + vec; vec == group: the k head
  int seq, slot;   // the k row's sequence and hi slot (cache writes only)
  int page;        // step 2: index of the slot's page in hi_page_indices (hi_page_indptr[seq] + slot /
                   // block_size); step 3: the page
};

// Step 1, before the chunk's loads are issued: the row's source, position and cache slot.
template <typename T, int D>
__device__ __forceinline__ void plan_rows(const RopeRotateParams& p, int kv, int group, int rows_per_head, int ch,
                                          int c_end, int lane, RowPlan<T>& r) {
  const int vecs = group + 1;
  const int row = ch * kChunkRows + (lane & 15);
  r.src = nullptr;
  r.pos = 0;
  r.token = 0;
  r.vec = 0;
  r.seq = 0;
  r.slot = 0;
  r.page = 0;
  if (ch >= c_end || row >= rows_per_head) return;
  r.token = row / vecs;
  r.vec = row - r.token * vecs;
  r.src = static_cast<const T*>(p.qkv) + static_cast<int64_t>(r.token) * p.qkv_row + qkv_col(p, kv, group, r.vec);
  r.pos = __ldg(p.positions + r.token);
  if (r.vec == group && p.hi_pool) {
    r.seq = __ldg(p.seq_of + r.token);
    r.slot = __ldg(p.pos_of + r.token);
  }
}

// Step 2: the index of the slot's page in the page list (k rows that go to the cache).
template <typename T>
__device__ __forceinline__ void plan_page_index(const RopeRotateParams& p, int group, int log2_block, RowPlan<T>& r) {
  if (r.src && r.vec == group && p.hi_pool) r.page = __ldg(p.hi_page_indptr + r.seq) + (r.slot >> log2_block);
}

// Step 3: the page (a k row that goes to the cache): its id replaces the list index.
template <typename T>
__device__ __forceinline__ void plan_page(const RopeRotateParams& p, int group, RowPlan<T>& r) {
  if (r.src && r.vec == group && p.hi_pool) r.page = __ldg(p.hi_page_indices + r.page);
}

// Step 4: the row's destinations.
template <typename T>
__device__ __forceinline__ RowDst<T> plan_dst(const RopeRotateParams& p, const attn::HeadInfo& h, int group,
                                              int log2_block, const RowPlan<T>& r) {
  RowDst<T> d{nullptr, nullptr};
  if (!r.src) return d;
  if (r.vec < group) {
    d.dst0 = static_cast<T*>(p.q_out) + static_cast<int64_t>(r.token) * p.q_row + h.q_offset + r.vec * h.rk;
    return d;
  }
  T* cache = p.hi_pool ? static_cast<T*>(p.hi_pool) + static_cast<int64_t>(r.page) * p.page_elems_hi +
                             attn::page_k_elem(h, 0, r.slot & ((1 << log2_block) - 1))
                       : nullptr;
  T* packed = p.k_out ? static_cast<T*>(p.k_out) + static_cast<int64_t>(r.token) * p.k_row + h.k_offset : nullptr;
  d.dst0 = packed ? packed : cache;
  d.dst1 = packed ? cache : nullptr;
  return d;
}

// The chunk's 16 raw q/k rows into a warp's stage `dst` ([16][D + 8]), one cp.async group; each
// lane takes its rows' sources from the lanes that planned them. Rows past the end are zero-filled.
template <typename T, int D>
__device__ __forceinline__ void load_chunk(const RopeRotateParams& p, const RowPlan<T>& r, T* dst, int lane) {
  constexpr int VPR = D / 8;  // 16-byte vectors per row
  const T* src = r.src;
#pragma unroll
  for (int j = 0; j < kChunkRows * VPR / 32; ++j) {
    const int i = lane + 32 * j;
    const int rr = i / VPR, c = (i % VPR) * 8;
    const auto* row = reinterpret_cast<const T*>(__shfl_sync(kFullMask, reinterpret_cast<unsigned long long>(src), rr));
    dev::cp_async16(dst + rr * (D + 8) + c, row ? row + c : static_cast<const T*>(p.qkv), row ? 16 : 0);
  }
}

// NB n16 column blocks of the chunk's product at column n0: 2 * NB independent accumulators per
// k step (NB = 2 keeps four MMA chains in flight instead of two), results rounded to the dtype
// into the warp's rows (row stride D + 8). The next k step's fragments of R are read before this
// step's MMAs are issued, so the MMAs do not wait on shared memory.
template <typename T, int D, int NB>
__device__ __forceinline__ void mma_cols(const uint32_t (&a)[D / 16][4], const T* rs, int ldr, int n0, int lane,
                                         T* out) {
  constexpr int LDX = D + 8;
  float acc[2 * NB][4];
#pragma unroll
  for (int j = 0; j < 2 * NB; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  const T* rb = rs + (lane & 15) * ldr + n0 + (lane >> 4) * 8;
  uint32_t b[2][NB][4];
#pragma unroll
  for (int nb = 0; nb < NB; ++nb) ldmatrix_x4_trans(b[0][nb], rb + nb * 16);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    if (kk + 1 < D / 16) {
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) ldmatrix_x4_trans(b[(kk + 1) & 1][nb], rb + (kk + 1) * 16 * ldr + nb * 16);
    }
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      mma_16816<T>(acc[2 * nb], a[kk], b[kk & 1][nb][0], b[kk & 1][nb][1]);
      mma_16816<T>(acc[2 * nb + 1], a[kk], b[kk & 1][nb][2], b[kk & 1][nb][3]);
    }
  }
  const int g = lane >> 2, cq = (lane & 3) * 2;
#pragma unroll
  for (int j = 0; j < 2 * NB; ++j) {
    const int col = n0 + j * 8 + cq;
    *reinterpret_cast<uint32_t*>(out + g * LDX + col) = dev::pack2<T>(acc[j][0], acc[j][1]);
    *reinterpret_cast<uint32_t*>(out + (g + 8) * LDX + col) = dev::pack2<T>(acc[j][2], acc[j][3]);
  }
}

// RoPE of a chunk's rows in place (stage x, row stride D + 8), fp32, rounded to the dtype. Each
// row's position comes from the lane that planned the row (pos_of_lane, read a chunk earlier), so
// the cos/sin loads wait on nothing else; all of them are issued before the first is used.
template <typename T, int D>
__device__ __forceinline__ void rope_chunk(const RopeRotateParams& p, T* x, int pos_of_lane, int lane) {
  constexpr int LDX = D + 8, HALF = D / 2, HVPR = HALF / 8;  // HVPR: 16-byte vectors per half row
  constexpr int ITEMS = kChunkRows * HVPR / 32;              // (row, 8 pairs) items of this lane
  float4 cs[ITEMS][4];
#pragma unroll
  for (int j = 0; j < ITEMS; ++j) {
    const int i = lane + 32 * j;
    const int rr = i / HVPR, c = (i % HVPR) * 8;
    const int pos = __shfl_sync(kFullMask, pos_of_lane, rr);
    const float4* cs_row = reinterpret_cast<const float4*>(p.cos_sin + static_cast<int64_t>(pos) * D + c);
    cs[j][0] = __ldg(cs_row);
    cs[j][1] = __ldg(cs_row + 1);
    cs[j][2] = __ldg(cs_row + HALF / 4);
    cs[j][3] = __ldg(cs_row + HALF / 4 + 1);
  }
#pragma unroll
  for (int j = 0; j < ITEMS; ++j) {
    const int i = lane + 32 * j;
    const int rr = i / HVPR, c = (i % HVPR) * 8;
    float x1[8], x2[8], lo[8], hi[8];
    dev::unpack8<T>(*reinterpret_cast<const uint4*>(x + rr * LDX + c), x1);
    dev::unpack8<T>(*reinterpret_cast<const uint4*>(x + rr * LDX + HALF + c), x2);
    rope8(cs[j], x1, x2, lo, hi);
    *reinterpret_cast<uint4*>(x + rr * LDX + c) = pack8<T>(lo);
    *reinterpret_cast<uint4*>(x + rr * LDX + HALF + c) = pack8<T>(hi);
  }
}

// The schedule of a warp, chunk by chunk (each line overlaps the loads issued on the lines
// before it):
//   prologue: plan chunk 0's rows and load them; R's loads (block-wide) go out behind them; once
//             chunk 0's rows are in, the page-list index, RoPE, and the page load; then R.
//   chunk i:  plan chunk i + 1's rows and load them; chunk i's MMAs; chunk i + 1's page-list
//             index; chunk i's destinations (its page arrived during the MMAs) and stores; chunk
//             i + 1's RoPE once its rows are in, and its page load.
// So the page walk (three dependent loads) and R's arrival are never waited on alone, and a block
// barrier is met once per head, after the warp's first RoPE.
// Two blocks per SM is what shared memory allows at d = 128 (the launch bound also keeps ptxas from
// spilling). chunks_per_head = ceil(num_tokens * (group + 1) / 16); the block covers chunk units
// [blockIdx.x * total / gridDim.x, (blockIdx.x + 1) * total / gridDim.x) of the heads in order.
// Split by head instead (by_head.per_block > 0; rotate_split): a grid of (blocks per head, heads),
// block (j, head) serving chunks [j q + min(j, rem), (j + 1) q + min(j + 1, rem)) of its head, with
// q = by_head.per_block and rem = by_head.rem (chunks_per_head = blocks per head x q + rem), so no
// block loads two heads' R one after the other, and no division on the way.
struct HeadSplit {
  int64_t per_block = 0;  // 0: contiguous ranges over a 1-D grid
  int rem = 0;
};
// log2_block: log2 of the cache block size (a power of two; 0 without a cache write).
template <typename T, int D>
__global__ void __launch_bounds__(kRotThreads, 2)
    rotate_kernel(const RopeRotateParams p, int64_t chunks_per_head, HeadSplit by_head, int log2_block) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int LDX = D + 8;  // odd multiple of 16 bytes: conflict-free ldmatrix and 16-byte rows
  constexpr int KSTEPS = D / 16;
  const int group = p.num_q_heads / p.num_kv_heads, vecs = group + 1;
  const int ldr = rot_ldr(p.max_rank);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  T* rs = reinterpret_cast<T*>(smem);                                                 // [D][ldr]
  T* xs = rs + static_cast<int64_t>(D) * ldr + warp * kRotStages * kChunkRows * LDX;  // [stages][16][LDX]
  T* stages_end = rs + static_cast<int64_t>(D) * ldr + kRotWarps * kRotStages * kChunkRows * LDX;
  RowDst<T>* dsts = reinterpret_cast<RowDst<T>*>(stages_end) + warp * kChunkRows;  // [16]
  const int rows_per_head = p.num_tokens * vecs;  // < 2^31: num_tokens x at most 9 vectors
  const int64_t total = chunks_per_head * p.num_kv_heads;
  int64_t u_begin, u_end;
  if (by_head.per_block > 0) {
    const int j = static_cast<int>(blockIdx.x);
    u_begin = blockIdx.y * chunks_per_head + j * by_head.per_block + min(j, by_head.rem);
    u_end = u_begin + by_head.per_block + (j < by_head.rem ? 1 : 0);
  } else {
    u_begin = blockIdx.x * total / gridDim.x;
    u_end = (blockIdx.x + 1) * total / gridDim.x;
  }

  for (int64_t u = u_begin; u < u_end;) {
    const int kv = static_cast<int>(u / chunks_per_head);
    const int64_t head_end = (kv + 1) * chunks_per_head, seg_end = u_end < head_end ? u_end : head_end;
    const int c_begin = static_cast<int>(u - kv * chunks_per_head),
              c_end = static_cast<int>(seg_end - kv * chunks_per_head);
    u = seg_end;
    const attn::HeadInfo h = p.heads[kv];
    const int rpad = ceil16(h.rk);

    int ch = c_begin + warp;
    RowPlan<T> cur;
    plan_rows<T, D>(p, kv, group, rows_per_head, ch, c_end, lane, cur);
    if (ch < c_end) load_chunk<T, D>(p, cur, xs, lane);
    dev::cp_async_commit();
    __syncthreads();  // every warp is done with the previous head's R
    {
      // R's D rows x rpad columns in 16-byte vectors: a thread keeps one column vector and steps
      // over rows, so the indices are compile-time shifts (a runtime division per vector cost about
      // a tenth of the instructions of a mid-size launch). Vectors past rpad are skipped.
      constexpr int kVecsMax = D / 8, kRowStep = kRotThreads / kVecsMax;
      static_assert(kRotThreads % kVecsMax == 0, "the R load maps whole rows to the block");
      const T* r = static_cast<const T*>(p.rotation) + static_cast<int64_t>(D) * h.k_offset;
      const int c = (threadIdx.x % kVecsMax) * 8;
      if (c < rpad) {
        const bool ok = c < h.rk;  // columns up to the next multiple of 16 are zeros
        const int row0 = threadIdx.x / kVecsMax;
        const T* src = ok ? r + static_cast<int64_t>(row0) * h.rk + c : r;
        const int64_t src_step = ok ? static_cast<int64_t>(kRowStep) * h.rk : 0;
#pragma unroll
        for (int k = 0; k < D / kRowStep; ++k)
          dev::cp_async16(rs + (row0 + k * kRowStep) * ldr + c, src + k * src_step, ok ? 16 : 0);
      }
    }
    dev::cp_async_commit();
    if (ch < c_end) {
      plan_page_index(p, group, log2_block, cur);
      dev::cp_async_wait<1>();  // chunk 0's rows (R may still be in flight)
      __syncwarp();
      rope_chunk<T, D>(p, xs, cur.pos, lane);
      plan_page(p, group, cur);
    }
    dev::cp_async_wait<0>();
    __syncthreads();  // R is in

    // Stores of a chunk: 16 rows x (r_qk / 8) vectors, lane-strided; (row, vector) advances by a
    // fixed step, so no division in the loop.
    const int cvecs = h.rk / 8;
    const int step_rows = 32 / cvecs, step_vecs = 32 % cvecs;
    const int first_row = lane / cvecs, first_vec = lane % cvecs;

    for (int it = 0; ch < c_end; ++it, ch += kRotWarps) {
      T* cur_x = xs + (it & 1) * kChunkRows * LDX;
      T* nxt_x = xs + ((it + 1) & 1) * kChunkRows * LDX;
      const int next = ch + kRotWarps;
      RowPlan<T> nxt;
      plan_rows<T, D>(p, kv, group, rows_per_head, next, c_end, lane, nxt);
      if (next < c_end) load_chunk<T, D>(p, nxt, nxt_x, lane);
      dev::cp_async_commit();

      // A = the chunk's 16 x D post-RoPE rows, held in registers for every n step.
      __syncwarp();
      uint32_t a[KSTEPS][4];
#pragma unroll
      for (int kk = 0; kk < KSTEPS; ++kk) ldmatrix_x4(a[kk], cur_x + (lane & 15) * LDX + kk * 16 + (lane >> 4) * 8);
      __syncwarp();  // the rows are overwritten with results below
      // R's columns 32 at a time, then the last 16 when rpad is an odd multiple of 16.
      int n0 = 0;
      for (; n0 + 32 <= rpad; n0 += 32) mma_cols<T, D, 2>(a, rs, ldr, n0, lane, cur_x);
      if (n0 < rpad) mma_cols<T, D, 1>(a, rs, ldr, n0, lane, cur_x);
      if (next < c_end) plan_page_index(p, group, log2_block, nxt);
      if (lane < kChunkRows) dsts[lane] = plan_dst(p, h, group, log2_block, cur);
      __syncwarp();

      // 16-byte stores of the first r_qk columns of each row to the destinations resolved above.
      for (int rr = first_row, v = first_vec; rr < kChunkRows;) {
        const RowDst<T> d = dsts[rr];
        const uint4 val = *reinterpret_cast<const uint4*>(cur_x + rr * LDX + v * 8);
        if (d.dst0) *reinterpret_cast<uint4*>(d.dst0 + v * 8) = val;
        if (d.dst1) *reinterpret_cast<uint4*>(d.dst1 + v * 8) = val;
        rr += step_rows;
        v += step_vecs;
        if (v >= cvecs) {
          v -= cvecs;
          ++rr;
        }
      }
      if (next < c_end) {
        dev::cp_async_wait<0>();
        __syncwarp();
        rope_chunk<T, D>(p, nxt_x, nxt.pos, lane);
        plan_page(p, group, nxt);
      }
      __syncwarp();  // the table is rewritten, this stage refilled, next chunk
      cur = nxt;
    }
  }
}

// Resident blocks per SM of one fused-kernel configuration, and the SM count (cached: the
// occupancy query costs more than a small launch).
template <typename T, int D, typename Kernel>
std::pair<int, int> rotate_occupancy(Kernel kernel, size_t smem) {
  static std::mutex mu;
  static std::map<std::tuple<int, size_t>, std::pair<int, int>> cache;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(device, smem);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  // The limit is set to the largest size any rank needs, so a launch with a size met earlier never
  // finds it lowered by a smaller one in between.
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(rotate_smem_bytes<D>(D))));
  int per_sm = 0, sms = 0;
  CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kRotThreads, smem));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  FDC_CHECK(per_sm >= 1, "rope_rotate: the fused kernel does not fit an SM with " << smem << " bytes of shared memory");
  return cache[key] = {per_sm, sms};
}

// How the fused kernel's blocks split the chunks. A block runs its chunks one per warp, eight at a
// time, after loading its head's R; a block whose contiguous range crosses into the next head loads
// the second R and runs those chunks after the first head's (a second prologue on its critical
// path). Split by head, every block serves one head, with blocks_per_head = the wave's blocks / heads
// (fewer blocks in all). Both are costed in rounds (a prologue, then one round per eight chunks of
// a head) for the block that takes longest, and the cheaper is taken, by head at a tie (fewer R
// loads; on an H100 the split by head was 0.72-1.04x the contiguous time over the Llama models'
// cases, docs/kernels.md): by head where it avoids a second prologue, contiguous where it would keep
// more blocks busy. FDCSIM_ROPE_ROTATE_SPLIT=contiguous|heads forces one (for comparisons).
struct RotateSplit {
  dim3 grid;
  HeadSplit by_head;  // per_block 0: contiguous ranges
};

int64_t rotate_rounds(int64_t chunks) { return (chunks + kRotWarps - 1) / kRotWarps; }

// The contiguous split's rounds for its slowest block: a walk over the wave's blocks, cached per
// shape (the engine launches the op in every layer of every iteration; shapes repeat).
int64_t contiguous_rounds(int64_t chunks_per_head, int kv_heads, int64_t blocks) {
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int, int64_t>, int64_t> cache;
  const auto key = std::make_tuple(chunks_per_head, kv_heads, blocks);
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const int64_t total = chunks_per_head * kv_heads;
  int64_t worst = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    int64_t u = b * total / blocks, cost = 0;
    const int64_t end = (b + 1) * total / blocks;
    while (u < end) {
      const int64_t seg_end = std::min(end, (u / chunks_per_head + 1) * chunks_per_head);
      cost += 1 + rotate_rounds(seg_end - u);
      u = seg_end;
    }
    worst = std::max(worst, cost);
  }
  if (cache.size() >= 4096) cache.clear();  // bounded: prefill chunks of every length are possible
  return cache[key] = worst;
}

RotateSplit rotate_split(int64_t chunks_per_head, int kv_heads, int64_t wave) {
  const int64_t blocks = std::min(wave, chunks_per_head * kv_heads);
  const RotateSplit contiguous{dim3(static_cast<unsigned>(blocks)), {}};
  const int64_t per_head = std::min<int64_t>(chunks_per_head, wave / kv_heads);
  // Read at every launch (a few hundred ns), so that a test can compare both splits in one process.
  const char* env = std::getenv("FDCSIM_ROPE_ROTATE_SPLIT");
  const std::string forced = env ? env : "";
  FDC_INPUT_CHECK(forced.empty() || forced == "contiguous" || forced == "heads",
                  "FDCSIM_ROPE_ROTATE_SPLIT: expected 'contiguous' or 'heads', found '" << forced << "'");
  if (per_head < 1 || forced == "contiguous") return contiguous;
  const RotateSplit heads{dim3(static_cast<unsigned>(per_head), static_cast<unsigned>(kv_heads)),
                          {chunks_per_head / per_head, static_cast<int>(chunks_per_head % per_head)}};
  if (forced == "heads") return heads;
  const int64_t cost_heads = 1 + rotate_rounds((chunks_per_head + per_head - 1) / per_head);
  return cost_heads <= contiguous_rounds(chunks_per_head, kv_heads, blocks) ? heads : contiguous;
}

template <typename T, int D>
void launch_rotate(const RopeRotateParams& p, cudaStream_t stream) {
  auto kernel = rotate_kernel<T, D>;
  const size_t smem = rotate_smem_bytes<D>(p.max_rank);
  const auto [per_sm, sms] = rotate_occupancy<T, D>(kernel, smem);
  const int group = p.num_q_heads / p.num_kv_heads;
  const int64_t chunks_per_head = (static_cast<int64_t>(p.num_tokens) * (group + 1) + kChunkRows - 1) / kChunkRows;
  // One wave of resident blocks at most (more would only add R loads).
  const RotateSplit split = rotate_split(chunks_per_head, p.num_kv_heads, static_cast<int64_t>(sms) * per_sm);
  int log2_block = 0;  // validate(): a power of two when the cache is written
  while (p.hi_pool && (1 << log2_block) < p.block_size) ++log2_block;
  kernel<<<split.grid, kRotThreads, smem, stream>>>(p, chunks_per_head, split.by_head, log2_block);
  CUDA_CHECK_LAUNCH();
}

// ---------------------------------------------------------------------------------------------
// RoPE alone: a flat grid over (token, head, 8 column pairs), one item per thread, so that every
// size fills the GPU (an earlier version ran one block per KV head and 64-token tile: 40 blocks of
// 128 threads, eight dependent items each, for 64 tokens of Llama-2-13B, 12 us where 5 sufficed).
// The q heads then the k heads of a token are contiguous in qkv: consecutive threads read one
// head's halves in 128-byte runs.

constexpr int kRopeThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kRopeThreads) rope_only_kernel(const RopeRotateParams p) {
  const int d = p.head_dim, half = d / 2, group = p.num_q_heads / p.num_kv_heads;
  const int hvecs = half / 8;
  const int64_t per_token = static_cast<int64_t>(p.num_q_heads + p.num_kv_heads) * hvecs;
  const int64_t items = per_token * p.num_tokens;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < items;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int token = static_cast<int>(i / per_token);
    const int rest = static_cast<int>(i - token * per_token);
    const int head = rest / hvecs, c = (rest - head * hvecs) * 8;
    const bool is_q = head < p.num_q_heads;
    const int kv = is_q ? head / group : head - p.num_q_heads;
    const int v = is_q ? head - kv * group : group;
    const T* x = static_cast<const T*>(p.qkv) + static_cast<int64_t>(token) * p.qkv_row + qkv_col(p, kv, group, v);
    float x1[8], x2[8], lo[8], hi[8];
    dev::unpack8<T>(*reinterpret_cast<const uint4*>(x + c), x1);
    dev::unpack8<T>(*reinterpret_cast<const uint4*>(x + half + c), x2);
    rope8(p.cos_sin + static_cast<int64_t>(__ldg(p.positions + token)) * d, half, c, x1, x2, lo, hi);
    const attn::HeadInfo h = p.heads[kv];
    store8<T>(p, h, group, token, v, c, pack8<T>(lo));
    store8<T>(p, h, group, token, v, half + c, pack8<T>(hi));
  }
}

template <typename T>
void launch_rope_only(const RopeRotateParams& p, cudaStream_t stream) {
  int device = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t items = static_cast<int64_t>(p.num_tokens) * (p.num_q_heads + p.num_kv_heads) * (p.head_dim / 16);
  // One item per thread up to a full GPU (8 blocks of 256 threads per SM); larger sizes loop.
  const int64_t blocks = std::min<int64_t>((items + kRopeThreads - 1) / kRopeThreads, static_cast<int64_t>(sms) * 8);
  rope_only_kernel<T><<<static_cast<unsigned>(blocks), kRopeThreads, 0, stream>>>(p);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_typed(const RopeRotateParams& p, cudaStream_t stream) {
  if (!p.rotation) return launch_rope_only<T>(p, stream);
  if (p.head_dim == 64) return launch_rotate<T, 64>(p, stream);
  launch_rotate<T, 128>(p, stream);
}

}  // namespace

void launch_rope_rotate(const RopeRotateParams& p, cudaStream_t stream) {
  validate(p);
  for (const void* q : {p.qkv, static_cast<const void*>(p.cos_sin), p.rotation, static_cast<const void*>(p.q_out),
                        static_cast<const void*>(p.k_out), static_cast<const void*>(p.hi_pool)})
    require_aligned16(q, "rope_rotate");
  if (p.num_tokens == 0) return;
  if (p.dtype == DType::kBF16) {
    launch_typed<__nv_bfloat16>(p, stream);
  } else {
    launch_typed<__half>(p, stream);
  }
}

}  // namespace fdc::kernels::ops
