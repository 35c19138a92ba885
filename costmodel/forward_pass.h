// The ops of one forward pass of a replica, in execution order, with their shapes and work on the
// most loaded GPU: the one enumeration every cost model prices (the roofline with datasheet rates,
// the fitted model with measured laws), so that the two can differ only in the time of an op.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "costmodel/attention_dims.h"
#include "costmodel/batch.h"
#include "costmodel/decode_units.h"
#include "costmodel/model_spec.h"
#include "costmodel/ops.h"
#include "costmodel/prefill_tiles.h"

namespace fdc::costmodel {

// Per-GPU widths of one group of identical layers (elements per token unless noted).
struct LayerShapes {
  int count = 0;
  LayerShard shard;        // most loaded GPU's attention work
  double f_hi = 1.0;       // effective important fraction
  double qkv_out = 0;      // QKV projection output width per GPU
  double rope_in = 0;      // RoPE input width per GPU (0: no RoPE)
  double rope_out = 0;     // RoPE(+rotation) output width per GPU
  double rotate_macs = 0;  // rotation multiply-adds per token per GPU
  double a2a_qkv = 0;      // all-to-all #1 payload width per token
  double a2a_out = 0;      // all-to-all #2 payload width per token
  double out_in = 0;       // output projection K dim per GPU
  // Attention per context token and per query row on the most loaded GPU (bytes, FLOP/2).
  double kv_bytes_per_token = 0;  // cached K+V bytes read per context token (class mix)
  double score_dims = 0;          // (qk + v) dims per context token, summed over query heads
  double row_bytes = 0;           // q read + output written, per new token
  // The same for prefill attention. With token classes a prompt is prefilled at hi dims (its keys
  // are classified only once it is whole); without classes these equal the decode figures.
  double prefill_kv_bytes_per_token = 0;
  double prefill_score_dims = 0;
  double prefill_row_bytes = 0;
  // KV append (op kv_append): elements of a new token's K/V rows over the GPU's KV heads. A
  // decode token goes to its class (a share f_hi at hi dims); with token classes a prompt's rows
  // are appended twice: at hi dims into the staging cache prefill attention reads, then, once
  // classified (op kv_classify, over the tail dims a lo token drops), into their class's slots.
  double append_dims_decode = 0;
  double append_dims_prefill = 0;
  double classify_tail_dims = 0;  // 0 without token classes
  // Token classes (important share f < 1, lo dims below hi dims): the decode kernel runs one unit
  // per class for every (sequence, KV head) in one launch over the layer's shared pages. A cost
  // model with a law measured on that layout prices it as that launch (for_each_decode_attention,
  // classes_one_launch); otherwise as two passes, the hi class over a share f of the keys and the lo
  // class over the rest, each with its own fixed and per-sequence costs. Per key: cached bytes and
  // (qk + v) dims of each class.
  bool token_classes = false;
  double kv_bytes_hi = 0, kv_bytes_lo = 0;
  double score_dims_hi = 0, score_dims_lo = 0;
  // Decode stage bytes per key (LayerShard::kv_stage_dims_*): the class mix, and each class.
  double kv_stage_bytes_per_token = 0, kv_stage_bytes_hi = 0, kv_stage_bytes_lo = 0;
  // Bytes per cached token of each KV head on the most loaded GPU, per class: the decode planner's
  // unit sizes (decode_units.h).
  std::vector<DecodeHeadBytes> decode_head_bytes;
};

std::vector<LayerShapes> layer_shapes(const ModelSpec& model, const ModelDims& dims, ParallelConfig par);

// Which datasheet rate the roofline prices an op's FLOPs at.
enum class RooflineRate { kGemm, kAttention, kMemory, kLink, kNone };

// One op of the pass, executed `times` times per iteration.
struct OpCall {
  OpKind kind = OpKind::kCount;
  OpWork work;  // per GPU; collectives: comm_bytes = payload x the nccl-tests send factor
  double times = 1;
  RooflineRate rate = RooflineRate::kNone;
  double m = 0, n = 0, k = 0;  // GEMMs; kv_append: m = its (token, KV head) pairs; attn_prefill: m = prompt rows
  double rows = 0;             // rows per GPU of the batch (the final norm: the rows that emit a token)
  int gpus = 0;                // collectives: GPUs taking part
  double nccl_bytes = 0;       // collectives: the nccl-tests size (per-rank buffer) of the call
  bool rotate = false;         // RoPE: with the FDC rotation (false: RoPE alone)
  // Attention: sequences in the batch and the spread of their key counts (context + new tokens).
  int64_t seqs = 0;
  double keys_mean = 0, keys_max = 0;
  PrefillTileWork tiles;   // prefill attention: the kernel's padded tile work (prefill_tiles.h)
  double stage_bytes = 0;  // decode attention: K/V bytes as the kernel stages them (LayerShapes)
  // The layer group of an attention call (prefill: its q heads and padded width, for the blocks'
  // makespan, prefill_makespan.h). Decode attention: what a cost model needs to estimate the
  // balanced plan's units (decode_units.h): the batch's mean and longest keys per sequence before
  // the class split, the lo share of every sequence's keys, and which units this call prices (-1:
  // all, the single pass without token classes; 0: the hi pass's; 1: the lo pass's).
  const LayerShapes* layer = nullptr;
  double seq_keys_mean = 0, seq_keys_max = 0, lo_share = 0;
  int decode_class = -1;
};

// Every op of one forward pass over `b` except decode attention, in execution order (decode
// attention is the only term that changes along a steady decode run: for_each_decode_attention).
template <class F>
void for_each_op(const ModelSpec& model, ParallelConfig par, const std::vector<LayerShapes>& groups,
                 const BatchTotals& b, F&& f) {
  const double e = model.dtype_bytes, D = model.hidden, F_ = model.ffn_hidden, t = par.tp;
  const int sp = par.sp;
  const double M = std::ceil(static_cast<double>(b.new_tokens) / sp);  // rows per GPU
  auto kernel = [&](OpKind k, const OpWork& w, RooflineRate rate, double times) {
    OpCall c;
    c.kind = k, c.work = w, c.rate = rate, c.times = times, c.rows = M;
    return c;
  };
  auto gemm = [&](OpKind k, double m, double n, double kk, double times) {
    OpCall c = kernel(k, gemm_work(m, n, kk, e), RooflineRate::kGemm, times);
    c.m = m, c.n = n, c.k = kk;
    return c;
  };
  auto collective = [&](OpKind k, int gpus, double payload_bytes, double send_factor, double nccl_bytes, double times) {
    OpCall c = kernel(k, OpWork{0, 0, payload_bytes * send_factor}, RooflineRate::kLink, times);
    c.gpus = gpus, c.nccl_bytes = nccl_bytes;
    return c;
  };
  for (const LayerShapes& g : groups) {
    const double n = g.count;
    f(kernel(OpKind::kNorm, elementwise_work(M * D, M * D, e, 4.0), RooflineRate::kMemory, 2 * n));
    f(gemm(OpKind::kQkvProj, M, g.qkv_out, D, n));
    if (g.rope_in > 0) {
      OpCall c = kernel(OpKind::kRopeRotate, rope_rotate_work(M, g.rope_in, g.rope_out, g.rotate_macs, e),
                        RooflineRate::kGemm, n);
      c.rotate = g.rotate_macs > 0;
      f(c);
    }
    if (sp > 1)
      f(collective(OpKind::kAllToAllQkv, sp, M * g.a2a_qkv * e, alltoall_send_factor(sp), M * g.a2a_qkv * e, n));
    {
      // After the all-to-all every GPU appends all of the batch's new rows, for its KV heads.
      const double appended = static_cast<double>(b.decode_seqs) * g.append_dims_decode +
                              static_cast<double>(b.prefill_tokens) * g.append_dims_prefill;
      if (appended > 0) {
        OpCall c = kernel(OpKind::kKvAppend, OpWork{0, 2.0 * e * appended, 0}, RooflineRate::kMemory, n);
        c.seqs = b.num_seqs;
        // Its work items, (token, KV head) pairs: a page lookup and a warp's row each, whatever the
        // rank, so the append time follows them as much as the bytes; a prompt's rows twice with
        // token classes (staged, then into their class).
        const double heads = static_cast<double>(g.shard.kv_heads);
        c.m = static_cast<double>(b.decode_seqs) * heads +
              static_cast<double>(b.prefill_tokens) * heads * (g.token_classes ? 2.0 : 1.0);
        f(c);
      }
    }
    if (b.prefill_seqs > 0 && g.classify_tail_dims > 0) {
      OpCall c =
          kernel(OpKind::kKvClassify, kv_classify_work(static_cast<double>(b.prefill_tokens), g.classify_tail_dims, e),
                 RooflineRate::kMemory, n);
      c.seqs = b.prefill_seqs;
      f(c);
    }
    if (b.prefill_seqs > 0) {
      OpCall c = kernel(OpKind::kAttnPrefill,
                        OpWork{2.0 * b.prefill_pairs * g.prefill_score_dims,
                               static_cast<double>(b.prefill_kv_tokens) * g.prefill_kv_bytes_per_token +
                                   static_cast<double>(b.prefill_tokens) * g.prefill_row_bytes,
                               0},
                        RooflineRate::kAttention, n);
      c.seqs = b.prefill_seqs;
      c.m = static_cast<double>(b.prefill_tokens);  // the in-layer calibration's axis
      c.keys_mean = static_cast<double>(b.prefill_kv_tokens) / static_cast<double>(b.prefill_seqs);
      c.keys_max = static_cast<double>(b.prefill_kv_max);
      c.tiles = prefill_tile_work(b.prefill_tiles, g.shard.q_heads, g.shard.max_rank_hi);
      c.layer = &g;
      f(c);
    }
    if (sp > 1)
      f(collective(OpKind::kAllToAllOut, sp, M * g.a2a_out * e, alltoall_send_factor(sp), M * g.a2a_out * e, n));
    f(gemm(OpKind::kOutProj, M, D, g.out_in, n));
    if (par.tp > 1)
      f(collective(OpKind::kAllReduce, par.tp, M * D * e, allreduce_send_factor(par.tp), M * D * e, 2 * n));
    f(kernel(OpKind::kResidual, elementwise_work(2 * M * D, M * D, e), RooflineRate::kMemory, 2 * n));
    if (model.mlp == MlpKind::kGated) {
      f(gemm(OpKind::kMlpUp, M, 2 * F_ / t, D, n));
      f(kernel(OpKind::kMlpAct, elementwise_work(2 * M * F_ / t, M * F_ / t, e, 4.0), RooflineRate::kMemory, n));
    } else {
      f(gemm(OpKind::kMlpUp, M, F_ / t, D, n));
      f(kernel(OpKind::kMlpAct, elementwise_work(M * F_ / t, M * F_ / t, e, 1.0), RooflineRate::kMemory, n));
    }
    f(gemm(OpKind::kMlpDown, M, D, F_ / t, n));
  }
  // Once per iteration: final norm and LM head on the rows that emit a token.
  const double rows = std::ceil(static_cast<double>(b.logits_rows) / sp);
  if (rows > 0) {
    OpCall norm = kernel(OpKind::kNorm, elementwise_work(rows * D, rows * D, e, 4.0), RooflineRate::kMemory, 1);
    norm.rows = rows;
    f(norm);
    f(gemm(OpKind::kLmHead, rows, model.vocab / t, D, 1));
    // nccl-tests sizes an all-gather by the gathered output: every rank's slice.
    if (par.tp > 1)
      f(collective(OpKind::kAllGather, par.tp, rows * (model.vocab / t) * e, allgather_send_factor(par.tp),
                   rows * (model.vocab / t) * e * t, 1));
  }
  {
    // Per iteration, and per sequence of the batch (a calibrated profile's us_per_seq).
    OpCall c = kernel(OpKind::kIterationOverhead, OpWork{}, RooflineRate::kNone, 1);
    c.seqs = b.num_seqs;
    f(c);
  }
}

// Decode attention of every layer group (nothing when the batch has no decode step). A layer with
// token classes is one call over both classes with `classes_one_launch` (decode_class -1, lo_share
// its lo share), else two, its hi and its lo pass.
template <class F>
void for_each_decode_attention(const std::vector<LayerShapes>& groups, const BatchTotals& b, F&& f,
                               bool classes_one_launch = false) {
  if (b.decode_seqs == 0) return;
  const double keys = static_cast<double>(b.decode_kv_tokens), seqs = static_cast<double>(b.decode_seqs);
  for (const LayerShapes& g : groups) {
    OpCall c;
    c.kind = OpKind::kAttnDecode;
    c.times = g.count;
    c.rate = RooflineRate::kAttention;
    c.seqs = b.decode_seqs;
    c.keys_mean = keys / seqs;
    c.keys_max = static_cast<double>(b.decode_kv_max);
    c.layer = &g;
    c.seq_keys_mean = c.keys_mean, c.seq_keys_max = c.keys_max;
    const double fh = g.f_hi;
    if (g.token_classes) c.lo_share = 1 - fh;
    // One call: without classes, or both classes in one launch (their mix per key, as the layer's
    // kv_bytes_per_token, score_dims and kv_stage_bytes_per_token are).
    if (!g.token_classes || classes_one_launch) {
      c.work = OpWork{2.0 * keys * g.score_dims, keys * g.kv_bytes_per_token + seqs * g.row_bytes, 0};
      c.stage_bytes = keys * g.kv_stage_bytes_per_token;
      f(c);
      continue;
    }
    // The hi pass carries the new rows (q read, output written, K/V appended).
    OpCall lo = c;
    c.decode_class = 0, lo.decode_class = 1;
    c.work = OpWork{2.0 * fh * keys * g.score_dims_hi, fh * keys * g.kv_bytes_hi + seqs * g.row_bytes, 0};
    c.stage_bytes = fh * keys * g.kv_stage_bytes_hi;
    c.keys_mean *= fh, c.keys_max *= fh;
    f(c);
    lo.work = OpWork{2.0 * (1 - fh) * keys * g.score_dims_lo, (1 - fh) * keys * g.kv_bytes_lo, 0};
    lo.stage_bytes = (1 - fh) * keys * g.kv_stage_bytes_lo;
    lo.keys_mean *= 1 - fh, lo.keys_max *= 1 - fh;
    f(lo);
  }
}

// Adds one priced call (s seconds per time) to a per-op breakdown: time and work, times `times`.
inline void record(OpBreakdown& bd, const OpCall& c, double s) {
  const auto i = static_cast<size_t>(c.kind);
  bd.seconds[i] += s * c.times;
  bd.work[i].flops += c.work.flops * c.times;
  bd.work[i].bytes += c.work.bytes * c.times;
  bd.work[i].comm_bytes += c.work.comm_bytes * c.times;
}

}  // namespace fdc::costmodel
