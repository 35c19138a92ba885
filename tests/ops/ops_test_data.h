// Test data of the layer ops, shared by the CPU suite and the GPU suite: dtype conversion, random
// orthogonal rotations, and a RoPE + rotation case (inputs, a paged cache, host parameters and the
// reference's outputs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "kernels/attention/layout.h"
#include "kernels/common/dtype.h"
#include "kernels/ops/reference.h"
#include "kernels/ops/rotation.h"

namespace fdc::kernels::ops::test {

inline std::vector<uint16_t> to_bits(DType t, const std::vector<float>& x) {
  std::vector<uint16_t> b(x.size());
  for (size_t i = 0; i < x.size(); ++i) b[i] = float_to_bits(t, x[i]);
  return b;
}
inline std::vector<float> to_floats(DType t, const std::vector<uint16_t>& b) {
  std::vector<float> x(b.size());
  for (size_t i = 0; i < b.size(); ++i) x[i] = bits_to_float(t, b[i]);
  return x;
}

// Uniform in [-1, 1), a pure function of (seed, a, b): the same input value for a given row and
// column whatever the shape of the surrounding case.
inline float hash_uniform(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + a * 0xBF58476D1CE4E5B9ull + b * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 11) / static_cast<double>(uint64_t{1} << 52) - 1.0);
}

// d x d orthogonal matrix (row-major), Gram-Schmidt on a Gaussian matrix, in double.
inline std::vector<float> random_orthogonal(int d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g;
  std::vector<double> m(static_cast<size_t>(d) * d);
  for (auto& v : m) v = g(rng);
  for (int j = 0; j < d; ++j) {  // column j
    for (int p = 0; p < j; ++p) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += m[i * d + j] * m[i * d + p];
      for (int i = 0; i < d; ++i) m[i * d + j] -= dot * m[i * d + p];
    }
    double n = 0;
    for (int i = 0; i < d; ++i) n += m[i * d + j] * m[i * d + j];
    n = std::sqrt(n);
    for (int i = 0; i < d; ++i) m[i * d + j] /= n;
  }
  return std::vector<float>(m.begin(), m.end());
}
inline std::vector<float> identity(int d) {
  std::vector<float> m(static_cast<size_t>(d) * d, 0.f);
  for (int i = 0; i < d; ++i) m[static_cast<size_t>(i) * d + i] = 1.f;
  return m;
}
inline HeadRotation truncated(const std::vector<float>& q, int d, int r) {
  HeadRotation h;
  h.rank = r;
  h.r.resize(static_cast<size_t>(d) * r);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < r; ++j) h.r[static_cast<size_t>(i) * r + j] = q[static_cast<size_t>(i) * d + j];
  return h;
}

// One RoPE (+ rotation) case: one sequence holding every token, its k written both to a packed k
// row and to a paged cache whose pages are in reverse order (unused slots poisoned with NaN).
struct RopeCase {
  static constexpr int kMaxPos = 4096;
  static constexpr int kBlock = 16;
  DType t;
  int tokens, hq, hk, d;
  attn::HeadLayout L;
  int64_t qkv_row;
  std::vector<float> qkv;       // [tokens][qkv_row], dtype-rounded
  std::vector<int> positions;   // [tokens]
  std::vector<float> cos_sin;   // [kMaxPos][d]
  std::vector<float> rotation;  // pool: head h at d * k_offset(h), [d][rk(h)]
  int pages;
  std::vector<int> seq_of, pos_of, indptr, indices;
  std::vector<uint16_t> qkv_b, rot_b, q_b, k_b, cache_b;
  std::vector<float> q_out, k_out;

  RopeCase(DType dtype, int n_tokens, int n_q_heads, int n_kv_heads, int head_dim, std::vector<attn::HeadRanks> ranks,
           uint64_t seed)
      : t(dtype), tokens(n_tokens), hq(n_q_heads), hk(n_kv_heads), d(head_dim),
        L(n_q_heads, n_kv_heads, std::move(ranks), kBlock),
        qkv_row(static_cast<int64_t>(n_q_heads + n_kv_heads) * head_dim + L.v_row()),
        pages((n_tokens + kBlock - 1) / kBlock) {
    qkv.assign(static_cast<size_t>(tokens * qkv_row), 0.f);
    for (int tok = 0; tok < tokens; ++tok)
      for (int64_t c = 0; c < qkv_row; ++c)
        qkv[static_cast<size_t>(tok * qkv_row + c)] = round_to(t, 2.f * hash_uniform(seed, static_cast<uint64_t>(tok),
                                                                                     static_cast<uint64_t>(c)));
    for (int tok = 0; tok < tokens; ++tok) positions.push_back((tok * 37 + 5) % kMaxPos);
    cos_sin = make_cos_sin_cache(kMaxPos, d, 10000.0);
    indptr = {0, pages};
    for (int p = 0; p < pages; ++p) indices.push_back(pages - 1 - p);
    for (int tok = 0; tok < tokens; ++tok) {
      seq_of.push_back(0);
      pos_of.push_back(tok);
    }
    std::vector<std::vector<float>> eye(static_cast<size_t>(hk), identity(d));
    set_rotation(eye);
  }

  // Full d x d matrices per KV head; each keeps its head's first rk columns.
  void set_rotation(const std::vector<std::vector<float>>& full) {
    rotation.assign(static_cast<size_t>(d) * L.k_row(), 0.f);
    for (int h = 0; h < hk; ++h) {
      const attn::HeadInfo& hi = L.info(h);
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < hi.rk; ++j)
          rotation[static_cast<size_t>(d) * hi.k_offset + static_cast<size_t>(i) * hi.rk + j] =
              round_to(t, full[static_cast<size_t>(h)][static_cast<size_t>(i) * d + j]);
    }
  }

  int max_rank() const { return L.max_rk(); }

  // Host parameters (pointers into this case's host buffers); fills the bit buffers first.
  RopeRotateParams params(bool rotate) {
    qkv_b = to_bits(t, qkv);
    rot_b = to_bits(t, rotation);
    q_b.assign(static_cast<size_t>(tokens) * L.q_row(), float_to_bits(t, std::numeric_limits<float>::quiet_NaN()));
    k_b.assign(static_cast<size_t>(tokens) * L.k_row(), q_b.empty() ? 0 : q_b[0]);
    cache_b.assign(static_cast<size_t>(std::max(pages, 1) * L.page_elems(attn::TokenClass::kHi)),
                   float_to_bits(t, std::numeric_limits<float>::quiet_NaN()));
    RopeRotateParams p;
    p.dtype = t;
    p.num_tokens = tokens;
    p.num_q_heads = hq;
    p.num_kv_heads = hk;
    p.head_dim = d;
    p.max_rank = rotate ? max_rank() : d;
    p.qkv = qkv_b.data();
    p.qkv_row = qkv_row;
    p.positions = positions.data();
    p.cos_sin = cos_sin.data();
    p.max_position = kMaxPos;
    p.rotation = rotate ? rot_b.data() : nullptr;
    p.heads = L.head_info().data();
    p.q_row = L.q_row();
    p.k_row = L.k_row();
    p.q_out = q_b.data();
    p.k_out = k_b.data();
    p.hi_pool = cache_b.data();
    p.page_elems_hi = L.page_elems(attn::TokenClass::kHi);
    p.block_size = kBlock;
    p.seq_of = seq_of.data();
    p.pos_of = pos_of.data();
    p.hi_page_indptr = indptr.data();
    p.hi_page_indices = indices.data();
    return p;
  }

  void run(bool rotate) {
    rope_rotate_reference(params(rotate));
    q_out = to_floats(t, q_b);
    k_out = to_floats(t, k_b);
  }
  std::vector<float> q_out_f() const { return q_out; }
  std::vector<float> k_out_f() const { return k_out; }

  float cache_k(const std::vector<uint16_t>& cache, int tok, int kv, int j) const {
    const int page = indices[static_cast<size_t>(pos_of[static_cast<size_t>(tok)] / kBlock)];
    const int64_t e = page * L.page_elems(attn::TokenClass::kHi) + attn::page_k_elem(L.info(kv), 0, pos_of[tok] % kBlock) + j;
    return bits_to_float(t, cache[static_cast<size_t>(e)]);
  }
  void check_cache_matches_k_out() const {
    for (int tok = 0; tok < tokens; ++tok)
      for (int kv = 0; kv < hk; ++kv)
        for (int j = 0; j < L.info(kv).rk; ++j)
          REQUIRE(cache_k(cache_b, tok, kv, j) == k_out[static_cast<size_t>(tok) * L.k_row() + L.info(kv).k_offset + j]);
  }
};

}  // namespace fdc::kernels::ops::test
