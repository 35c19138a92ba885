// Per-dtype entry points of the kernels (each defined in its own .cu so they compile in
// parallel), and the dispatch macros turning runtime sizes into template constants; an
// unsupported value throws fdc::InputError naming it.
#pragma once

#include <cuda_runtime_api.h>

#include "core/error.h"
#include "kernels/attention/attention.h"

#define FDC_DISPATCH_GROUP(group, G, ...)                                                                \
  do {                                                                                                   \
    switch (group) {                                                                                     \
      case 1: { constexpr int G = 1; __VA_ARGS__ break; }                                               \
      case 2: { constexpr int G = 2; __VA_ARGS__ break; }                                               \
      case 4: { constexpr int G = 4; __VA_ARGS__ break; }                                               \
      case 8: { constexpr int G = 8; __VA_ARGS__ break; }                                               \
      default:                                                                                           \
        throw ::fdc::InputError("attention: GQA group " + std::to_string(group) +                       \
                                " is not supported; expected 1, 2, 4 or 8");                            \
    }                                                                                                    \
  } while (0)

// Prefill padded width: 64 or 128 (heads' own ranks bound the work inside).
#define FDC_DISPATCH_PREFILL_D(max_rank, D, ...)                                                         \
  do {                                                                                                   \
    if ((max_rank) <= 64) {                                                                              \
      constexpr int D = 64;                                                                              \
      __VA_ARGS__                                                                                        \
    } else if ((max_rank) <= 128) {                                                                      \
      constexpr int D = 128;                                                                             \
      __VA_ARGS__                                                                                        \
    } else {                                                                                             \
      throw ::fdc::InputError("attention: head dim " + std::to_string(max_rank) + " is not supported (max 128)"); \
    }                                                                                                    \
  } while (0)

namespace fdc::kernels::attn::detail {

// Tokens of a class per page: `slots`, or block_size when 0; throws InputError outside 1 .. block_size.
int class_slots(const char* what, const char* cls, int slots, int block_size);

void run_decode_bf16(const DecodeParams& p, cudaStream_t stream);
void run_decode_fp16(const DecodeParams& p, cudaStream_t stream);
void run_prefill_bf16(const PrefillParams& p, int log2_block, cudaStream_t stream);
void run_prefill_fp16(const PrefillParams& p, int log2_block, cudaStream_t stream);
// Hopper (wgmma) prefill, sm_90a objects; defined only when FDC_HAVE_PREFILL_SM90 is set.
void run_prefill_sm90_bf16(const PrefillParams& p, int log2_block, cudaStream_t stream);
void run_prefill_sm90_fp16(const PrefillParams& p, int log2_block, cudaStream_t stream);

}  // namespace fdc::kernels::attn::detail
