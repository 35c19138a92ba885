// Arrival-time generators. Each produces non-decreasing integer-nanosecond times lazily; the first
// request of every process arrives at t = 0 and later ones follow the process's gaps, so a run
// starts with work instead of an idle first gap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/rng.h"
#include "core/time.h"
#include "traces/trace_table.h"

namespace fdc::traces {

class ArrivalProcess {
 public:
  virtual ~ArrivalProcess() = default;
  virtual Nanos next() = 0;                  // arrival time of the next request
  virtual std::string describe() const = 0;  // e.g. "poisson 12.5 req/s"
};

// Exponential gaps with mean 1/rate (coefficient of variation 1).
class PoissonArrivals final : public ArrivalProcess {
 public:
  PoissonArrivals(double rate_per_s, Rng rng);
  Nanos next() override;
  std::string describe() const override;

 private:
  double rate_per_s_;
  Rng rng_;
  double t_ns_ = 0.0;  // exact running time; each arrival is this rounded to the nanosecond
  bool started_ = false;
};

// Gamma gaps with mean 1/rate and coefficient of variation cv (shape 1/cv^2): cv > 1 is burstier
// than Poisson, cv < 1 more regular, cv = 1 is Poisson.
class GammaArrivals final : public ArrivalProcess {
 public:
  GammaArrivals(double rate_per_s, double cv, Rng rng);
  Nanos next() override;
  std::string describe() const override;

 private:
  double rate_per_s_;
  double cv_;
  Rng rng_;
  double t_ns_ = 0.0;
  bool started_ = false;
};

// Request i arrives at round(i * 1e9 / rate) ns: exact gaps, no drift over a long run.
class FixedRateArrivals final : public ArrivalProcess {
 public:
  explicit FixedRateArrivals(double rate_per_s);
  Nanos next() override;
  std::string describe() const override;

 private:
  double rate_per_s_;
  int64_t index_ = 0;
};

// Every request at t = 0 (offline throughput runs, tests).
class BurstArrivals final : public ArrivalProcess {
 public:
  Nanos next() override { return Nanos::zero(); }
  std::string describe() const override { return "burst (all at t=0)"; }
};

// Replays a trace's timestamps: arrival_i = (t_i - t_0) * time_scale, rounded to the nanosecond.
// time_scale multiplies every gap: 0.5 replays the trace twice as fast, 2 at half speed.
class TraceArrivals final : public ArrivalProcess {
 public:
  TraceArrivals(std::shared_ptr<const TraceTable> table, double time_scale);
  Nanos next() override;  // past the last row: an internal error (the source stops before)
  std::string describe() const override;

 private:
  std::shared_ptr<const TraceTable> table_;
  double time_scale_;
  size_t index_ = 0;
};

// "12.5" rather than "12.500000": shortest text that reads back as the same double.
std::string format_number(double x);

}  // namespace fdc::traces
