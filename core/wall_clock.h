// The wall clock, for provenance and default names only (simulated time is core/time.h).
#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace fdc {

// The current UTC time formatted by strftime (default ISO 8601, e.g. 2026-11-28T01:10:24Z).
inline std::string utc_now(const char* format = "%Y-%m-%dT%H:%M:%SZ") {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

}  // namespace fdc
