// GPU test of the prompt classifier (kernels/attention/classify.h) against a CPU reference:
// segments of awkward lengths (empty ones included), hi counts from none to all, per-head ranks,
// row strides wider than the packed rows; outputs poisoned before every run. The rows' dropped
// dims hold multiples of 1/8, so every importance is exact in float whatever the summation order
// and ties are real: they must resolve in row order.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention/classify.h"
#include "kernels/attention/layout.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/common/dtype.h"

using namespace fdc::kernels;
using namespace fdc::kernels::attn;

namespace {

constexpr int kBlock = 16;
constexpr int kPoison = -7;

// Rows of packed k (or v) with `stride` elements: dims [lo, r) of head h hold `tail(row)`, the kept
// dims [0, lo) random values (which must not count), the stride's padding a large constant.
std::vector<uint16_t> make_rows(int rows, int stride, const HeadLayout& L, bool keys, const std::vector<float>& tail,
                                uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-4.f, 4.f);
  std::vector<uint16_t> x(static_cast<size_t>(rows) * stride, float_to_bits(DType::kBF16, 100.f));
  for (int r = 0; r < rows; ++r)
    for (const HeadInfo& h : L.head_info()) {
      const int off = keys ? h.k_offset : h.v_offset, lo = keys ? h.rk_lo : h.rv_lo, rank = keys ? h.rk : h.rv;
      for (int d = 0; d < rank; ++d)
        x[static_cast<size_t>(r) * stride + off + d] =
            float_to_bits(DType::kBF16, d < lo ? u(rng) : tail[static_cast<size_t>(r)]);
    }
  return x;
}

struct Classes {
  std::vector<int> cls, pos;
};

// Each segment's rows by importance, largest first and ties in row order: the first n_hi are hi
// (class 0, slots 0..n_hi-1), the others lo (class 1, slots from 0).
Classes reference_classify(const std::vector<double>& importance, const std::vector<int>& cu,
                           const std::vector<int>& n_hi) {
  Classes c{std::vector<int>(importance.size()), std::vector<int>(importance.size())};
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    std::vector<int> rows;
    for (int r = cu[s]; r < cu[s + 1]; ++r) rows.push_back(r);
    std::stable_sort(rows.begin(), rows.end(), [&](int a, int b) {
      return importance[static_cast<size_t>(a)] > importance[static_cast<size_t>(b)];
    });
    for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
      const bool hi = i < n_hi[s];
      c.cls[static_cast<size_t>(rows[static_cast<size_t>(i)])] = hi ? 0 : 1;
      c.pos[static_cast<size_t>(rows[static_cast<size_t>(i)])] = hi ? i : i - n_hi[s];
    }
  }
  return c;
}

// odd_strides: rows of k and v strides that are not multiples of 8 elements, so the importance
// kernel takes its element loads instead of 16-byte ones.
void run_case(TokenClassifier& classifier, const HeadLayout& L, const std::vector<int>& lengths, int hi_slots,
              uint64_t seed, bool odd_strides) {
  std::vector<int> cu{0}, seg_of, n_hi;
  for (size_t s = 0; s < lengths.size(); ++s) {
    cu.push_back(cu.back() + lengths[s]);
    seg_of.insert(seg_of.end(), static_cast<size_t>(lengths[s]), static_cast<int>(s));
    n_hi.push_back(hi_count(lengths[s], hi_slots, kBlock));
  }
  const int rows = cu.back();
  // Row r's dropped dims all hold j/8, j in 1..13: many rows of a segment tie.
  std::vector<float> tail(static_cast<size_t>(rows));
  for (int r = 0; r < rows; ++r)
    tail[static_cast<size_t>(r)] = static_cast<float>(1 + (r * 7 + static_cast<int>(seed)) % 13) / 8.f;
  std::vector<double> importance(static_cast<size_t>(rows), 0.0);
  for (int r = 0; r < rows; ++r)
    for (const HeadInfo& h : L.head_info())
      importance[static_cast<size_t>(r)] +=
          double(h.rk - h.rk_lo + h.rv - h.rv_lo) * tail[static_cast<size_t>(r)] * tail[static_cast<size_t>(r)];
  const int k_stride = L.k_row() + (odd_strides ? 3 : 8), v_stride = L.v_row() + (odd_strides ? 5 : 16);
  DeviceBuffer<uint16_t> k(make_rows(rows, k_stride, L, true, tail, seed)),
      v(make_rows(rows, v_stride, L, false, tail, seed + 1));
  DeviceBuffer<HeadInfo> heads(L.head_info());
  DeviceBuffer<int> dcu(cu), dseg(seg_of.empty() ? std::vector<int>{0} : seg_of), dhi(n_hi);
  DeviceBuffer<int> cls(std::vector<int>(static_cast<size_t>(rows), kPoison)),
      pos(std::vector<int>(static_cast<size_t>(rows), kPoison));
  classifier.classify(k.data(), k_stride, v.data(), v_stride, heads.data(), L.num_kv_heads(), rows, dcu.data(),
                      static_cast<int>(lengths.size()), dseg.data(), dhi.data(), cls.data(), pos.data(), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const Classes want = reference_classify(importance, cu, n_hi);
  const std::vector<int> got_cls = cls.download(), got_pos = pos.download();
  int wrong = 0;
  for (int r = 0; r < rows; ++r) {
    const auto i = static_cast<size_t>(r);
    if (got_cls[i] != want.cls[i] || got_pos[i] != want.pos[i]) {
      if (wrong++ < 5)
        MESSAGE("row " << r << ": class " << got_cls[i] << " slot " << got_pos[i] << ", want class " << want.cls[i]
                       << " slot " << want.pos[i]);
    }
  }
  std::string shape;
  for (int n : lengths) shape += std::to_string(n) + " ";
  INFO("segments [ " << shape << "], hi slots " << hi_slots << " of " << kBlock
                     << (odd_strides ? ", odd strides" : ""));
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("classifier keeps each prompt's most important rows hi, ties in row order") {
  // Per-head ranks with token classes (lo ranks below the hi ones; one head without a tail).
  const HeadLayout L(6, 3, {{64, 32, 16, 16}, {128, 96, 32, 24}, {48, 48, 48, 48}}, kBlock);
  // Both methods; the counting one's column tiles split the 1000- and 4097-row prompts, and a batch
  // of more than kMaxCountRows rows goes to the sort whatever the method.
  for (const auto method : {TokenClassifier::Method::kCount, TokenClassifier::Method::kSort}) {
    INFO("method " << to_string(method));
    TokenClassifier classifier(method);  // one workspace, grown and reused across the cases
    CHECK(classifier.method() == method);
    const std::vector<std::vector<int>> cases = {
        {1},           {3},    {17, 0, 129, 5},       {1000},
        {4097, 1, 17}, {2, 3}, {255, 257, 0, 1, 300}, {TokenClassifier::kMaxCountRows + 7}};
    uint64_t seed = 1;
    for (const auto& lengths : cases)
      for (int hi_slots : {0, 5, 8, 16}) {
        run_case(classifier, L, lengths, hi_slots, seed, seed % 3 == 0);
        ++seed;
      }
  }
}

TEST_CASE("FDCSIM_CLASSIFY picks the default classifier's method") {
  const char* before = std::getenv("FDCSIM_CLASSIFY");
  const std::string saved = before ? before : "";
  setenv("FDCSIM_CLASSIFY", "sort", 1);
  CHECK(TokenClassifier().method() == TokenClassifier::Method::kSort);
  setenv("FDCSIM_CLASSIFY", "count", 1);
  CHECK(TokenClassifier().method() == TokenClassifier::Method::kCount);
  setenv("FDCSIM_CLASSIFY", "quick", 1);
  CHECK_THROWS_WITH_AS(TokenClassifier::method_from_env(), doctest::Contains("FDCSIM_CLASSIFY"), fdc::InputError);
  unsetenv("FDCSIM_CLASSIFY");
  CHECK(TokenClassifier().method() == TokenClassifier::Method::kCount);
  if (before) setenv("FDCSIM_CLASSIFY", saved.c_str(), 1);
}
