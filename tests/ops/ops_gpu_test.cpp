// GPU suite of the layer ops against their CPU references (the same parameter structs): awkward
// sizes, both dtypes, outputs poisoned with NaN before every launch, tolerance atol + rtol*|ref|
// per dtype, NaN never passes.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/common/device_buffer.h"
#include "kernels/ops/launch.h"
#include "kernels/ops/reference.h"
#include "tests/ops/ops_test_data.h"

using namespace fdc;
using namespace fdc::kernels;
using namespace fdc::kernels::ops;
using namespace fdc::kernels::ops::test;

namespace {

struct Tol {
  double atol, rtol;
};
Tol tolerance(DType t) { return t == DType::kBF16 ? Tol{4e-3, 1.6e-2} : Tol{1e-3, 4e-3}; }

// Counts elements outside tolerance (NaN always counts) and reports the first few.
int compare(DType t, const std::vector<uint16_t>& got, const std::vector<uint16_t>& ref, const char* what, double scale = 1) {
  const Tol tol = tolerance(t);
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = bits_to_float(t, got[i]), r = bits_to_float(t, ref[i]);
    if (!(std::fabs(g - r) <= tol.atol * scale + tol.rtol * std::fabs(r))) {
      if (bad < 5) MESSAGE(what << "[" << i << "]: got " << g << ", expected " << r);
      ++bad;
    }
  }
  return bad;
}

std::vector<uint16_t> random_bits(DType t, size_t n, uint64_t seed, float amp = 1.f) {
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float_to_bits(t, amp * hash_uniform(seed, i, 0));
  return v;
}
uint16_t nan_bits(DType t) { return float_to_bits(t, std::numeric_limits<float>::quiet_NaN()); }

}  // namespace

namespace {

// Where k goes and how the cache is laid out. The default is RopeCase's: one sequence holding
// every token, 16-token pages in reverse order, k to both the packed row and the cache.
struct RopeDest {
  bool k_packed = true;
  bool k_cache = true;
  int block_size = RopeCase::kBlock;
  int num_seqs = 1;  // > 1: contiguous token spans, each after a prefix already in the cache
};

// One RoPE (+ rotation) launch against the reference: q, the packed k rows and the paged cache.
void check_rope_case(DType t, int d, int group, int tokens, bool rotate, const std::vector<int>& rank_of_head,
                     const RopeDest& dest = {}) {
  CAPTURE(to_string(t));
  CAPTURE(d);
  CAPTURE(group);
  CAPTURE(tokens);
  CAPTURE(rotate);
  CAPTURE(dest.k_packed);
  CAPTURE(dest.k_cache);
  CAPTURE(dest.block_size);
  CAPTURE(dest.num_seqs);
  const int hk = static_cast<int>(rank_of_head.size());
  std::vector<attn::HeadRanks> ranks;
  for (int r : rank_of_head) ranks.push_back({r, r, r, r});
  RopeCase c(t, tokens, group * hk, hk, d, ranks, 1234);
  std::vector<std::vector<float>> rot;
  for (int h = 0; h < hk; ++h) rot.push_back(random_orthogonal(d, 50u + static_cast<unsigned>(h)));
  c.set_rotation(rot);
  const int bs = dest.block_size;
  if (bs != RopeCase::kBlock || dest.num_seqs > 1) {
    // Sequence s holds tokens [s * tokens / S, (s + 1) * tokens / S) at slots after a prefix of
    // 7 * s + 3; the pages of all sequences are interleaved over the pool in reverse order.
    c.L = attn::HeadLayout(group * hk, hk, ranks, bs);
    const int S = dest.num_seqs;
    std::vector<int> first(static_cast<size_t>(S) + 1), seq_pages(static_cast<size_t>(S));
    for (int s = 0; s <= S; ++s) first[static_cast<size_t>(s)] = static_cast<int>(int64_t{s} * tokens / S);
    c.indptr.assign(1, 0);
    for (int s = 0; s < S; ++s) {
      const int prefix = 7 * s + 3, n = first[static_cast<size_t>(s) + 1] - first[static_cast<size_t>(s)];
      for (int i = 0; i < n; ++i) {
        c.seq_of[static_cast<size_t>(first[static_cast<size_t>(s)] + i)] = s;
        c.pos_of[static_cast<size_t>(first[static_cast<size_t>(s)] + i)] = prefix + i;
      }
      seq_pages[static_cast<size_t>(s)] = (prefix + n + bs - 1) / bs;
      c.indptr.push_back(c.indptr.back() + seq_pages[static_cast<size_t>(s)]);
    }
    c.pages = c.indptr.back();
    c.indices.assign(static_cast<size_t>(c.pages), 0);
    int next = c.pages;
    for (int j = 0, left = c.pages; left > 0; ++j)  // round-robin over the sequences, pages counting down
      for (int s = 0; s < S; ++s)
        if (j < seq_pages[static_cast<size_t>(s)]) {
          c.indices[static_cast<size_t>(c.indptr[static_cast<size_t>(s)] + j)] = --next;
          --left;
        }
  }
  RopeRotateParams hp = c.params(rotate);
  hp.block_size = bs;
  if (!dest.k_packed) hp.k_out = nullptr;
  if (!dest.k_cache) hp.hi_pool = nullptr;
  // Device copies of every input; outputs poisoned.
  DeviceBuffer<uint16_t> qkv(c.qkv_b), rotb(c.rot_b), q(c.q_b), k(c.k_b), cache(c.cache_b);
  DeviceBuffer<int> pos(c.positions), seq(c.seq_of), slot(c.pos_of), indptr(c.indptr), indices(c.indices);
  DeviceBuffer<float> cs(c.cos_sin);
  DeviceBuffer<attn::HeadInfo> heads(c.L.head_info());
  RopeRotateParams dp = hp;
  dp.qkv = qkv.data();
  dp.rotation = rotate ? rotb.data() : nullptr;
  dp.positions = pos.data();
  dp.cos_sin = cs.data();
  dp.heads = heads.data();
  dp.q_out = q.data();
  dp.k_out = dest.k_packed ? k.data() : nullptr;
  dp.hi_pool = dest.k_cache ? cache.data() : nullptr;
  dp.seq_of = seq.data();
  dp.pos_of = slot.data();
  dp.hi_page_indptr = indptr.data();
  dp.hi_page_indices = indices.data();
  launch_rope_rotate(dp, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  rope_rotate_reference(hp);  // fills c.q_b, c.k_b, c.cache_b
  CHECK(compare(t, q.download(), c.q_b, "q") == 0);
  if (dest.k_packed) CHECK(compare(t, k.download(), c.k_b, "k") == 0);
  if (!dest.k_cache) return;
  // Only the slots written are compared (the rest stays NaN on both sides).
  const auto cache_gpu = cache.download();
  const int64_t page_elems = c.L.page_elems(attn::TokenClass::kHi);
  int bad = 0;
  for (int tok = 0; tok < tokens; ++tok) {
    const int sl = c.pos_of[static_cast<size_t>(tok)];
    const int seq_first = c.indptr[static_cast<size_t>(c.seq_of[static_cast<size_t>(tok)])];
    const int page = c.indices[static_cast<size_t>(seq_first + sl / bs)];
    for (int kv = 0; kv < hk; ++kv)
      for (int j = 0; j < c.L.info(kv).rk; ++j) {
        const auto e = static_cast<size_t>(page * page_elems + attn::page_k_elem(c.L.info(kv), 0, sl % bs) + j);
        const double g = bits_to_float(t, cache_gpu[e]), r = bits_to_float(t, c.cache_b[e]);
        if (!(std::fabs(g - r) <= tolerance(t).atol + tolerance(t).rtol * std::fabs(r))) {
          if (bad < 5)
            MESSAGE("cache k of token " << tok << ", head " << kv << ", dim " << j << ": " << g << " vs " << r);
          ++bad;
        }
      }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("rope + rotation on the GPU matches the reference") {
  for (DType t : {DType::kBF16, DType::kFP16})
    for (int d : {64, 128})
      for (int group : {1, 4, 8})
        for (int tokens : {1, 3, 17, 129, 1000})
          for (bool rotate : {false, true}) {
            std::vector<int> ranks;
            for (int h = 0; h < 3; ++h) ranks.push_back(rotate ? std::min(d, 16 + 24 * h) : d);  // 16, 40, 64
            check_rope_case(t, d, group, tokens, rotate, ranks);
          }
}

TEST_CASE("fused rope + rotation: long batches, full rank beside a narrow head") {
  // 4097 tokens give every warp of the fused kernel several chunks (its pipeline), and the blocks'
  // chunk ranges cross KV heads; rank = head_dim is the widest R.
  for (DType t : {DType::kBF16, DType::kFP16}) {
    check_rope_case(t, 128, 4, 4097, true, {128, 24});
    check_rope_case(t, 64, 1, 4097, true, {16, 64});
  }
}

TEST_CASE("fused rope + rotation: blocks split by head and in contiguous ranges (FDCSIM_ROPE_ROTATE_SPLIT)") {
  // Token counts where the contiguous ranges cross KV heads (40 heads: 96 and 544 tokens) and where
  // a head's chunks outnumber its blocks' warps (4097); each split forced, then the launcher's pick.
  const char* old = std::getenv("FDCSIM_ROPE_ROTATE_SPLIT");
  const std::string saved = old ? old : "";
  std::vector<int> ranks40;
  for (int h = 0; h < 40; ++h) ranks40.push_back(16 + 8 * (h % 15));  // 16..128
  for (const char* split : {"contiguous", "heads", ""}) {
    CAPTURE(split);
    if (*split)
      ::setenv("FDCSIM_ROPE_ROTATE_SPLIT", split, 1);
    else
      ::unsetenv("FDCSIM_ROPE_ROTATE_SPLIT");
    for (int tokens : {1, 96, 544}) check_rope_case(DType::kBF16, 128, 1, tokens, true, ranks40);
    check_rope_case(DType::kFP16, 128, 4, 4097, true, {128, 24});
    check_rope_case(DType::kBF16, 64, 8, 300, true, {16, 40, 64});
  }
  ::setenv("FDCSIM_ROPE_ROTATE_SPLIT", "rows", 1);
  CHECK_THROWS_WITH_AS(check_rope_case(DType::kBF16, 128, 1, 96, true, {64, 64}),
                       doctest::Contains("FDCSIM_ROPE_ROTATE_SPLIT: expected 'contiguous' or 'heads', found 'rows'"),
                       fdc::InputError);
  if (old)
    ::setenv("FDCSIM_ROPE_ROTATE_SPLIT", saved.c_str(), 1);
  else
    ::unsetenv("FDCSIM_ROPE_ROTATE_SPLIT");
}

TEST_CASE("fused rope + rotation: every rank, every group, k to the cache or the packed row only") {
  // Ranks 16..d in steps of 8 (the layout's smallest rank up to a full row; odd vector counts) for
  // every GQA group the layout supports, whose 16-row chunks start at every offset within a
  // token's vectors; several sequences with prefixes, 32- and 64-token pages, and k written to one
  // destination only.
  struct Dest {
    int group;
    RopeDest dest;
  };
  const Dest cases[] = {
      {1, {true, false, 16, 1}},  // packed k only
      {2, {true, true, 32, 2}},
      {4, {false, true, 64, 3}},  // cache only
      {8, {true, true, 64, 4}},
  };
  for (DType t : {DType::kBF16, DType::kFP16})
    for (int d : {64, 128})
      for (const Dest& c : cases) {
        std::vector<int> ranks;
        for (int r = 16; r <= d; r += 8) ranks.push_back(r);
        check_rope_case(t, d, c.group, 100 + 37 * c.group, true, ranks, c.dest);
      }
  // RoPE alone with the same destinations (its own kernel; unchanged behaviour).
  for (DType t : {DType::kBF16, DType::kFP16}) {
    RopeDest dest;
    dest.block_size = 64;
    dest.num_seqs = 3;
    dest.k_packed = false;
    check_rope_case(t, 128, 2, 333, false, {128, 128}, dest);
  }
}

TEST_CASE("projections through cuBLASLt and cuBLAS match the reference") {
  GemmRunner runner;
  for (DType t : {DType::kBF16, DType::kFP16})
    for (int64_t m : {1, 3, 17, 129})
      for (int64_t n : {8, 136, 1000})
        for (int64_t k : {8, 64, 520})
          for (GemmBackend b : {GemmBackend::kCublasLt, GemmBackend::kCublas}) {
            CAPTURE(to_string(t));
            CAPTURE(m);
            CAPTURE(n);
            CAPTURE(k);
            CAPTURE(to_string(b));
            const auto xh = random_bits(t, size_t(m * k), 1), wh = random_bits(t, size_t(n * k), 2);
            std::vector<uint16_t> ref(size_t(m * n));
            gemm_reference({t, m, n, k, xh.data(), wh.data(), ref.data()});
            DeviceBuffer<uint16_t> x(xh), w(wh), out(std::vector<uint16_t>(size_t(m * n), nan_bits(t)));
            runner.run({t, m, n, k, x.data(), w.data(), out.data()}, b, nullptr);
            CUDA_CHECK(cudaDeviceSynchronize());
            // Sums of k products of values in [-1, 1]: the accumulation order differs from the
            // reference's, so the absolute part scales with sqrt(k).
            CHECK(compare(t, out.download(), ref, "out", std::sqrt(double(k))) == 0);
          }
}

TEST_CASE("bucketed and tuned cuBLASLt planning: heuristic queries per bucket, results equal the reference") {
  for (GemmRunner::Planning planning :
       {GemmRunner::Planning::kTuned, GemmRunner::Planning::kTunedNeighbours, GemmRunner::Planning::kBucketed}) {
    CAPTURE(to_string(planning));
    GemmRunner runner(size_t{32} << 20, planning);
    const bool tuned = planning != GemmRunner::Planning::kBucketed;
    const int64_t per_bucket = planning == GemmRunner::Planning::kTunedNeighbours ? 2 : 1;
    const DType t = DType::kBF16;
    const int64_t n = 136, k = 520, max_m = 1100;
    const auto xh = random_bits(t, size_t(max_m * k), 3), wh = random_bits(t, size_t(n * k), 4);
    DeviceBuffer<uint16_t> x(xh), w(wh), out(size_t(max_m * n));
    runner.warm({t, 0, n, k, x.data(), w.data(), out.data()}, max_m, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    const int64_t after_warm = runner.heuristic_queries();
    CHECK(after_warm >= per_bucket * (7 + 30 + 1));  // buckets 8 .. 1152
    CHECK(after_warm <= per_bucket * (7 + 30 + 1) + 7 + 30 + 1);
    if (tuned) {
      // Buckets are timed once each (those where the heuristic has a single answer are not).
      CHECK(runner.tuned_buckets() >= 1);
      CHECK(runner.tuned_buckets() <= 7 + 30 + 1);
      CHECK(runner.retuned_buckets() <= runner.tuned_buckets());
    } else {
      CHECK(runner.tuned_buckets() == 0);
    }
    for (int64_t m : {1, 5, 26, 27, 935, 941, 1100}) {
      CAPTURE(m);
      std::vector<uint16_t> ref(size_t(m * n));
      gemm_reference({t, m, n, k, xh.data(), wh.data(), ref.data()});
      CUDA_CHECK(cudaMemcpy(out.data(), std::vector<uint16_t>(size_t(m * n), nan_bits(t)).data(), size_t(m * n) * 2,
                            cudaMemcpyHostToDevice));
      runner.run({t, m, n, k, x.data(), w.data(), out.data()}, GemmBackend::kCublasLt, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<uint16_t> got(size_t(m * n));
      CUDA_CHECK(cudaMemcpy(got.data(), out.data(), got.size() * 2, cudaMemcpyDeviceToHost));
      CHECK(compare(t, got, ref, "out", std::sqrt(double(k))) == 0);
    }
    // Row counts inside warmed buckets ask the heuristic again only where the check refused.
    CHECK(runner.heuristic_queries() - after_warm <= 7);
  }
}

TEST_CASE("FDCSIM_GEMM_PLANNING: tuned when unset, an unknown value refused") {
  const char* before = std::getenv("FDCSIM_GEMM_PLANNING");
  const std::string saved = before ? before : "";
  ::unsetenv("FDCSIM_GEMM_PLANNING");
  CHECK(GemmRunner::planning_from_env() == GemmRunner::Planning::kTuned);
  ::setenv("FDCSIM_GEMM_PLANNING", "bucketed", 1);
  CHECK(GemmRunner::planning_from_env() == GemmRunner::Planning::kBucketed);
  ::setenv("FDCSIM_GEMM_PLANNING", "tuned-neighbours", 1);
  CHECK(GemmRunner::planning_from_env() == GemmRunner::Planning::kTunedNeighbours);
  ::setenv("FDCSIM_GEMM_PLANNING", "fastest", 1);
  CHECK_THROWS_WITH_AS(GemmRunner::planning_from_env(), doctest::Contains("found 'fastest'"), fdc::InputError);
  if (before)
    ::setenv("FDCSIM_GEMM_PLANNING", saved.c_str(), 1);
  else
    ::unsetenv("FDCSIM_GEMM_PLANNING");
}

TEST_CASE("norms, residual add and activations match the reference") {
  for (DType t : {DType::kBF16, DType::kFP16}) {
    CAPTURE(to_string(t));
    for (int64_t rows : {1, 3, 17, 129})
      // Widths for 1, 2, 4 and 8 vectors per thread, and rows that leave threads idle.
      for (int dim : {8, 136, 4096, 5120, 8200, 24576, 65536})
        for (NormKind kind : {NormKind::kRmsNorm, NormKind::kLayerNorm}) {
          CAPTURE(rows);
          CAPTURE(dim);
          const auto xh = random_bits(t, size_t(rows * dim), 3, 3.f), wh = random_bits(t, size_t(dim), 4),
                     bh = random_bits(t, size_t(dim), 5);
          const bool ln = kind == NormKind::kLayerNorm;
          std::vector<uint16_t> ref(xh.size());
          norm_reference({t, kind, rows, dim, 1e-5f, xh.data(), wh.data(), ln ? bh.data() : nullptr, ref.data()});
          DeviceBuffer<uint16_t> x(xh), w(wh), b(bh), out(std::vector<uint16_t>(xh.size(), nan_bits(t)));
          launch_norm({t, kind, rows, dim, 1e-5f, x.data(), w.data(), ln ? b.data() : nullptr, out.data()}, nullptr);
          CUDA_CHECK(cudaDeviceSynchronize());
          CHECK(compare(t, out.download(), ref, "norm") == 0);
        }
    for (int64_t n : {1, 3, 17, 129, 1000, 4097}) {
      CAPTURE(n);
      const auto ah = random_bits(t, size_t(n), 6), bh = random_bits(t, size_t(n), 7);
      std::vector<uint16_t> ref(static_cast<size_t>(n));
      residual_reference({t, n, ah.data(), bh.data(), ref.data()});
      DeviceBuffer<uint16_t> a(ah), b(bh), out(std::vector<uint16_t>(size_t(n), nan_bits(t)));
      launch_residual({t, n, a.data(), b.data(), out.data()}, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      CHECK(compare(t, out.download(), ref, "residual") == 0);
    }
    for (int64_t rows : {1, 3, 129})
      for (int f : {8, 136, 13824})
        for (ActKind kind : {ActKind::kSwiGlu, ActKind::kRelu}) {
          CAPTURE(rows);
          CAPTURE(f);
          const size_t in_n = size_t(rows) * size_t(f) * (kind == ActKind::kSwiGlu ? 2 : 1);
          const auto ih = random_bits(t, in_n, 8, 4.f);
          std::vector<uint16_t> ref(size_t(rows) * size_t(f));
          act_reference({t, kind, rows, f, ih.data(), ref.data()});
          DeviceBuffer<uint16_t> in(ih), out(std::vector<uint16_t>(ref.size(), nan_bits(t)));
          launch_act({t, kind, rows, f, in.data(), out.data()}, nullptr);
          CUDA_CHECK(cudaDeviceSynchronize());
          CHECK(compare(t, out.download(), ref, "act") == 0);
        }
  }
}

TEST_CASE("GPU launchers refuse misaligned pointers and bad shapes") {
  DeviceBuffer<uint16_t> a(64), b(64);
  CHECK_THROWS_AS(launch_residual({DType::kBF16, 8, a.data() + 1, b.data(), b.data()}, nullptr), InputError);
  CHECK_THROWS_AS(launch_norm({DType::kBF16, NormKind::kRmsNorm, 1, 12, 1e-5f, a.data(), b.data(), nullptr, b.data()}, nullptr),
                  InputError);
  GemmRunner runner;
  CHECK_THROWS_AS(runner.run({DType::kFP32, 8, 8, 8, a.data(), b.data(), a.data()}, GemmBackend::kCublasLt, nullptr),
                  InputError);
}
