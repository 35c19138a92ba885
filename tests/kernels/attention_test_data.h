// Random inputs for the attention tests (CPU and GPU suites): a paged cache, queries and the
// unused page slots poisoned with NaN, so a kernel that reads past a sequence's tokens fails.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/attention/layout.h"
#include "kernels/attention/reference.h"
#include "kernels/common/dtype.h"

namespace fdc::kernels::attn::test {

struct CacheData {
  PageTable pt;
  int64_t hi_pages = 0, lo_pages = 0;
  std::vector<float> hi_pool, lo_pool;  // values already rounded to the dtype; NaN in unused slots
  bool shared = false;                  // shared pages: both classes live in hi_pool
  float* pool(int cls) { return cls == 0 || shared ? hi_pool.data() : lo_pool.data(); }
  const float* pool(int cls) const { return cls == 0 || shared ? hi_pool.data() : lo_pool.data(); }
};

inline float random_value(std::mt19937_64& rng, DType t, float scale) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  return round_to(t, u(rng) * scale);
}

inline CacheData make_cache(const HeadLayout& L, const std::vector<int>& num_hi, const std::vector<int>& num_lo, DType t,
                            uint64_t seed) {
  CacheData c;
  c.shared = L.shared_pages();
  if (c.shared) {
    c.pt = make_shared_page_table(L, num_hi, num_lo, seed, &c.hi_pages);
    c.lo_pages = 1;
  } else {
    c.pt = make_page_table(num_hi, num_lo, L.block_size(), seed, &c.hi_pages, &c.lo_pages);
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  c.hi_pool.assign(static_cast<size_t>(c.hi_pages * L.page_elems(TokenClass::kHi)), nan);
  c.lo_pool.assign(c.shared ? size_t{1} : static_cast<size_t>(c.lo_pages * L.page_elems(TokenClass::kLo)), nan);
  std::mt19937_64 rng(seed * 7919 + 1);
  for (int s = 0; s < c.pt.num_seqs(); ++s) {
    for (int cls = 0; cls < 2; ++cls) {
      const int n = cls == 0 ? num_hi[static_cast<size_t>(s)] : num_lo[static_cast<size_t>(s)];
      float* pool = c.pool(cls);
      for (int tok = 0; tok < n; ++tok) {
        for (int h = 0; h < L.num_kv_heads(); ++h) {
          const HeadInfo& in = L.info(h);
          const int64_t k = cache_k_index(L, c.pt, cls, s, tok, h);
          const int64_t v = cache_v_index(L, c.pt, cls, s, tok, h);
          for (int d = 0; d < head_rank_k(in, cls); ++d) pool[k + d] = random_value(rng, t, 1.f);
          for (int d = 0; d < head_rank_v(in, cls); ++d) pool[v + d] = random_value(rng, t, 1.f);
        }
      }
    }
  }
  return c;
}

// Packed rows of `rows` tokens with `row_elems` values each.
inline std::vector<float> make_rows(int64_t rows, int row_elems, DType t, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::vector<float> x(static_cast<size_t>(rows * row_elems));
  for (float& v : x) v = random_value(rng, t, scale);
  return x;
}

// Largest |a - b| / (atol + rtol * |b|); NaN or inf in a counts as failure (returns inf).
inline double worst_error_ratio(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol,
                                int64_t* worst_index = nullptr) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) {
      if (worst_index) *worst_index = static_cast<int64_t>(i);
      return std::numeric_limits<double>::infinity();
    }
    const double r = std::abs(static_cast<double>(a[i]) - b[i]) / (atol + rtol * std::abs(static_cast<double>(b[i])));
    if (r > worst) {
      worst = r;
      if (worst_index) *worst_index = static_cast<int64_t>(i);
    }
  }
  return worst;
}

}  // namespace fdc::kernels::attn::test
