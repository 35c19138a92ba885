// CPU references of the layer ops. They take the very parameter structs the CUDA launchers take,
// with every pointer pointing to host memory (16-bit tensors as raw bf16/fp16 patterns), validate
// them the same way, and follow the kernels' rounding steps: fp32 (or wider) arithmetic, one
// rounding to the dtype per stored tensor (RoPE output is rounded before the rotation, as the
// fused kernel feeds it to the tensor cores in the dtype).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/ops/op_params.h"

namespace fdc::kernels::ops {

void gemm_reference(const GemmParams& p);
void rope_rotate_reference(const RopeRotateParams& p);
void norm_reference(const NormParams& p);
void residual_reference(const ResidualParams& p);
void act_reference(const ActParams& p);

// RoPE table [max_position][head_dim]: cos(pos * theta^(-2i/d)) for i < d/2, then the sines;
// computed in double, stored as fp32 (the GPU reads this same table).
std::vector<float> make_cos_sin_cache(int max_position, int head_dim, double theta);

}  // namespace fdc::kernels::ops
