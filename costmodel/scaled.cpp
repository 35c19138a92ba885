#include "costmodel/scaled.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace fdc::costmodel {

ScaledCostModel::ScaledCostModel(std::unique_ptr<CostModel> inner, double scale)
    : inner_(std::move(inner)), scale_(scale) {
  if (!inner_) throw std::invalid_argument("ScaledCostModel: no cost model to scale");
  if (!(scale > 0) || !std::isfinite(scale))
    throw std::invalid_argument("ScaledCostModel: the scale must be a positive finite number");
}

Nanos ScaledCostModel::scaled(Nanos t) const {
  return Nanos(static_cast<int64_t>(std::llround(static_cast<double>(t.ns()) * scale_)));
}

Nanos ScaledCostModel::iteration_time(const Batch& batch) const { return scaled(inner_->iteration_time(batch)); }

Nanos ScaledCostModel::iteration_time(const Batch& batch, OpBreakdown& breakdown) const {
  const Nanos t = inner_->iteration_time(batch, breakdown);
  for (double& s : breakdown.seconds) s *= scale_;
  return scaled(t);
}

Nanos ScaledCostModel::decode_time_shifted(const Batch& batch, int64_t extra_context) const {
  return scaled(inner_->decode_time_shifted(batch, extra_context));
}

std::string ScaledCostModel::describe() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", scale_);
  return inner_->describe() + ", every iteration x " + buf + " (costmodel.time_scale)";
}

std::unique_ptr<CostModel> scale_cost_model(std::unique_ptr<CostModel> inner, double scale) {
  if (scale == 1.0) return inner;
  return std::make_unique<ScaledCostModel>(std::move(inner), scale);
}

}  // namespace fdc::costmodel
