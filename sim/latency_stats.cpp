#include "sim/latency_stats.h"

#include <algorithm>
#include <cmath>

namespace fdc::sim {

namespace {
constexpr double kLo = 1e-7, kHi = 1e5;
constexpr unsigned kBins = 200 * 12;  // 200 per decade over 12 decades
}  // namespace

LatencyStats::LatencyStats()
    : hist_(boost::histogram::make_histogram_with(std::vector<double>(), Axis(kBins, kLo, kHi))) {}

void LatencyStats::add(Nanos value, uint64_t count) {
  if (count == 0) return;
  const int64_t ns = value.ns();
  if (count_ == 0) {
    min_ns_ = max_ns_ = ns;
  } else {
    min_ns_ = std::min(min_ns_, ns);
    max_ns_ = std::max(max_ns_, ns);
  }
  count_ += count;
  sum_ns_ += ns * static_cast<int64_t>(count);
  hist_(std::max(value.seconds(), kLo * 0.5), boost::histogram::weight(static_cast<double>(count)));
}

double LatencyStats::quantile(double q) const {
  if (count_ == 0) return 0.0;
  const double target = q * static_cast<double>(count_);
  double cum = 0;
  const auto& axis = hist_.axis();
  for (int i = -1; i <= static_cast<int>(axis.size()); ++i) {
    const double c = hist_.at(i);
    if (c <= 0) continue;
    if (cum + c >= target) {
      double v;
      if (i < 0) {
        v = min();
      } else if (i >= static_cast<int>(axis.size())) {
        v = max();
      } else {
        const double lo = axis.bin(i).lower(), hi = axis.bin(i).upper();
        const double frac = c > 0 ? (target - cum) / c : 0.0;
        v = lo * std::pow(hi / lo, std::clamp(frac, 0.0, 1.0));
      }
      return std::clamp(v, min(), max());
    }
    cum += c;
  }
  return max();
}

Json LatencyStats::to_json_ms() const {
  Json j = Json::object();
  j["count"] = count_;
  j["mean_ms"] = mean() * 1e3;
  j["p50_ms"] = quantile(0.50) * 1e3;
  j["p90_ms"] = quantile(0.90) * 1e3;
  j["p99_ms"] = quantile(0.99) * 1e3;
  j["max_ms"] = max() * 1e3;
  return j;
}

}  // namespace fdc::sim
