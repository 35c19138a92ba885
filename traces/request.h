// What the simulator consumes: one request at a time, in arrival order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/time.h"

namespace fdc::traces {

struct RequestSpec {
  uint64_t id = 0;            // 0, 1, 2, ... in arrival order
  Nanos arrival;              // arrival time since the run start
  int32_t prompt_tokens = 0;  // >= 1
  int32_t output_tokens = 0;  // >= 1
};

// Requests in non-decreasing arrival order, produced lazily: generated arrivals are never held as a
// whole (a million requests need no million-entry vector); a table read from a trace file is.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  // The next request, or nullopt once the workload is exhausted (and on every later call).
  virtual std::optional<RequestSpec> next() = 0;
  // One line for reports, e.g. "sharegpt (embedded quantiles), poisson 12.5 req/s, 100000 requests".
  // Counts of clipped requests are those produced so far.
  virtual std::string describe() const = 0;
};

}  // namespace fdc::traces
