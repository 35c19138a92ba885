// CPU references of the layer ops (kernels/ops/reference.h) against facts worked out by hand, the
// weight absorption of FDC rotations, and the refusals the launchers share with them.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/attention/layout.h"
#include "kernels/ops/reference.h"
#include "kernels/ops/rotation.h"
#include "tests/ops/ops_test_data.h"

using namespace fdc;
using namespace fdc::kernels;
using namespace fdc::kernels::ops;
using namespace fdc::kernels::ops::test;

TEST_CASE("gemm row buckets: 8, 12, 16, 24, 32, 48, 64, then multiples of 32, 128 and 1024") {
  CHECK(gemm_row_bucket(1) == 8);
  CHECK(gemm_row_bucket(8) == 8);
  CHECK(gemm_row_bucket(9) == 12);
  CHECK(gemm_row_bucket(13) == 16);
  CHECK(gemm_row_bucket(26) == 32);
  CHECK(gemm_row_bucket(27) == 32);
  CHECK(gemm_row_bucket(57) == 64);
  CHECK(gemm_row_bucket(65) == 96);
  CHECK(gemm_row_bucket(935) == 960);
  CHECK(gemm_row_bucket(941) == 960);
  CHECK(gemm_row_bucket(1024) == 1024);
  CHECK(gemm_row_bucket(1025) == 1152);
  CHECK(gemm_row_bucket(8193) == 9216);
  int buckets = 0, to_4096 = 0;
  int64_t prev = 0;
  for (int64_t m = 1; m <= 16384; ++m) {
    const int64_t b = gemm_row_bucket(m);
    REQUIRE(b >= m);
    REQUIRE(b >= prev);
    REQUIRE(gemm_row_bucket(b) == b);  // a bucket is its own bucket
    REQUIRE(b * 2 <= 3 * std::max<int64_t>(m, 8));  // at most 50% padding, 12.5% from 256 rows on
    if (m >= 256) REQUIRE(b * 8 <= 9 * m);
    if (b != prev) {
      ++buckets;
      if (b <= 4096) ++to_4096;
    }
    prev = b;
  }
  CHECK(to_4096 == 7 + 30 + 24);
  CHECK(buckets == 7 + 30 + 56 + 8);
}

TEST_CASE("gemm reference: out = x w^T") {
  // x [2][8], w [8][8] = 2 * identity -> out = 2x (exact in bf16).
  const int64_t m = 2, n = 8, k = 8;
  std::vector<float> x(m * k), w(n * k, 0.f);
  for (int64_t i = 0; i < m * k; ++i) x[i] = static_cast<float>(i) - 5.f;
  for (int64_t i = 0; i < n; ++i) w[i * k + i] = 2.f;
  auto xb = to_bits(DType::kBF16, x), wb = to_bits(DType::kBF16, w);
  std::vector<uint16_t> out(m * n, 0);
  gemm_reference({DType::kBF16, m, n, k, xb.data(), wb.data(), out.data()});
  for (int64_t i = 0; i < m * n; ++i) CHECK(bf16_bits_to_float(out[i]) == 2.f * x[i]);
}

TEST_CASE("absorbed input rotation: x (R^T W)^T = (x W^T) R per head") {
  const int heads = 3, d = 16, in = 24, tokens = 5;
  const int ranks[heads] = {16, 8, 12};
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  std::vector<HeadRotation> rot;
  for (int h = 0; h < heads; ++h) rot.push_back(truncated(random_orthogonal(d, 100u + h), d, ranks[h]));
  std::vector<float> w(static_cast<size_t>(heads * d * in)), x(static_cast<size_t>(tokens * in));
  for (auto& v : w) v = g(rng);
  for (auto& v : x) v = g(rng);
  const auto wa = absorb_input_rotation(w, in, d, rot);
  const int sum_r = 16 + 8 + 12;
  REQUIRE(wa.size() == static_cast<size_t>(sum_r * in));
  for (int t = 0; t < tokens; ++t) {
    int col = 0;
    for (int h = 0; h < heads; ++h) {
      for (int j = 0; j < ranks[h]; ++j) {
        double direct = 0, absorbed = 0;
        for (int i = 0; i < d; ++i) {
          double y = 0;  // (x W^T)[t][h*d + i]
          for (int c = 0; c < in; ++c) y += double(x[t * in + c]) * w[(h * d + i) * in + c];
          direct += y * rot[h].r[i * ranks[h] + j];
        }
        for (int c = 0; c < in; ++c) absorbed += double(x[t * in + c]) * wa[(col + j) * in + c];
        CHECK(absorbed == doctest::Approx(direct).epsilon(1e-4));
      }
      col += ranks[h];
    }
  }
}

TEST_CASE("absorbed output rotation is exact at full rank") {
  // attn_c = attn R (per head); out = attn_c W_o'^T must equal attn W_o^T when R is orthogonal.
  const int heads = 2, d = 8, out_f = 6;
  std::mt19937 rng(3);
  std::normal_distribution<float> g;
  std::vector<HeadRotation> rot = {truncated(random_orthogonal(d, 1), d, d), truncated(random_orthogonal(d, 2), d, d)};
  std::vector<float> wo(static_cast<size_t>(out_f * heads * d)), attn(static_cast<size_t>(heads * d));
  for (auto& v : wo) v = g(rng);
  for (auto& v : attn) v = g(rng);
  const auto woa = absorb_output_rotation(wo, out_f, d, rot);
  std::vector<double> ac(static_cast<size_t>(heads * d), 0.0);
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < d; ++j)
      for (int i = 0; i < d; ++i) ac[h * d + j] += double(attn[h * d + i]) * rot[h].r[i * d + j];
  for (int o = 0; o < out_f; ++o) {
    double full = 0, comp = 0;
    for (int c = 0; c < heads * d; ++c) {
      full += double(attn[c]) * wo[o * heads * d + c];
      comp += ac[c] * woa[o * heads * d + c];
    }
    CHECK(comp == doctest::Approx(full).epsilon(1e-4));
  }
}

TEST_CASE("rope tables: position 0 is the identity, cos^2 + sin^2 = 1") {
  const auto cs = make_cos_sin_cache(64, 128, 10000.0);
  for (int i = 0; i < 64; ++i) {
    CHECK(cs[i] == 1.f);
    CHECK(cs[64 + i] == 0.f);
  }
  for (int pos : {1, 17, 63})
    for (int i : {0, 5, 63}) {
      const float c = cs[pos * 128 + i], s = cs[pos * 128 + 64 + i];
      CHECK(c * c + s * s == doctest::Approx(1.0).epsilon(1e-6));
    }
  CHECK_THROWS_AS(make_cos_sin_cache(0, 128, 10000.0), InputError);
  CHECK_THROWS_AS(make_cos_sin_cache(16, 127, 10000.0), InputError);
}

TEST_CASE("rope + rotation reference: identity facts, rotation invariance, cache writes") {
  for (DType t : {DType::kBF16, DType::kFP16}) {
    for (int group : {1, 4}) {
      CAPTURE(to_string(t));
      CAPTURE(group);
      const int hk = 2, d = 64;
      RopeCase c(t, /*tokens=*/7, group * hk, hk, d, {{d, d, d, d}, {d, d, d, d}}, /*seed=*/11);
      // Position 0 everywhere + no rotation: outputs are the inputs.
      std::fill(c.positions.begin(), c.positions.end(), 0);
      c.run(/*rotate=*/false);
      for (int tok = 0; tok < c.tokens; ++tok)
        for (int qh = 0; qh < c.hq; ++qh)
          for (int j = 0; j < d; ++j) CHECK(c.q_out[tok * c.L.q_row() + qh * d + j] == c.qkv[tok * c.qkv_row + qh * d + j]);

      // Full-rank orthogonal rotation keeps every q.k score (up to the dtype's rounding).
      for (int tok = 0; tok < c.tokens; ++tok) c.positions[tok] = 3 * tok + 1;
      c.run(false);
      const auto q_rope = c.q_out_f(), k_rope = c.k_out_f();
      c.set_rotation({random_orthogonal(d, 21), random_orthogonal(d, 22)});
      c.run(true);
      const auto q_rot = c.q_out_f(), k_rot = c.k_out_f();
      const double tol = t == DType::kBF16 ? 0.05 : 0.01;
      for (int tok = 0; tok < c.tokens; ++tok)
        for (int qh = 0; qh < c.hq; ++qh) {
          const int kv = qh / group;
          double s0 = 0, s1 = 0, norm = 0;
          for (int j = 0; j < d; ++j) {
            s0 += q_rope[tok * c.L.q_row() + qh * d + j] * k_rope[tok * c.L.k_row() + kv * d + j];
            s1 += q_rot[tok * c.L.q_row() + qh * d + j] * k_rot[tok * c.L.k_row() + kv * d + j];
            norm += std::fabs(q_rope[tok * c.L.q_row() + qh * d + j] * k_rope[tok * c.L.k_row() + kv * d + j]);
          }
          CHECK(std::fabs(s0 - s1) <= tol * norm + 1e-3);
        }
      // The cache holds exactly the k rows.
      c.check_cache_matches_k_out();
    }
  }
}

TEST_CASE("rope reference: scores depend on the position difference only") {
  const int d = 128;
  RopeCase c(DType::kFP16, 4, 1, 1, d, {{d, d, d, d}}, 5);
  // Same q and k vectors at positions (7, 3) and (40, 36).
  for (int tok = 0; tok < 4; ++tok)
    for (int j = 0; j < 2 * d; ++j) c.qkv[tok * c.qkv_row + j] = c.qkv[j];
  c.positions = {7, 3, 40, 36};
  c.run(false);
  const auto q = c.q_out_f(), k = c.k_out_f();
  double s_a = 0, s_b = 0, norm = 0;
  for (int j = 0; j < d; ++j) {
    s_a += double(q[0 * d + j]) * k[1 * d + j];
    s_b += double(q[2 * d + j]) * k[3 * d + j];
    norm += std::fabs(double(q[0 * d + j]) * k[1 * d + j]);
  }
  CHECK(std::fabs(s_a - s_b) <= 0.01 * norm);
}

TEST_CASE("rope + rotation reference: truncated identity rotation = leading dims of RoPE") {
  const int d = 128, hk = 3;
  std::vector<attn::HeadRanks> ranks = {{32, 32, 32, 32}, {128, 128, 128, 128}, {72, 72, 72, 72}};
  RopeCase full(DType::kBF16, 17, 6, hk, d, {{d, d, d, d}, {d, d, d, d}, {d, d, d, d}}, 9);
  full.run(false);
  RopeCase comp(DType::kBF16, 17, 6, hk, d, ranks, 9);
  std::vector<std::vector<float>> eye;
  for (int h = 0; h < hk; ++h) eye.push_back(identity(d));
  comp.set_rotation(eye);
  comp.run(true);
  for (int tok = 0; tok < 17; ++tok)
    for (int qh = 0; qh < 6; ++qh) {
      const int kv = qh / 2, r = ranks[kv].rk;
      for (int j = 0; j < r; ++j)
        CHECK(comp.q_out[tok * comp.L.q_row() + comp.L.q_offset(qh) + j] == full.q_out[tok * full.L.q_row() + qh * d + j]);
    }
  comp.check_cache_matches_k_out();
}

TEST_CASE("rope + rotation refuses unsupported shapes") {
  RopeCase c(DType::kBF16, 3, 2, 2, 64, {{64, 64, 64, 64}, {64, 64, 64, 64}}, 1);
  auto p = c.params(false);
  auto refused = [](RopeRotateParams q) { CHECK_THROWS_AS(validate(q), InputError); };
  validate(p);
  { auto q = p; q.head_dim = 96; refused(q); }
  { auto q = p; q.dtype = DType::kFP32; refused(q); }
  { auto q = p; q.num_q_heads = 18; q.num_kv_heads = 1; refused(q); }  // group 18 > 8
  { auto q = p; q.num_q_heads = 3; refused(q); }                      // not a multiple of Hk
  { auto q = p; q.max_rank = 32; refused(q); }                        // RoPE alone needs full rank
  { auto q = p; q.max_rank = 60; refused(q); }                        // not a multiple of 8
  { auto q = p; q.k_out = nullptr; q.hi_pool = nullptr; refused(q); }
  { auto q = p; q.qkv_row = 200; refused(q); }                        // too narrow for q and k
  { auto q = p; q.block_size = 24; refused(q); }
  { auto q = p; q.positions = nullptr; refused(q); }
  // A position outside the table is refused by the reference.
  c.positions[1] = 1 << 20;
  CHECK_THROWS_AS(c.run(false), InputError);
}

TEST_CASE("norm references: RMSNorm and LayerNorm worked by hand") {
  const int dim = 16;
  std::vector<float> x(2 * dim), w(dim), b(dim);
  for (int i = 0; i < dim; ++i) {
    x[i] = -3.f;                           // RMS 3: normalised row is -1
    x[dim + i] = (i % 2) ? 2.f : -2.f;     // mean 0, variance 4
    w[i] = 0.5f * static_cast<float>(i % 4 + 1);
    b[i] = static_cast<float>(i % 3);
  }
  auto xb = to_bits(DType::kBF16, x), wb = to_bits(DType::kBF16, w), bb = to_bits(DType::kBF16, b);
  std::vector<uint16_t> out(2 * dim);
  norm_reference({DType::kBF16, NormKind::kRmsNorm, 1, dim, 1e-12f, xb.data(), wb.data(), nullptr, out.data()});
  for (int i = 0; i < dim; ++i) CHECK(bf16_bits_to_float(out[i]) == doctest::Approx(-w[i]).epsilon(1e-2));
  norm_reference({DType::kBF16, NormKind::kLayerNorm, 1, dim, 1e-12f, xb.data() + dim, wb.data(), bb.data(), out.data()});
  for (int i = 0; i < dim; ++i)
    CHECK(bf16_bits_to_float(out[i]) == doctest::Approx((i % 2 ? 1.f : -1.f) * w[i] + b[i]).epsilon(1e-2));
  NormParams bad{DType::kBF16, NormKind::kRmsNorm, 1, 12, 1e-5f, xb.data(), wb.data(), nullptr, out.data()};
  CHECK_THROWS_AS(validate(bad), InputError);  // dim not a multiple of 8
  bad.dim = 16;
  bad.bias = bb.data();
  CHECK_THROWS_AS(validate(bad), InputError);  // RMSNorm has no bias
}

TEST_CASE("residual and activation references") {
  const int64_t n = 13;  // not a multiple of 8: the kernels' scalar tail
  std::vector<float> a(n), b(n);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = 0.5f * static_cast<float>(i);
  }
  auto ab = to_bits(DType::kFP16, a), bb = to_bits(DType::kFP16, b);
  std::vector<uint16_t> out(n);
  residual_reference({DType::kFP16, n, ab.data(), bb.data(), out.data()});
  for (int64_t i = 0; i < n; ++i) CHECK(fp16_bits_to_float(out[i]) == 1.5f * static_cast<float>(i));

  const int F = 8;
  std::vector<float> in(2 * F);
  for (int i = 0; i < F; ++i) {
    in[i] = static_cast<float>(i) - 4.f;  // gate
    in[F + i] = 2.f;                      // up
  }
  auto inb = to_bits(DType::kBF16, in);
  std::vector<uint16_t> y(F);
  act_reference({DType::kBF16, ActKind::kSwiGlu, 1, F, inb.data(), y.data()});
  for (int i = 0; i < F; ++i) {
    const double g = in[i];
    CHECK(bf16_bits_to_float(y[i]) == doctest::Approx(2.0 * g / (1.0 + std::exp(-g))).epsilon(1e-2));
  }
  act_reference({DType::kBF16, ActKind::kRelu, 1, F, inb.data(), y.data()});
  for (int i = 0; i < F; ++i) CHECK(bf16_bits_to_float(y[i]) == std::max(in[i], 0.f));
  CHECK_THROWS_AS(validate(ActParams{DType::kBF16, ActKind::kRelu, 1, 12, inb.data(), y.data()}), InputError);
  CHECK_THROWS_AS(validate(GemmParams{DType::kBF16, 4, 12, 8, inb.data(), inb.data(), y.data()}), InputError);
  CHECK_THROWS_AS(validate(GemmParams{DType::kFP32, 4, 8, 8, inb.data(), inb.data(), y.data()}), InputError);
}
