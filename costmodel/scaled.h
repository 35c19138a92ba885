// A cost model whose every iteration takes `scale` times another's: the what-if "these GPUs (or
// this engine) run a few percent slower or faster than the profile says" (costmodel.time_scale),
// and the prediction band of `fdcsim simulate / validate / max-rate --band`, which asks how far a
// run's latencies move when every iteration is off by the cost model's own error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "costmodel/cost_model.h"

namespace fdc::costmodel {

class ScaledCostModel final : public CostModel {
 public:
  // scale > 0.
  ScaledCostModel(std::unique_ptr<CostModel> inner, double scale);

  Nanos iteration_time(const Batch& batch) const override;
  Nanos iteration_time(const Batch& batch, OpBreakdown& breakdown) const override;
  Nanos decode_time_shifted(const Batch& batch, int64_t extra_context) const override;
  std::string describe() const override;
  bool extrapolated() const override { return inner_->extrapolated(); }
  std::vector<RangeUse> outside_measured() const override { return inner_->outside_measured(); }

  const CostModel& inner() const { return *inner_; }
  double scale() const { return scale_; }

 private:
  Nanos scaled(Nanos t) const;
  std::unique_ptr<CostModel> inner_;
  double scale_;
};

// `inner` unchanged when scale is exactly 1, else wrapped.
std::unique_ptr<CostModel> scale_cost_model(std::unique_ptr<CostModel> inner, double scale);

}  // namespace fdc::costmodel
