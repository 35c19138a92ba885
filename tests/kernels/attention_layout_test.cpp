// Layout of packed rows and pages, dtype conversions, and refusal of unsupported shapes.
#include <doctest/doctest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/attention/cost.h"
#include "kernels/attention/layout.h"
#include "kernels/common/dtype.h"

using namespace fdc::kernels;
using namespace fdc::kernels::attn;

TEST_CASE("dtype conversions round to nearest even and keep exact values") {
  for (float f : {0.f, 1.f, -2.5f, 0.15625f, 65504.f, -3.0e-5f}) {
    CHECK(fp16_bits_to_float(float_to_fp16_bits(f)) == doctest::Approx(f).epsilon(1e-3));
  }
  CHECK(float_to_bf16_bits(1.f) == 0x3f80);
  CHECK(float_to_fp16_bits(1.f) == 0x3c00);
  CHECK(float_to_fp16_bits(-2.f) == 0xc000);
  CHECK(float_to_fp16_bits(1e6f) == 0x7c00);  // overflow to inf
  CHECK(fp16_bits_to_float(0x0001) == doctest::Approx(5.9604645e-8f));
  CHECK(float_to_fp16_bits(5.9604645e-8f) == 0x0001);
  // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
  CHECK(float_to_bf16_bits(1.00390625f) == 0x3f80);
  CHECK(float_to_bf16_bits(1.01171875f) == 0x3f82);
  CHECK(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
  CHECK(std::isnan(fp16_bits_to_float(float_to_fp16_bits(NAN))));
  CHECK(round_to(DType::kBF16, 3.14159f) == doctest::Approx(3.140625f));
}

TEST_CASE("packed rows and page offsets follow the per-head ranks") {
  // 4 q heads, 2 KV heads (group 2); head 0: rk 16 rv 32 (lo 8/16), head 1: rk 64 rv 16 (no classes)
  const HeadLayout L(4, 2, {{16, 32, 8, 16}, {64, 16, 64, 16}}, 16);
  CHECK(L.group() == 2);
  CHECK(L.q_row() == 2 * 16 + 2 * 64);
  CHECK(L.o_row() == 2 * 32 + 2 * 16);
  CHECK(L.k_row() == 80);
  CHECK(L.v_row() == 48);
  CHECK(L.q_offset(0) == 0);
  CHECK(L.q_offset(1) == 16);
  CHECK(L.q_offset(2) == 32);
  CHECK(L.q_offset(3) == 96);
  CHECK(L.o_offset(3) == 64 + 16);
  CHECK(L.info(1).k_offset == 16);
  CHECK(L.info(1).v_offset == 32);
  // hi page: head0 K [16][16], V [16][32]; head1 K [16][64], V [16][16]
  CHECK(L.info(0).page_k_hi == 0);
  CHECK(L.info(0).page_v_hi == 256);
  CHECK(L.info(1).page_k_hi == 768);
  CHECK(L.info(1).page_v_hi == 768 + 1024);
  CHECK(L.page_elems(TokenClass::kHi) == 16 * (16 + 32 + 64 + 16));
  CHECK(L.page_elems(TokenClass::kLo) == 16 * (8 + 16 + 64 + 16));
  CHECK(page_k_elem(L.info(1), 1, 3) == L.info(1).page_k_lo + 3 * 64);
  CHECK(page_v_elem(L.info(0), 1, 2) == 16 * 8 + 2 * 16);
  CHECK(L.has_token_classes());
  CHECK(L.max_rk() == 64);
  CHECK(L.max_rv() == 32);
  CHECK_FALSE(HeadLayout::uniform(8, 8, 64, 64, 32).has_token_classes());
}

TEST_CASE("unsupported ranks, groups and block sizes are refused with a clear error") {
  CHECK_THROWS_AS(HeadLayout::uniform(8, 8, 20, 64, 16), fdc::InputError);    // not a multiple of 8
  CHECK_THROWS_AS(HeadLayout::uniform(8, 8, 136, 64, 16), fdc::InputError);   // above 128
  CHECK_THROWS_AS(HeadLayout::uniform(8, 8, 8, 64, 16), fdc::InputError);     // below 16
  CHECK_THROWS_AS(HeadLayout::uniform(8, 8, 64, 64, 24), fdc::InputError);    // block size
  CHECK_THROWS_AS(HeadLayout::uniform(12, 4, 64, 64, 16), fdc::InputError);   // group 3
  CHECK_THROWS_AS(HeadLayout::uniform(6, 4, 64, 64, 16), fdc::InputError);    // not a multiple
  CHECK_THROWS_AS(HeadLayout(2, 1, {{64, 64, 72, 64}}, 16), fdc::InputError);  // lo above hi
  CHECK_THROWS_AS(HeadLayout(2, 2, {{64, 64, 64, 64}}, 16), fdc::InputError);  // ranks per KV head
  CHECK_THROWS_WITH_AS(HeadLayout::uniform(4, 4, 64, 100, 16),
                       doctest::Contains("r_v = 100"), fdc::InputError);
}

TEST_CASE("decode bytes and flops by hand") {
  const HeadLayout L(2, 2, {{16, 32, 8, 16}, {64, 16, 64, 16}}, 16);
  // seq 0: 10 hi + 4 lo; seq 1: 3 hi
  const std::vector<int> hi{10, 3}, lo{4, 0};
  CHECK(decode_kv_bytes(L, hi, lo, 2) == 2 * (13 * (16 + 32 + 64 + 16) + 4 * (8 + 16 + 64 + 16)));
  CHECK(decode_flops(L, hi, lo) == 2 * (13 * (16 + 32 + 64 + 16) + 4 * (8 + 16 + 64 + 16)));
  const HeadLayout U = HeadLayout::uniform(4, 2, 64, 32, 16);
  // one sequence of 3 new tokens over 3 cached: 1 + 2 + 3 = 6 (query, key) pairs per q head
  CHECK(prefill_flops(U, {0, 3}, {3}) == 6 * 4 * 2 * (64 + 32));
  // 2 new tokens after 5 cached (7 in all): 6 + 7 pairs
  CHECK(prefill_flops(U, {0, 2}, {7}) == 13 * 4 * 2 * (64 + 32));
}
