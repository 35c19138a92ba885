// The CPU reference against an independent dense attention: full rank equals plain attention,
// token classes equal attention on truncated vectors, prefill of one token equals decode.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/attention/reference.h"
#include "tests/kernels/attention_test_data.h"

using namespace fdc::kernels;
using namespace fdc::kernels::attn;
using namespace fdc::kernels::attn::test;

namespace {

// Plain softmax attention of one query over explicit key/value lists (each key may be truncated).
std::vector<double> dense_attention(const std::vector<float>& q, const std::vector<std::vector<float>>& keys,
                                    const std::vector<std::vector<float>>& values, int out_dims, double scale) {
  std::vector<double> s(keys.size());
  for (size_t t = 0; t < keys.size(); ++t) {
    double dot = 0;
    for (size_t d = 0; d < keys[t].size(); ++d) dot += static_cast<double>(q[d]) * keys[t][d];
    s[t] = dot * scale;
  }
  const double m = *std::max_element(s.begin(), s.end());
  double z = 0;
  for (double& x : s) z += (x = std::exp(x - m));
  std::vector<double> o(static_cast<size_t>(out_dims), 0.0);
  for (size_t t = 0; t < keys.size(); ++t)
    for (size_t d = 0; d < values[t].size(); ++d) o[d] += s[t] / z * values[t][d];
  return o;
}

}  // namespace

TEST_CASE("decode reference equals dense attention, with and without token classes") {
  for (bool classes : {false, true}) {
    CAPTURE(classes);
    const HeadLayout L = classes ? HeadLayout(8, 2, {{64, 48, 16, 24}, {128, 128, 32, 64}}, 16)
                                 : HeadLayout::uniform(8, 2, 128, 128, 16);
    const std::vector<int> hi{1, 17, 40}, lo = classes ? std::vector<int>{3, 0, 33} : std::vector<int>{0, 0, 0};
    const CacheData c = make_cache(L, hi, lo, DType::kBF16, 11);
    const std::vector<float> q = make_rows(3, L.q_row(), DType::kBF16, 12, 1.f);
    std::vector<float> out(static_cast<size_t>(3 * L.o_row()), NAN);
    const float scale = 0.125f;
    reference_decode(L, c.pt, c.hi_pool.data(), c.lo_pool.data(), q.data(), scale, out.data());
    for (int s = 0; s < 3; ++s) {
      for (int qh = 0; qh < 8; ++qh) {
        const int h = L.kv_head_of(qh);
        const HeadInfo& in = L.info(h);
        std::vector<std::vector<float>> keys, values;
        for (int cls = 0; cls < 2; ++cls) {
          const auto& pool = cls == 0 ? c.hi_pool : c.lo_pool;
          for (int t = 0; t < (cls == 0 ? hi[s] : lo[s]); ++t) {
            const auto k0 = pool.begin() + cache_k_index(L, c.pt, cls, s, t, h);
            const auto v0 = pool.begin() + cache_v_index(L, c.pt, cls, s, t, h);
            keys.emplace_back(k0, k0 + head_rank_k(in, cls));
            values.emplace_back(v0, v0 + head_rank_v(in, cls));
          }
        }
        const auto q0 = q.begin() + s * L.q_row() + L.q_offset(qh);
        const std::vector<double> want =
            dense_attention(std::vector<float>(q0, q0 + in.rk), keys, values, in.rv, scale);
        for (int d = 0; d < in.rv; ++d)
          REQUIRE(out[static_cast<size_t>(s * L.o_row() + L.o_offset(qh) + d)] == doctest::Approx(want[d]).epsilon(1e-6));
      }
    }
  }
}

TEST_CASE("decode reference by hand: two tokens, one head") {
  // rank 16; q = 2*e0; k0 = e0 (score 2*ln2/2 = ln 2 with scale ln2/2... chosen so weights are 2:1)
  const HeadLayout L = HeadLayout::uniform(1, 1, 16, 16, 16);
  const CacheData base = make_cache(L, {2}, {0}, DType::kFP16, 3);
  CacheData c = base;
  for (int t = 0; t < 2; ++t) {
    float* k = c.hi_pool.data() + cache_k_index(L, c.pt, 0, 0, t, 0);
    float* v = c.hi_pool.data() + cache_v_index(L, c.pt, 0, 0, t, 0);
    std::fill(k, k + 16, 0.f);
    std::fill(v, v + 16, 0.f);
    k[0] = t == 0 ? 1.f : 0.f;  // score(t0) = scale * 2, score(t1) = 0
    v[0] = t == 0 ? 3.f : 0.f;
    v[1] = t == 0 ? 0.f : 6.f;
  }
  std::vector<float> q(16, 0.f);
  q[0] = 2.f;
  const float scale = static_cast<float>(std::log(2.0) / 2.0);  // exp(2*scale) = 2: weights 2/3, 1/3
  std::vector<float> out(16, NAN);
  reference_decode(L, c.pt, c.hi_pool.data(), c.lo_pool.data(), q.data(), scale, out.data());
  CHECK(out[0] == doctest::Approx(2.0));  // 3 * 2/3
  CHECK(out[1] == doctest::Approx(2.0));  // 6 * 1/3
  CHECK(out[2] == 0.f);
}

TEST_CASE("prefill reference: full rank is causal attention, last token equals decode") {
  const HeadLayout L = HeadLayout::uniform(4, 4, 128, 128, 32);
  const std::vector<int> kv{5, 33};
  const std::vector<int> cu{0, 5, 5 + 20};  // second sequence: 20 new tokens after 13 cached
  const CacheData c = make_cache(L, kv, {0, 0}, DType::kBF16, 5);
  const std::vector<float> q = make_rows(25, L.q_row(), DType::kBF16, 6, 1.f);
  std::vector<float> out(static_cast<size_t>(25 * L.o_row()), NAN);
  const float scale = 0.088f;
  reference_prefill(L, c.pt, c.hi_pool.data(), cu, q.data(), scale, out.data());
  for (int s = 0; s < 2; ++s) {
    const int q_len = cu[s + 1] - cu[s];
    for (int i = 0; i < q_len; ++i) {
      const int pos = kv[s] - q_len + i;
      for (int qh = 0; qh < 4; ++qh) {
        std::vector<std::vector<float>> keys, values;
        for (int t = 0; t <= pos; ++t) {
          const auto k0 = c.hi_pool.begin() + cache_k_index(L, c.pt, 0, s, t, qh);
          const auto v0 = c.hi_pool.begin() + cache_v_index(L, c.pt, 0, s, t, qh);
          keys.emplace_back(k0, k0 + 128);
          values.emplace_back(v0, v0 + 128);
        }
        const auto q0 = q.begin() + (cu[s] + i) * L.q_row() + L.q_offset(qh);
        const auto want = dense_attention(std::vector<float>(q0, q0 + 128), keys, values, 128, scale);
        for (int d = 0; d < 128; ++d)
          REQUIRE(out[static_cast<size_t>((cu[s] + i) * L.o_row() + L.o_offset(qh) + d)] ==
                  doctest::Approx(want[d]).epsilon(1e-6));
      }
    }
  }
  // The last new token of each sequence sees everything: the decode reference must agree.
  std::vector<float> q_last(static_cast<size_t>(2 * L.q_row()));
  for (int s = 0; s < 2; ++s)
    std::copy_n(q.begin() + (cu[s + 1] - 1) * L.q_row(), L.q_row(), q_last.begin() + s * L.q_row());
  std::vector<float> dec(static_cast<size_t>(2 * L.o_row()), NAN);
  reference_decode(L, c.pt, c.hi_pool.data(), c.lo_pool.data(), q_last.data(), scale, dec.data());
  for (int s = 0; s < 2; ++s)
    for (int j = 0; j < L.o_row(); ++j)
      CHECK(dec[static_cast<size_t>(s * L.o_row() + j)] ==
            doctest::Approx(out[static_cast<size_t>((cu[s + 1] - 1) * L.o_row() + j)]).epsilon(1e-6));
}

TEST_CASE("append reference writes rows where the cache indexing reads them") {
  const HeadLayout L(4, 2, {{32, 16, 32, 16}, {64, 128, 64, 128}}, 16);
  CacheData c = make_cache(L, {20, 3}, {0, 0}, DType::kBF16, 9);
  const std::vector<int> seq_of{0, 1, 0}, pos_of{19, 2, 0};
  const std::vector<float> k = make_rows(3, L.k_row(), DType::kBF16, 1, 1.f);
  const std::vector<float> v = make_rows(3, L.v_row(), DType::kBF16, 2, 1.f);
  reference_append(L, c.pt, seq_of, pos_of, k.data(), v.data(), c.hi_pool.data());
  for (int i = 0; i < 3; ++i)
    for (int h = 0; h < 2; ++h) {
      CHECK(c.hi_pool[static_cast<size_t>(cache_k_index(L, c.pt, 0, seq_of[i], pos_of[i], h) + 5)] ==
            k[static_cast<size_t>(i * L.k_row() + L.info(h).k_offset + 5)]);
      CHECK(c.hi_pool[static_cast<size_t>(cache_v_index(L, c.pt, 0, seq_of[i], pos_of[i], h) + 15)] ==
            v[static_cast<size_t>(i * L.v_row() + L.info(h).v_offset + 15)]);
    }
}

TEST_CASE("page tables refuse too few pages and foreign page ids") {
  int64_t hp = 0, lp = 0;
  PageTable pt = make_page_table({17, 1}, {0, 40}, 16, 1, &hp, &lp);
  CHECK(hp == 3);
  CHECK(lp == 3);
  CHECK_NOTHROW(pt.validate(16, hp, lp));
  PageTable bad = pt;
  bad.num_hi[0] = 33;
  CHECK_THROWS_AS(bad.validate(16, hp, lp), fdc::InputError);
  bad = pt;
  bad.hi_indices[0] = 7;
  CHECK_THROWS_AS(bad.validate(16, hp, lp), fdc::InputError);
}

TEST_CASE("shared pages: each block holds hi_slots hi and block - hi_slots lo tokens, without overlap") {
  const std::vector<HeadRanks> r{{64, 48, 16, 24}, {128, 128, 32, 64}};
  for (int hi_slots : {1, 5, 8, 15}) {
    CAPTURE(hi_slots);
    const HeadLayout L = HeadLayout::shared(8, 2, r, 16, hi_slots);
    const int lo_slots = 16 - hi_slots;
    CHECK(L.slots(TokenClass::kHi) == hi_slots);
    CHECK(L.slots(TokenClass::kLo) == lo_slots);
    // The simulator's block bytes: hi slots at hi dims plus lo slots at lo dims.
    const int64_t want = hi_slots * (64 + 48 + 128 + 128) + lo_slots * (16 + 24 + 32 + 64);
    CHECK(L.page_elems(TokenClass::kHi) == want);
    CHECK(L.page_elems(TokenClass::kLo) == want);
    // Every (class, slot, head) row lands inside the page and no element is used twice.
    std::vector<int> used(static_cast<size_t>(want), 0);
    for (int cls = 0; cls < 2; ++cls)
      for (int slot = 0; slot < L.slots(cls); ++slot)
        for (int h = 0; h < 2; ++h) {
          const HeadInfo& in = L.info(h);
          for (int d = 0; d < head_rank_k(in, cls); ++d) ++used[static_cast<size_t>(page_k_elem(in, cls, slot) + d)];
          for (int d = 0; d < head_rank_v(in, cls); ++d) ++used[static_cast<size_t>(page_v_elem(in, cls, slot) + d)];
        }
    CHECK(std::all_of(used.begin(), used.end(), [](int u) { return u == 1; }));
  }
  CHECK_THROWS_AS(HeadLayout::shared(8, 2, r, 16, 17), fdc::InputError);
}

TEST_CASE("decode over shared pages equals decode over separate hi and lo pools holding the same tokens") {
  const std::vector<HeadRanks> r{{64, 48, 16, 24}, {128, 128, 32, 64}};
  const HeadLayout S = HeadLayout::shared(8, 2, r, 16, 5);
  const HeadLayout P(8, 2, r, 16);
  const std::vector<int> hi{1, 17, 40}, lo{3, 0, 120};
  const CacheData cs = make_cache(S, hi, lo, DType::kBF16, 21);
  int64_t pages = 0;
  const PageTable spt = make_shared_page_table(S, hi, lo, 21, &pages);
  CHECK(spt.hi_indptr[3] == 1 + 4 + 11);  // max(ceil(hi/5), ceil(lo/11)) pages per sequence
  CHECK_NOTHROW(cs.pt.validate(S, cs.hi_pages, cs.hi_pages));
  CacheData cp = make_cache(P, hi, lo, DType::kBF16, 22);
  for (int s = 0; s < 3; ++s)
    for (int cls = 0; cls < 2; ++cls)
      for (int t = 0; t < (cls == 0 ? hi[s] : lo[s]); ++t)
        for (int h = 0; h < 2; ++h) {
          const HeadInfo& in = S.info(h);
          std::copy_n(cs.pool(cls) + cache_k_index(S, cs.pt, cls, s, t, h), head_rank_k(in, cls),
                      cp.pool(cls) + cache_k_index(P, cp.pt, cls, s, t, h));
          std::copy_n(cs.pool(cls) + cache_v_index(S, cs.pt, cls, s, t, h), head_rank_v(in, cls),
                      cp.pool(cls) + cache_v_index(P, cp.pt, cls, s, t, h));
        }
  const std::vector<float> q = make_rows(3, S.q_row(), DType::kBF16, 23, 1.f);
  std::vector<float> a(static_cast<size_t>(3 * S.o_row()), NAN), b = a;
  reference_decode(S, cs.pt, cs.pool(0), cs.pool(1), q.data(), 0.125f, a.data());
  reference_decode(P, cp.pt, cp.pool(0), cp.pool(1), q.data(), 0.125f, b.data());
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == b[i]);
}
