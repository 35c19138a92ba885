#include "kernels/ops/rotation.h"

#include "core/error.h"

namespace fdc::kernels::ops {
namespace {

int64_t checked_rank_sum(const std::vector<HeadRotation>& rot, int head_dim) {
  int64_t sum = 0;
  for (size_t h = 0; h < rot.size(); ++h) {
    FDC_INPUT_CHECK(rot[h].rank >= 1 && rot[h].rank <= head_dim &&
                        rot[h].r.size() == static_cast<size_t>(head_dim) * static_cast<size_t>(rot[h].rank),
                    "rotation of head " << h << ": rank " << rot[h].rank << " with " << rot[h].r.size()
                                        << " values (expected a head_dim x rank matrix, head_dim " << head_dim << ")");
    sum += rot[h].rank;
  }
  return sum;
}

}  // namespace

std::vector<float> absorb_input_rotation(const std::vector<float>& w, int64_t in_features, int head_dim,
                                         const std::vector<HeadRotation>& rot) {
  const int64_t rows = checked_rank_sum(rot, head_dim);
  const auto heads = static_cast<int64_t>(rot.size());
  FDC_INPUT_CHECK(static_cast<int64_t>(w.size()) == heads * head_dim * in_features,
                  "absorb_input_rotation: weights hold " << w.size() << " values, expected " << heads << " heads x "
                                                         << head_dim << " x " << in_features);
  std::vector<float> out(static_cast<size_t>(rows * in_features), 0.f);
  int64_t row0 = 0;
  for (int64_t h = 0; h < heads; ++h) {
    const HeadRotation& R = rot[static_cast<size_t>(h)];
    for (int j = 0; j < R.rank; ++j)
      for (int64_t c = 0; c < in_features; ++c) {
        double acc = 0;
        for (int i = 0; i < head_dim; ++i)
          acc += static_cast<double>(R.r[static_cast<size_t>(i) * R.rank + j]) *
                 w[static_cast<size_t>((h * head_dim + i) * in_features + c)];
        out[static_cast<size_t>((row0 + j) * in_features + c)] = static_cast<float>(acc);
      }
    row0 += R.rank;
  }
  return out;
}

std::vector<float> absorb_output_rotation(const std::vector<float>& w_o, int64_t out_features, int head_dim,
                                          const std::vector<HeadRotation>& rot) {
  const int64_t cols = checked_rank_sum(rot, head_dim);
  const auto heads = static_cast<int64_t>(rot.size());
  const int64_t in_cols = heads * head_dim;
  FDC_INPUT_CHECK(static_cast<int64_t>(w_o.size()) == out_features * in_cols,
                  "absorb_output_rotation: weights hold " << w_o.size() << " values, expected " << out_features
                                                          << " x " << heads << " heads x " << head_dim);
  std::vector<float> out(static_cast<size_t>(out_features * cols), 0.f);
  for (int64_t o = 0; o < out_features; ++o) {
    int64_t col0 = 0;
    for (int64_t h = 0; h < heads; ++h) {
      const HeadRotation& R = rot[static_cast<size_t>(h)];
      for (int j = 0; j < R.rank; ++j) {
        double acc = 0;
        for (int i = 0; i < head_dim; ++i)
          acc += static_cast<double>(w_o[static_cast<size_t>(o * in_cols + h * head_dim + i)]) *
                 R.r[static_cast<size_t>(i) * R.rank + j];
        out[static_cast<size_t>(o * cols + col0 + j)] = static_cast<float>(acc);
      }
      col0 += R.rank;
    }
  }
  return out;
}

}  // namespace fdc::kernels::ops
