// Small kernels of the engine's forward pass that the layer-op library does not have: random
// weight fill, embedding lookup, bias add, row gather and greedy sampling (bf16 tensors as raw
// 16-bit patterns on the host side of this header, so C++20 host code can call them).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace fdc::engine::kern {

// p[i] = uniform in [-scale, scale] from a counter hash of (seed, i).
void fill_uniform(uint16_t* p, int64_t n, uint64_t seed, float scale, cudaStream_t st);
void fill_const(uint16_t* p, int64_t n, float v, cudaStream_t st);
// out[t] = embed[ids[t]] (+ pos_table[positions[t] + 2] when pos_table: OPT's offset learned positions).
void embed(const int* ids, const int* positions, const uint16_t* table, const uint16_t* pos_table, uint16_t* out,
           int tokens, int dim, cudaStream_t st);
// x[r][c] += bias[c]
void add_bias(uint16_t* x, const uint16_t* bias, int64_t rows, int64_t cols, cudaStream_t st);
// dst[e] = src[rows[e]]
void gather_rows(const uint16_t* src, const int* rows, uint16_t* dst, int n_rows, int dim, cudaStream_t st);
// out[r] = argmax of logits row r (lowest index on ties; NaN never wins).
void argmax_rows(const uint16_t* logits, int rows, int vocab, int* out, cudaStream_t st);

// dst[index[i]] = src[i] for i < n
void scatter_ids(const int* src, const int* index, int n, int* dst, cudaStream_t st);

}  // namespace fdc::engine::kern
