// Cost model from a fitted profile (configs/profiles/<gpu>.json, docs/fit.md): the ops of a forward
// pass are those the roofline prices (forward_pass.h), each timed by the profile's law for it.
// A profile lacking an op the configuration needs is refused at construction, naming the profile
// and every missing op; ops the profile carries over rather than measured (derived profiles,
// roofline-derived attention, assumed iteration overhead) make the model report itself extrapolated.
#pragma once

#include <array>
#include <span>
#include <string>
#include <vector>

#include "costmodel/attention_dims.h"
#include "costmodel/cost_model.h"
#include "costmodel/fit/profile_fit.h"
#include "costmodel/forward_pass.h"
#include "costmodel/model_spec.h"
#include "costmodel/prefill_makespan.h"

namespace fdc::costmodel {

// Which profile, as named in the config, and the file or embedded config it was read from.
struct ProfileRef {
  std::string name;
  std::string source;
};

// The profile op holding the per-iteration overhead calibrated for one model and parallelism
// ("iteration_overhead/<model>/tp<t>sp<s>"), and for policies with token classes
// (".../classes": their iterations classify prompts and plan two-class decode units); the cost
// model prefers the most specific one the profile has, then "iteration_overhead".
std::string overhead_op(const std::string& model, ParallelConfig par, bool token_classes = false);

class FittedCostModel final : public CostModel {
 public:
  // Throws InputError when the profile lacks an op this model, policy and parallelism need.
  FittedCostModel(const ModelSpec& model, const ModelDims& dims, ParallelConfig par, fit::FittedProfile profile,
                  ProfileRef ref);

  Nanos iteration_time(const Batch& batch) const override;
  Nanos iteration_time(const Batch& batch, OpBreakdown& breakdown) const override;
  Nanos decode_time_shifted(const Batch& batch, int64_t extra_context) const override;
  std::string describe() const override;
  bool extrapolated() const override { return profile_.extrapolated || !extrapolated_ops_.empty(); }
  std::vector<RangeUse> outside_measured() const override;

  // The profile ops this configuration uses that were not measured on this GPU.
  const std::vector<std::string>& extrapolated_ops() const { return extrapolated_ops_; }
  // Profile op names this configuration uses, in a stable order.
  const std::vector<std::string>& used_ops() const { return used_ops_; }
  const ProfileRef& profile_ref() const { return ref_; }
  bool token_classes() const { return token_classes_; }
  const fit::FittedProfile& profile() const { return profile_; }

 private:
  struct DecodeCache {
    bool valid = false;
    int64_t num_seqs = 0, new_tokens = 0, logits_rows = 0, decode_seqs = 0;
    double rest_seconds = 0;
  };
  // `seqs`: the batch's sequences, which the prefill law's makespan needs when the batch has prefill
  // chunks (empty for the shifted decode batches, which have none).
  template <bool kBreakdown>
  Nanos compute(const BatchTotals& b, std::span<const SeqWork> seqs, OpBreakdown* bd, DecodeCache* cache) const;
  // The prefill law's makespan of `seqs` for every layer group, into prefill_makespan_ (groups of
  // equal q heads and padded width share one computation).
  void set_prefill_makespans(std::span<const SeqWork> seqs) const;
  template <bool kBreakdown>
  double add(const OpCall& c, double total, OpBreakdown* bd) const;
  double seconds(const OpCall& c) const;      // law_seconds, calibrated in measured layers where the profile is
  DecodeKernel decode_kernel(const OpCall& c) const;  // the kernel (and law) of a decode attention call
  double law_seconds(const OpCall& c) const;  // the op's law (GEMMs and prefill attention: with their calibration)
  double us(const fit::OpFit* f, const fit::OpQuery& q) const { return fit::predict_time_us(*f, q); }
  // Counts the query of op `k` against its law's measured ranges.
  void note_range(OpKind k, const fit::OpFit* f, const fit::OpQuery& q) const;

  ModelSpec model_;
  ParallelConfig par_;
  fit::FittedProfile profile_;
  ProfileRef ref_;
  std::vector<LayerShapes> groups_;
  // Laws by op kind (null where the configuration never runs the op).
  std::array<const fit::OpFit*, kNumOpKinds> law_{};
  bool token_classes_ = false;             // some layer keeps token classes (prompts are classified)
  const fit::OpFit* rope_only_ = nullptr;  // RoPE without the rotation (full-rank layers)
  // Decode attention of layers the engine runs on the tensor-core kernel (LayerShard::
  // decode_tensor_cores); null when the profile has no attn_decode/tensor_cores law, and such layers
  // are then priced with attn_decode, the CUDA-core kernel's law.
  const fit::OpFit* decode_tensor_cores_ = nullptr;
  // Decode attention of layers with token classes, measured on the engine's shared pages
  // (attn_decode/shared_pages): such layers are then priced as one launch over both classes; null
  // when the profile has no such law (they are then two passes of attn_decode, forward_pass.h).
  const fit::OpFit* decode_shared_pages_ = nullptr;
  // Per decode kernel: its calls' extra time inside a layer (the profile's attn_decode_in_layer), s.
  std::array<double, kNumDecodeKernels> decode_extra_s_{};
  const fit::OpFit *pack_ = nullptr, *unpack_qkv_ = nullptr, *unpack_out_ = nullptr;  // Ulysses stages
  std::vector<std::string> used_ops_, extrapolated_ops_;
  mutable DecodeCache cache_;  // one model serves one simulator (not shared across threads)
  // attention_makespan: per layer group, the current batch's makespan work, and the buffers it is
  // computed in (grown once, reused every iteration).
  mutable std::vector<PrefillMakespanWork> prefill_makespan_;
  mutable PrefillMakespanScratch makespan_scratch_;
  // Per op kind: queries, those outside the measured ranges, and the first one's reason.
  mutable std::array<int64_t, kNumOpKinds> queries_{}, outside_{};
  mutable std::array<std::string, kNumOpKinds> first_outside_{};
};

}  // namespace fdc::costmodel
