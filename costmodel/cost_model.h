// The cost model interface: the time of one iteration of one replica. The simulator calls only
// this; the roofline (v0) and fitted profiles implement it, so a new model replaces the old one
// without touching the simulator.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/time.h"
#include "costmodel/batch.h"
#include "costmodel/ops.h"

namespace fdc::costmodel {

// How often an op was priced outside what its law was measured on (a fitted profile's grid).
struct RangeUse {
  std::string op;          // the op kind (costmodel::op_name)
  int64_t queries = 0;     // times the op was priced
  int64_t outside = 0;     // of those, outside the measured ranges
  std::string example;     // the first such query: which range it left
};

class CostModel {
 public:
  virtual ~CostModel() = default;
  // Time of one forward pass over `batch` (not empty) on one replica.
  virtual Nanos iteration_time(const Batch& batch) const = 0;
  // Same, filling a per-op breakdown (slower; for reports and traces).
  virtual Nanos iteration_time(const Batch& batch, OpBreakdown& breakdown) const = 0;
  // Time of a decode-only `batch` with every sequence's context longer by `extra_context` tokens:
  // the later iterations of a steady decode run. The default builds the shifted batch; models
  // whose forms need only sums override it with an O(1) version.
  virtual Nanos decode_time_shifted(const Batch& batch, int64_t extra_context) const;
  // One line for reports: which model, which profile, whether extrapolated.
  virtual std::string describe() const = 0;
  // True when the figures come from a spec sheet rather than measurements on this GPU.
  virtual bool extrapolated() const = 0;
  // Ops priced outside their measured ranges so far (fitted profiles; empty for the roofline,
  // whose laws have no measured grid), one entry per op that was.
  virtual std::vector<RangeUse> outside_measured() const { return {}; }
};

}  // namespace fdc::costmodel
