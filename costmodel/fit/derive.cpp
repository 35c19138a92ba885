#include "costmodel/fit/derive.h"

#include <sstream>
#include <utility>

#include "core/error.h"

namespace fdc::fit {
namespace {

bool is_link_op(const std::string& op) {
  return op.rfind("all_to_all/", 0) == 0 || op.rfind("all_reduce/", 0) == 0 || op.rfind("all_gather/", 0) == 0 ||
         op.rfind("send_recv/", 0) == 0 || op.rfind("ulysses/a2a_", 0) == 0;
}

Json spec_json(const SpecSheet& s) {
  return {{"hardware", s.hardware},
          {"gpu", s.gpu},
          {"bf16_dense_tflops", s.bf16_dense_tflops},
          {"hbm_bandwidth_gb_per_s", s.hbm_gb_per_s},
          {"nvlink_bandwidth_gb_per_s", s.nvlink_gb_per_s}};
}

}  // namespace

FittedProfile derive_profile(const FittedProfile& from, const std::string& from_label, const SpecSheet& from_spec,
                             const SpecSheet& to_spec) {
  for (const SpecSheet* s : {&from_spec, &to_spec})
    FDC_INPUT_CHECK(s->bf16_dense_tflops > 0 && s->hbm_gb_per_s > 0 && s->nvlink_gb_per_s > 0,
                    "derive: hardware '" << s->hardware
                                         << "' lacks a positive bf16_dense_tflops, "
                                            "hbm_bandwidth_gb_per_s or nvlink_bandwidth_gb_per_s");
  const double rf = to_spec.bf16_dense_tflops / from_spec.bf16_dense_tflops;
  const double rb = to_spec.hbm_gb_per_s / from_spec.hbm_gb_per_s;
  const double rl = to_spec.nvlink_gb_per_s / from_spec.nvlink_gb_per_s;
  FittedProfile p;
  p.gpu = to_spec.gpu;
  p.sources = from.sources;
  p.peaks = Peaks{from.peaks.tflops * rf, from.peaks.gbps * rb};
  p.peaks_source = "the measured peaks of " + from_label + " times the spec-sheet ratios";
  p.extrapolated = true;
  std::ostringstream method;
  method << "every rate of " << from_label << " (" << from.gpu << ") scaled by the spec-sheet ratio " << to_spec.gpu
         << " / " << from_spec.gpu << ": FLOP rates x " << rf << ", memory x " << rb << ", NVLink x " << rl
         << "; constant terms kept; the measured efficiencies (share of peak) carry over unchanged";
  p.derived = {{"from", from_label},
               {"from_gpu", from.gpu},
               {"from_spec", spec_json(from_spec)},
               {"to_spec", spec_json(to_spec)},
               {"ratios", {{"flops", rf}, {"memory", rb}, {"nvlink", rl}}},
               {"method", method.str()}};
  for (const auto& [op, src] : from.ops) {
    if (op.find("/inter_node") != std::string::npos) continue;
    OpFit f = src;
    const double r = is_link_op(op) ? rl : rb;
    switch (f.base_form()) {  // a neighbour form's rates are its base law's; the errors carry over
      case FitForm::kGemmRooflineEfficiency:
      case FitForm::kGemmRooflineGrid:
      case FitForm::kRooflineDerived:
        f.peak_tflops *= rf, f.peak_gbps *= rb;
        break;
      case FitForm::kAlphaBeta:
      case FitForm::kAlphaBetaEfficiency:
        f.us_per_byte /= r, f.us_per_flop /= rf;
        break;
      case FitForm::kAttentionLinear:
      case FitForm::kAttentionLinearEfficiency:
      case FitForm::kAttentionNeighbours:  // not a base (base_form), listed for the switch's sake
      case FitForm::kAttentionPrefillNeighbours:
        f.us_per_byte /= rb, f.us_per_flop /= rf, f.us_per_stage_byte /= rb;
        f.us_per_straggler /= f.straggler_on_flops ? rf : rb;
        f.us_per_straggler_unbalanced /= f.straggler_on_flops ? rf : rb;
        break;
      case FitForm::kAttentionTiles:  // tiles run on the tensor cores; a block's Q tile is a load
      case FitForm::kAttentionMakespan:
        f.us_per_padded_flop /= rf, f.us_per_longest_flop /= rf, f.us_per_flop /= rf, f.us_per_block_elem /= rb;
        f.us_per_makespan_flop_w64 /= rf, f.us_per_makespan_flop_w128 /= rf;
        break;
      case FitForm::kConstant:
        break;
    }
    std::ostringstream note;
    note << "derived for " << to_spec.gpu << " from " << from_label << " " << op << " (" << from.gpu
         << ") by the spec-sheet ratios";
    if (src.held_out.median_ape_pct) note << "; that law held out at " << *src.held_out.median_ape_pct << "% median";
    if (src.extrapolated) note << "; itself " << src.note;
    if (f.decode_plan && f.us_per_unit != 0)
      note << "; its plan's units estimated with the measured GPU's " << f.decode_plan->num_sms << " SMs";
    if (f.prefill_schedule)
      note << "; its blocks' makespan scheduled over the measured GPU's " << f.prefill_schedule->num_sms << " SMs";
    f.extrapolated = true;
    f.note = note.str();
    f.held_out = {"none (derived, not measured)", 0, std::nullopt, std::nullopt, {}};
    f.held_out_balanced.reset();
    f.candidates.clear();
    p.ops[op] = f;
  }
  // In-layer calibrations are shares of the isolated time: carried over as measured there.
  for (auto [mine, theirs] : {std::pair{&p.gemm_in_layer, &from.gemm_in_layer},
                              std::pair{&p.attn_prefill_in_layer, &from.attn_prefill_in_layer},
                              std::pair{&p.elementwise_in_layer, &from.elementwise_in_layer}}) {
    if (!*theirs) continue;
    *mine = *theirs;
    (*mine)->note = "carried over unchanged from " + from_label + " (" + from.gpu + "): " + (*theirs)->note;
    (*mine)->held_out = {"none (carried over, not measured)", 0, std::nullopt, std::nullopt, {}};
  }
  p.attn_decode_in_layer = from.attn_decode_in_layer;
  for (auto& [law, o] : p.attn_decode_in_layer) {
    o.note = "carried over unchanged from " + from_label + " (" + from.gpu + "): " + o.note;
    o.held_out = {"none (carried over, not measured)", 0, std::nullopt, std::nullopt, {}};
  }
  return p;
}

}  // namespace fdc::fit
