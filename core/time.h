// Simulated time: a strong integer-nanosecond type. Events are ordered by (time, sequence number),
// so integer time keeps runs exact and deterministic; doubles appear only at the edges (config in
// ms/us, reports in ms/s).
#pragma once

#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>

namespace fdc {

class Nanos {
 public:
  constexpr Nanos() = default;
  constexpr explicit Nanos(int64_t ns) : ns_(ns) {}

  static constexpr Nanos zero() { return Nanos(0); }
  static constexpr Nanos max() { return Nanos(std::numeric_limits<int64_t>::max()); }
  // Rounds to the nearest nanosecond.
  static Nanos from_seconds(double s) { return Nanos(static_cast<int64_t>(std::llround(s * 1e9))); }
  static Nanos from_ms(double ms) { return Nanos(static_cast<int64_t>(std::llround(ms * 1e6))); }
  static Nanos from_us(double us) { return Nanos(static_cast<int64_t>(std::llround(us * 1e3))); }

  constexpr int64_t ns() const { return ns_; }
  constexpr double us() const { return static_cast<double>(ns_) * 1e-3; }
  constexpr double ms() const { return static_cast<double>(ns_) * 1e-6; }
  constexpr double seconds() const { return static_cast<double>(ns_) * 1e-9; }

  constexpr Nanos& operator+=(Nanos o) {
    ns_ += o.ns_;
    return *this;
  }
  constexpr Nanos& operator-=(Nanos o) {
    ns_ -= o.ns_;
    return *this;
  }
  friend constexpr Nanos operator+(Nanos a, Nanos b) { return Nanos(a.ns_ + b.ns_); }
  friend constexpr Nanos operator-(Nanos a, Nanos b) { return Nanos(a.ns_ - b.ns_); }
  friend constexpr Nanos operator*(Nanos a, int64_t k) { return Nanos(a.ns_ * k); }
  friend constexpr auto operator<=>(Nanos a, Nanos b) = default;

 private:
  int64_t ns_ = 0;
};

}  // namespace fdc
