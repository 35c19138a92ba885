// Absorbing FDC rotations into projection weights (done once, on the host, when weights load).
// Weights use the nn.Linear layout [out features][in features]; rotations are per head, d x r
// row-major (columns ordered by singular value, the first r kept).
//  - absorb_input_rotation:  W' = R^T W per head block of rows. For q/k of models without RoPE and
//    for v of every model: x W'^T = (x W^T) R, the compressed head vector, straight from the GEMM.
//  - absorb_output_rotation: W_o' = W_o R per head block of columns (W_o' = R_v^T W_o in the
//    paper's [in][out] notation): the output projection consumes compressed head outputs, its K
//    dim shrinks to the sum of r_v. Exact at full rank (R orthogonal).
#pragma once

#include <cstdint>
#include <vector>

namespace fdc::kernels::ops {

struct HeadRotation {
  int rank = 0;          // r: kept columns
  std::vector<float> r;  // [head_dim][rank] row-major
};

// w: [heads * head_dim][in_features] -> [sum of ranks][in_features]
std::vector<float> absorb_input_rotation(const std::vector<float>& w, int64_t in_features, int head_dim,
                                         const std::vector<HeadRotation>& rot);
// w_o: [out_features][heads * head_dim] -> [out_features][sum of ranks]
std::vector<float> absorb_output_rotation(const std::vector<float>& w_o, int64_t out_features, int head_dim,
                                          const std::vector<HeadRotation>& rot);

}  // namespace fdc::kernels::ops
