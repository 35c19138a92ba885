// Streaming latency statistics: exact count, sum (integer nanoseconds, so the result does not
// depend on the order samples arrive in), min and max, and percentiles from a
// log-spaced histogram (boost::histogram) of 200 bins per decade from 100 ns to 100,000 s, so a
// percentile is within 0.6% of the true value and memory stays fixed however many samples come.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <boost/histogram.hpp>

#include "core/config.h"
#include "core/time.h"

namespace fdc::sim {

class LatencyStats {
 public:
  LatencyStats();
  void add(Nanos value, uint64_t count = 1);

  uint64_t count() const { return count_; }
  // In seconds.
  double mean() const { return count_ ? static_cast<double>(sum_ns_) * 1e-9 / static_cast<double>(count_) : 0.0; }
  double min() const { return count_ ? static_cast<double>(min_ns_) * 1e-9 : 0.0; }
  double max() const { return count_ ? static_cast<double>(max_ns_) * 1e-9 : 0.0; }
  // q in [0, 1]; geometric interpolation inside the bin, clamped to [min, max]. 0 when empty.
  double quantile(double q) const;
  // {"count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"}.
  Json to_json_ms() const;

 private:
  using Axis = boost::histogram::axis::regular<double, boost::histogram::axis::transform::log>;
  using Hist = decltype(boost::histogram::make_histogram_with(std::vector<double>(), std::declval<Axis>()));
  Hist hist_;
  uint64_t count_ = 0;
  int64_t sum_ns_ = 0, min_ns_ = 0, max_ns_ = 0;
};

}  // namespace fdc::sim
