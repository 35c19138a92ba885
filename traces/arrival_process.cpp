#include "traces/arrival_process.h"

#include <cmath>
#include <sstream>

#include <boost/random/exponential_distribution.hpp>
#include <boost/random/gamma_distribution.hpp>

#include "core/error.h"

namespace fdc::traces {

std::string format_number(double x) {
  std::ostringstream os;
  os.precision(15);
  os << x;
  return os.str();
}

namespace {
Nanos round_ns(double t_ns) { return Nanos(static_cast<int64_t>(std::llround(t_ns))); }
}  // namespace

PoissonArrivals::PoissonArrivals(double rate_per_s, Rng rng) : rate_per_s_(rate_per_s), rng_(rng) {
  FDC_CHECK(rate_per_s > 0 && std::isfinite(rate_per_s), "poisson rate " << rate_per_s);
}

Nanos PoissonArrivals::next() {
  if (started_) {
    boost::random::exponential_distribution<double> gap_s(rate_per_s_);
    t_ns_ += gap_s(rng_) * 1e9;
  }
  started_ = true;
  return round_ns(t_ns_);
}

std::string PoissonArrivals::describe() const { return "poisson " + format_number(rate_per_s_) + " req/s"; }

GammaArrivals::GammaArrivals(double rate_per_s, double cv, Rng rng) : rate_per_s_(rate_per_s), cv_(cv), rng_(rng) {
  FDC_CHECK(rate_per_s > 0 && std::isfinite(rate_per_s) && cv > 0 && std::isfinite(cv),
            "gamma rate " << rate_per_s << " cv " << cv);
}

Nanos GammaArrivals::next() {
  if (started_) {
    const double shape = 1.0 / (cv_ * cv_);
    const double scale_s = (1.0 / rate_per_s_) / shape;  // mean gap = shape * scale = 1/rate
    boost::random::gamma_distribution<double> gap_s(shape, scale_s);
    t_ns_ += gap_s(rng_) * 1e9;
  }
  started_ = true;
  return round_ns(t_ns_);
}

std::string GammaArrivals::describe() const {
  return "gamma " + format_number(rate_per_s_) + " req/s cv " + format_number(cv_);
}

FixedRateArrivals::FixedRateArrivals(double rate_per_s) : rate_per_s_(rate_per_s) {
  FDC_CHECK(rate_per_s > 0 && std::isfinite(rate_per_s), "fixed rate " << rate_per_s);
}

Nanos FixedRateArrivals::next() { return round_ns(static_cast<double>(index_++) * 1e9 / rate_per_s_); }

std::string FixedRateArrivals::describe() const { return "fixed rate " + format_number(rate_per_s_) + " req/s"; }

TraceArrivals::TraceArrivals(std::shared_ptr<const TraceTable> table, double time_scale)
    : table_(std::move(table)), time_scale_(time_scale) {
  FDC_CHECK(table_ && table_->has_timestamps(), "trace arrivals need a timestamped trace");
  FDC_CHECK(time_scale > 0 && std::isfinite(time_scale), "time scale " << time_scale);
}

Nanos TraceArrivals::next() {
  FDC_CHECK(index_ < table_->timestamps_ns.size(), "trace arrivals past the end of " << table_->path);
  const int64_t gap = table_->timestamps_ns[index_++] - table_->timestamps_ns.front();
  if (time_scale_ == 1.0) return Nanos(gap);
  return round_ns(static_cast<double>(gap) * time_scale_);
}

std::string TraceArrivals::describe() const {
  return "trace timestamps" + (time_scale_ == 1.0 ? std::string() : " x" + format_number(time_scale_) + " time scale");
}

}  // namespace fdc::traces
