// Device side of the Ulysses layout (segment copies: pack / unpack) and of the exactly-predictable
// collective inputs (fill and check kernels). 16-bit elements (bf16 / fp16).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <vector>

#include "kernels/comm/pattern.h"
#include "kernels/comm/ulysses_plan.h"
#include "kernels/common/device_buffer.h"
#include "kernels/common/dtype.h"

namespace fdc::kernels::comm {

using BufPtrs = std::array<void*, kNumBufs>;  // device pointer of each Buf (null when unused)

// A segment list on the device, executed by one kernel launch (every offset, ld and width must be
// a multiple of 8 elements: 16-byte vectors; refused otherwise).
class DeviceSegments {
 public:
  explicit DeviceSegments(const std::vector<Segment>& segs);
  void launch(const BufPtrs& bufs, cudaStream_t stream) const;
  int64_t bytes_moved() const { return 2 * 2 * elems_; }  // 16-bit elements, read + written

 private:
  DeviceBuffer<Segment> segs_;
  int num_ = 0;
  int64_t max_vecs_ = 0, elems_ = 0;
};

// The same copy from a segment list already on the device (e.g. inside a per-iteration upload):
// check_segments validates the host list and returns its largest segment in 16-byte vectors.
int64_t check_segments(const std::vector<Segment>& segs);
void launch_segments(const Segment* dev_segs, int num, int64_t max_vecs, const BufPtrs& bufs, cudaStream_t stream);

// Pattern fill and check (check adds the number of mismatching elements to *count, on the device;
// NaN never matches).
void fill_pattern(void* buf, DType t, const PatternRegion& r, cudaStream_t stream);
void count_pattern_mismatches(const void* buf, DType t, const PatternRegion& r, unsigned long long* count,
                              cudaStream_t stream);
void fill_allreduce_input(void* buf, DType t, int64_t count, int rank, cudaStream_t stream);
void count_allreduce_mismatches(const void* buf, DType t, int64_t count, int ranks, unsigned long long* mismatches,
                                cudaStream_t stream);

}  // namespace fdc::kernels::comm
