// A profile for a GPU nobody measured (A100 for p4de): the laws of a measured GPU with every rate
// scaled by the ratio of the two spec sheets, so each measured efficiency (share of peak) carries
// over. Every op of the result is flagged extrapolated and says how it was derived.
#pragma once

#include <string>

#include "costmodel/fit/profile_fit.h"

namespace fdc::fit {

// The spec-sheet figures a derivation scales by (configs/hardware/*.json).
struct SpecSheet {
  std::string hardware;  // config name, e.g. "p4de"
  std::string gpu;       // e.g. "A100-SXM4-80GB"
  double bf16_dense_tflops = 0, hbm_gb_per_s = 0, nvlink_gb_per_s = 0;
};

// FLOP rates scale by to.tflops / from.tflops, memory rates by the HBM ratio, link rates (all-to-all,
// all-reduce, all-gather, Ulysses all-to-alls) by the NVLink ratio; constant terms (alpha, per
// sequence, iteration overhead) are kept. Ops between servers (inter_node) are left out: no spec
// sheet figure here scales them. `from_label` names the source profile in the result.
FittedProfile derive_profile(const FittedProfile& from, const std::string& from_label, const SpecSheet& from_spec,
                             const SpecSheet& to_spec);

}  // namespace fdc::fit
