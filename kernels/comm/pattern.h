// Inputs whose collective results are exactly predictable (nccl-tests style): every value is a
// small integer, exact in bf16 and fp16, and so is every sum of up to 8 ranks' values, so the
// received or reduced tensors must equal these functions bit for bit. Host and device compute them
// with the same code.
#pragma once

#include <cstdint>

#include "kernels/common/host_device.h"

namespace fdc::kernels::comm {

// Value at (row, col) of a pattern matrix; integers in [-120, 120]. row, col >= 0.
FDC_HOST_DEVICE float matrix_pattern(int64_t row, int64_t col, int salt) {
  return static_cast<float>((row * 131 + col * 7 + static_cast<int64_t>(salt) * 17) % 241) - 120.f;
}
// All-reduce input of `rank` at element i (integers in [-3, 3]) and the sum over `ranks` ranks.
FDC_HOST_DEVICE float allreduce_input(int rank, int64_t i) {
  return static_cast<float>((i + 3 * static_cast<int64_t>(rank)) % 7) - 3.f;
}
FDC_HOST_DEVICE float allreduce_sum(int ranks, int64_t i) {
  float s = 0.f;
  for (int r = 0; r < ranks; ++r) s += allreduce_input(r, i);
  return s;
}

// A pattern region: rows x cols elements at buf[r * ld + c] holding matrix_pattern(row0 + r,
// col0 + c, salt).
struct PatternRegion {
  int64_t rows = 0, cols = 0, ld = 0;
  int64_t row0 = 0, col0 = 0;
  int salt = 0;
};

}  // namespace fdc::kernels::comm
