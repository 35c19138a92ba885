#include "costmodel/fitted.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "costmodel/decode_units.h"
#include "costmodel/prefill_makespan.h"

namespace fdc::costmodel {
namespace {

// GEMM laws by library, production path first: cuBLASLt, then cublasGemmEx, then Vidur's PyTorch.
const char* const kGemmLibraries[] = {"cublaslt", "cublas", "vidur"};

}  // namespace

std::string overhead_op(const std::string& model, ParallelConfig par, bool token_classes) {
  return "iteration_overhead/" + model + "/tp" + std::to_string(par.tp) + "sp" + std::to_string(par.sp) +
         (token_classes ? "/classes" : "");
}

FittedCostModel::FittedCostModel(const ModelSpec& model, const ModelDims& dims, ParallelConfig par,
                                 fit::FittedProfile profile, ProfileRef ref)
    : model_(model),
      par_(par),
      profile_(std::move(profile)),
      ref_(std::move(ref)),
      groups_(layer_shapes(model, dims, par)) {
  std::vector<std::string> missing;
  auto need = [&](const std::string& op, const std::string& why) -> const fit::OpFit* {
    const fit::OpFit* f = profile_.find(op);
    if (!f) {
      const std::string m = "'" + op + "' (" + why + ")";
      if (std::find(missing.begin(), missing.end(), m) == missing.end()) missing.push_back(m);
      return nullptr;
    }
    if (std::find(used_ops_.begin(), used_ops_.end(), op) == used_ops_.end()) {
      used_ops_.push_back(op);
      if (f->extrapolated || profile_.extrapolated) extrapolated_ops_.push_back(op);
    }
    return f;
  };
  auto gemm = [&](const std::string& name) {
    for (const char* lib : kGemmLibraries)
      if (profile_.find("gemm/" + name + "/" + lib)) return need("gemm/" + name + "/" + lib, "GEMM");
    return need("gemm/" + name + "/cublaslt", "GEMM");
  };
  auto set = [&](OpKind k, const fit::OpFit* f) { law_[static_cast<size_t>(k)] = f; };
  set(OpKind::kNorm, need(model.norm == NormKind::kRmsNorm ? "norm/rmsnorm" : "norm/layernorm", "the model's norm"));
  set(OpKind::kQkvProj, gemm("qkv_proj"));
  set(OpKind::kOutProj, gemm("out_proj"));
  set(OpKind::kMlpUp, gemm("mlp_up"));
  set(OpKind::kMlpDown, gemm("mlp_down"));
  set(OpKind::kLmHead, gemm("lm_head"));
  set(OpKind::kResidual, need("residual", "residual adds"));
  set(OpKind::kMlpAct, need(model.mlp == MlpKind::kGated ? "mlp_act/swiglu" : "mlp_act/relu", "the MLP activation"));
  if (model.rope) {
    for (const LayerShapes& g : groups_) {
      if (g.rotate_macs > 0) set(OpKind::kRopeRotate, need("rope_rotate/rotate", "RoPE + FDC rotation"));
      if (g.rotate_macs == 0) rope_only_ = need("rope_rotate/rope_only", "RoPE of full-rank layers");
    }
  }
  set(OpKind::kKvAppend, need("kv_append", "appending new K/V rows to the KV cache"));
  for (const LayerShapes& g : groups_)
    if (g.classify_tail_dims > 0) token_classes_ = true;
  if (token_classes_) set(OpKind::kKvClassify, need("kv_classify", "classifying prompt tokens (token classes)"));
  set(OpKind::kAttnPrefill, need("attn_prefill", "prefill attention"));
  set(OpKind::kAttnDecode, need("attn_decode", "decode attention"));
  for (const LayerShapes& g : groups_)
    if (g.shard.decode_tensor_cores && profile_.find("attn_decode/tensor_cores"))
      decode_tensor_cores_ = need("attn_decode/tensor_cores", "decode attention on the tensor cores");
  for (const LayerShapes& g : groups_)
    if (g.token_classes && profile_.find("attn_decode/shared_pages"))
      decode_shared_pages_ = need("attn_decode/shared_pages", "decode attention with token classes on shared pages");
  for (int k = 0; k < kNumDecodeKernels; ++k) {
    const auto it = profile_.attn_decode_in_layer.find(std::string(decode_kernel_law(static_cast<DecodeKernel>(k))));
    if (it != profile_.attn_decode_in_layer.end()) decode_extra_s_[static_cast<size_t>(k)] = it->second.extra_us * 1e-6;
  }
  if (par.sp > 1) {
    const std::string sp = "/sp" + std::to_string(par.sp), why = "sequence parallelism sp=" + std::to_string(par.sp);
    pack_ = need("ulysses/pack" + sp, why);
    set(OpKind::kAllToAllQkv, need("ulysses/a2a_qkv" + sp, why));
    unpack_qkv_ = need("ulysses/unpack_qkv" + sp, why);
    set(OpKind::kAllToAllOut, need("ulysses/a2a_out" + sp, why));
    unpack_out_ = need("ulysses/unpack_out" + sp, why);
  }
  if (par.tp > 1) {
    const std::string g = "/g" + std::to_string(par.tp), why = "tensor parallelism tp=" + std::to_string(par.tp);
    set(OpKind::kAllReduce, need("all_reduce" + g, why));
    set(OpKind::kAllGather, need("all_gather" + g, why));
  }
  // An overhead calibrated for this model and parallelism (fdcsim fit --overhead-from) wins over
  // the profile's general one.
  const std::string keyed = overhead_op(model.name, par), classes = overhead_op(model.name, par, true);
  const std::string overhead = token_classes_ && profile_.find(classes) ? classes
                               : profile_.find(keyed)                   ? keyed
                                                                        : "iteration_overhead";
  set(OpKind::kIterationOverhead, need(overhead, "per-iteration overhead"));
  if (!missing.empty()) {
    std::ostringstream os;
    os << "cost profile '" << ref_.name << "' (" << ref_.source << ", " << profile_.gpu << ") has no op ";
    for (size_t i = 0; i < missing.size(); ++i) os << (i ? ", " : "") << missing[i];
    os << ", which this simulation of " << model.name << " (tp=" << par.tp << ", sp=" << par.sp
       << ") needs: measure it (fdcsim profile) and refit (fdcsim fit), or set costmodel.kind to \"roofline\"";
    throw InputError(os.str());
  }
}

void FittedCostModel::note_range(OpKind k, const fit::OpFit* f, const fit::OpQuery& q) const {
  const auto i = static_cast<size_t>(k);
  ++queries_[i];
  if (!fit::outside_measured(*f, q)) return;
  if (outside_[i]++ == 0) first_outside_[i] = f->op + ": " + fit::predict(*f, q).why;
}

std::vector<RangeUse> FittedCostModel::outside_measured() const {
  std::vector<RangeUse> out;
  for (int k = 0; k < kNumOpKinds; ++k) {
    const auto i = static_cast<size_t>(k);
    if (outside_[i] > 0)
      out.push_back({std::string(op_name(static_cast<OpKind>(k))), queries_[i], outside_[i], first_outside_[i]});
  }
  return out;
}

DecodeKernel FittedCostModel::decode_kernel(const OpCall& c) const {
  if (decode_shared_pages_ && c.layer && c.layer->token_classes) return DecodeKernel::kSharedPages;
  if (decode_tensor_cores_ && c.layer && c.layer->shard.decode_tensor_cores) return DecodeKernel::kTensorCores;
  return DecodeKernel::kCudaCores;
}

double FittedCostModel::seconds(const OpCall& c) const {
  const double s = law_seconds(c);
  // A decode kernel's call in the stream of a forward pass against back to back, calibrated from
  // measured layers: its extra time per call.
  if (c.kind == OpKind::kAttnDecode) return s + decode_extra_s_[static_cast<size_t>(decode_kernel(c))];
  // The element-wise ops in the stream of a forward pass against alone, calibrated from measured
  // layers (their launches ramp and drain between the layer's other kernels), at the batch's rows.
  if (profile_.elementwise_in_layer && is_elementwise(c.kind))
    return s / profile_.elementwise_in_layer->efficiency(std::max(c.rows, 1.0));
  return s;
}

double FittedCostModel::law_seconds(const OpCall& c) const {
  const fit::OpFit* f = law_[static_cast<size_t>(c.kind)];
  if (c.kind == OpKind::kAttnDecode) {
    const DecodeKernel k = decode_kernel(c);
    if (k == DecodeKernel::kTensorCores) f = decode_tensor_cores_;
    if (k == DecodeKernel::kSharedPages)
      f = decode_shared_pages_;  // one launch over both classes (for_each_decode_attention)
  }
  fit::OpQuery q{c.work.bytes, c.work.flops, 0, 0, 0};
  // Every query is checked against its law's measured ranges (the main law of composite ops).
  auto priced = [&](const fit::OpFit* law, const fit::OpQuery& query) {
    note_range(c.kind, law, query);
    return us(law, query);
  };
  switch (c.kind) {
    case OpKind::kQkvProj:
    case OpKind::kOutProj:
    case OpKind::kMlpUp:
    case OpKind::kMlpDown:
    case OpKind::kLmHead: {
      // Calibrated from measured layers: GEMMs in the stream of a forward pass against alone.
      const double eff = profile_.gemm_in_layer ? profile_.gemm_in_layer->efficiency(static_cast<double>(c.m)) : 1.0;
      return priced(f, fit::OpQuery::gemm(c.m, c.n, c.k)) / eff * 1e-6;
    }
    case OpKind::kRopeRotate:
      return priced(c.rotate ? f : rope_only_, q) * 1e-6;
    case OpKind::kAllToAllQkv: {  // pack, all-to-all, unpack: the Ulysses stages as measured
      const fit::OpQuery buf{c.nccl_bytes, 0, 0, 0, 0}, rw{2 * c.nccl_bytes, 0, 0, 0, 0};
      return (us(pack_, rw) + priced(f, buf) + us(unpack_qkv_, rw)) * 1e-6;
    }
    case OpKind::kAllToAllOut: {
      const fit::OpQuery buf{c.nccl_bytes, 0, 0, 0, 0}, rw{2 * c.nccl_bytes, 0, 0, 0, 0};
      return (priced(f, buf) + us(unpack_out_, rw)) * 1e-6;
    }
    case OpKind::kAllReduce:
    case OpKind::kAllGather:
      return priced(f, fit::OpQuery{c.nccl_bytes, 0, 0, 0, 0}) * 1e-6;
    case OpKind::kKvAppend:  // alpha + bytes + (token, KV head) pairs, the pairs in the flops slot
      q.flops = c.m;
      return priced(f, q) * 1e-6;
    case OpKind::kIterationOverhead:  // a constant, plus us_per_seq per sequence when calibrated so
      q.seqs = static_cast<double>(c.seqs);
      return us(f, q) * 1e-6;
    case OpKind::kAttnPrefill:
    case OpKind::kAttnDecode:
      q.seqs = static_cast<double>(c.seqs), q.keys_mean = c.keys_mean, q.keys_max = c.keys_max;
      q.balanced = 1;  // the FDC balanced kernel
      q.padded_flops = c.tiles.padded_flops, q.block_elems = c.tiles.block_elems;
      q.longest_block_flops = c.tiles.longest_block_flops;
      if (c.kind == OpKind::kAttnPrefill) q.tokens = c.m;  // the batch's prompt rows, all sequences
      // The blocks' makespan over the SMs, computed for this batch per layer group (compute()).
      if (c.kind == OpKind::kAttnPrefill && f->prefill_schedule && c.layer)
        q.makespan = prefill_makespan_[static_cast<size_t>(c.layer - groups_.data())];
      q.stage_bytes = c.stage_bytes;
      // The tensor-core kernel of one width stages rows at 48 (96) where the others stage 64 (128).
      if (f == decode_tensor_cores_ && c.layer && c.layer->shard.mma_one_width > 0) {
        const int w = c.layer->shard.mma_one_width;
        q.stage_bytes *= static_cast<double>(w) / decode_stage_width(w);
      }
      // The balanced plan's units, estimated as the fit estimated them for its cases, with the
      // plan constants stored with the law; profiles without the term skip it.
      if (c.kind == OpKind::kAttnDecode && f->us_per_unit != 0 && f->decode_plan && c.layer) {
        const DecodeUnitEstimate u = estimate_decode_units(static_cast<double>(c.seqs), c.seq_keys_mean, c.seq_keys_max,
                                                           c.lo_share, c.layer->decode_head_bytes, *f->decode_plan);
        q.units = c.decode_class < 0 ? u.total() : c.decode_class == 0 ? u.hi : u.lo;
      }
      if (c.kind == OpKind::kAttnPrefill && profile_.attn_prefill_in_layer)  // as it runs in measured layers
        return priced(f, q) / profile_.attn_prefill_in_layer->efficiency(c.m) * 1e-6;
      return priced(f, q) * 1e-6;
    default:
      return priced(f, q) * 1e-6;
  }
}

template <bool kBreakdown>
double FittedCostModel::add(const OpCall& c, double total, OpBreakdown* bd) const {
  const double s = seconds(c);
  if constexpr (kBreakdown) {
    record(*bd, c, s);
    if (c.kind == OpKind::kAttnDecode) bd->decode_calls[static_cast<size_t>(decode_kernel(c))] += c.times;
  }
  return total + s * c.times;
}

void FittedCostModel::set_prefill_makespans(std::span<const SeqWork> seqs) const {
  const PrefillScheduleConstants& schedule = *law_[static_cast<size_t>(OpKind::kAttnPrefill)]->prefill_schedule;
  prefill_makespan_.resize(groups_.size());
  for (size_t i = 0; i < groups_.size(); ++i) {
    const LayerShard& shard = groups_[i].shard;
    size_t same = 0;  // an earlier group with the same heads and width, whose makespan this is
    while (same < i &&
           (groups_[same].shard.q_heads != shard.q_heads ||
            prefill_padded_width(groups_[same].shard.max_rank_hi) != prefill_padded_width(shard.max_rank_hi)))
      ++same;
    prefill_makespan_[i] =
        same < i ? prefill_makespan_[same]
                 : prefill_makespan_work(seqs, shard.q_heads, shard.max_rank_hi, schedule, makespan_scratch_);
  }
}

template <bool kBreakdown>
Nanos FittedCostModel::compute(const BatchTotals& b, std::span<const SeqWork> seqs, OpBreakdown* bd,
                               DecodeCache* cache) const {
  if (b.prefill_seqs > 0 && law_[static_cast<size_t>(OpKind::kAttnPrefill)]->prefill_schedule) {
    FDC_CHECK(seqs.size() == static_cast<size_t>(b.num_seqs),
              "prefill makespan: the batch lists " << seqs.size() << " sequences, its totals " << b.num_seqs);
    set_prefill_makespans(seqs);
  }
  double total = 0, overhead = 0;
  for_each_op(model_, par_, groups_, b, [&](const OpCall& c) {
    const double before = total;
    total = add<kBreakdown>(c, total, bd);
    if (c.kind == OpKind::kIterationOverhead) overhead += total - before;
  });
  // Decode attention last, as in the roofline: decode_time_shifted() resumes from the cached sum
  // of the rest with the same additions in the same order, so it gives the same bits.
  if constexpr (!kBreakdown) {
    if (cache) cache->rest_seconds = total, cache->valid = true;
  }
  for_each_decode_attention(
      groups_, b, [&](const OpCall& c) { total = add<kBreakdown>(c, total, bd); }, decode_shared_pages_ != nullptr);
  // A calibrated overhead's prefill term: the ops' time times the batch's share of prefill rows,
  // times prefill_scale (decode-only batches, which decode_time_shifted() prices, have none).
  const fit::OpFit* oh = law_[static_cast<size_t>(OpKind::kIterationOverhead)];
  if (oh->prefill_scale != 0 && b.prefill_tokens > 0) {
    const double extra = oh->prefill_scale * (total - overhead) * b.prefill_share();
    total += extra;
    if constexpr (kBreakdown) bd->seconds[static_cast<size_t>(OpKind::kIterationOverhead)] += extra;
  }
  return Nanos::from_seconds(total);
}

Nanos FittedCostModel::iteration_time(const Batch& batch) const {
  return compute<false>(batch.totals, batch.seqs, nullptr, nullptr);
}

Nanos FittedCostModel::iteration_time(const Batch& batch, OpBreakdown& breakdown) const {
  return compute<true>(batch.totals, batch.seqs, &breakdown, nullptr);
}

Nanos FittedCostModel::decode_time_shifted(const Batch& batch, int64_t extra_context) const {
  BatchTotals t = batch.totals;
  FDC_CHECK(t.prefill_seqs == 0, "decode_time_shifted on a batch with prefills");
  // Exactly the totals of the shifted batch: every sequence's keys grow by extra_context.
  t.decode_kv_tokens += t.decode_seqs * extra_context;
  t.decode_kv_max += extra_context;
  const bool hit = cache_.valid && cache_.num_seqs == t.num_seqs && cache_.new_tokens == t.new_tokens &&
                   cache_.logits_rows == t.logits_rows && cache_.decode_seqs == t.decode_seqs;
  if (!hit) {
    cache_ = DecodeCache{};
    cache_.num_seqs = t.num_seqs, cache_.new_tokens = t.new_tokens;
    cache_.logits_rows = t.logits_rows, cache_.decode_seqs = t.decode_seqs;
    return compute<false>(t, {}, nullptr, &cache_);
  }
  double total = cache_.rest_seconds;
  for_each_decode_attention(
      groups_, t, [&](const OpCall& c) { total = add<false>(c, total, nullptr); }, decode_shared_pages_ != nullptr);
  return Nanos::from_seconds(total);
}

std::string FittedCostModel::describe() const {
  std::ostringstream os;
  os << "fitted profile " << ref_.name << " (" << ref_.source << ", " << profile_.gpu << ")";
  if (profile_.extrapolated) {
    os << ", EXTRAPOLATED: derived from another GPU's measurements by spec-sheet ratios";
  } else if (!extrapolated_ops_.empty()) {
    os << ", extrapolated ops (not measured): ";
    for (size_t i = 0; i < extrapolated_ops_.size(); ++i) os << (i ? ", " : "") << extrapolated_ops_[i];
  } else {
    os << ", every op measured";
  }
  if (profile_.gemm_in_layer) os << "; GEMMs calibrated in measured layers";
  if (profile_.attn_prefill_in_layer) os << "; prefill attention calibrated in measured layers";
  if (profile_.elementwise_in_layer) os << "; element-wise ops calibrated in measured layers";
  if (!profile_.attn_decode_in_layer.empty()) os << "; decode attention calibrated in measured layers";
  return os.str();
}

}  // namespace fdc::costmodel
