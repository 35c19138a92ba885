// The Ulysses layout plan executed on the host (pack, all-to-all, unpack) against the reference
// computed from head ownership alone; exactly-predictable collective inputs; bus-bandwidth
// factors; the fork launcher.
#include <doctest/doctest.h>

#include <csignal>

#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "core/error.h"
#include "kernels/comm/collectives.h"
#include "kernels/comm/launcher.h"
#include "kernels/comm/pattern.h"
#include "kernels/comm/ulysses_plan.h"
#include "kernels/common/dtype.h"

using namespace fdc;
using namespace fdc::kernels;
using namespace fdc::kernels::comm;

namespace {

UlyssesShape shape(int ranks, std::vector<int64_t> tokens, int hq, int hk, std::vector<int> rk, std::vector<int> rv) {
  return UlyssesShape{ranks, std::move(tokens), hq, hk, std::move(rk), std::move(rv)};
}
std::vector<int> spread(int hk, int base, int step) {
  std::vector<int> r;
  for (int h = 0; h < hk; ++h) r.push_back(base + step * (h % 4));
  return r;
}
void fill(std::vector<uint16_t>& v, int64_t n, int salt, int rank) {
  v.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = float_to_bf16_bits(matrix_pattern(rank, i, salt));
}

}  // namespace

TEST_CASE("Ulysses plan moves every element where head ownership says (both directions)") {
  const std::vector<UlyssesShape> cases = {
      shape(1, {17}, 4, 4, spread(4, 16, 8), spread(4, 32, 16)),
      shape(2, {3, 17}, 40, 40, std::vector<int>(40, 64), std::vector<int>(40, 64)),
      shape(2, {1, 0}, 8, 8, spread(8, 16, 16), spread(8, 8, 8)),
      shape(3, {5, 7, 1}, 32, 8, spread(8, 32, 16), spread(8, 16, 32)),  // GQA 4, heads 3/3/2
      shape(4, {129, 4, 17, 1000}, 20, 5, spread(5, 16, 8), spread(5, 128, -32)),  // heads 2/1/1/1
      shape(8, {1, 3, 17, 129, 0, 2, 9, 4}, 64, 8, spread(8, 64, 16), spread(8, 32, 8)),  // GQA 8
  };
  for (const UlyssesShape& s : cases) {
    CAPTURE(s.ranks);
    CAPTURE(s.num_q_heads);
    CAPTURE(s.num_kv_heads);
    const UlyssesPlan plan = plan_ulysses(s);
    // Head blocks cover every KV head once, in order, sizes differing by at most one.
    int prev_end = 0, most = 0, least = 1 << 30;
    for (const RankPlan& r : plan.ranks) {
      CHECK(r.kv_begin == prev_end);
      prev_end = r.kv_end;
      most = std::max(most, r.kv_end - r.kv_begin);
      least = std::min(least, r.kv_end - r.kv_begin);
    }
    CHECK(prev_end == s.num_kv_heads);
    CHECK(most - least <= 1);

    std::vector<RankBuffers> run(static_cast<size_t>(s.ranks)), ref(static_cast<size_t>(s.ranks));
    for (int p = 0; p < s.ranks; ++p) {
      const RankPlan& r = plan.ranks[p];
      auto& b = run[static_cast<size_t>(p)];
      for (int i = 0; i < kNumBufs; ++i) b[static_cast<size_t>(i)].assign(static_cast<size_t>(r.elems[static_cast<size_t>(i)]), 0xFFFF);
      fill(b[static_cast<size_t>(Buf::kQ)], r.elems[static_cast<size_t>(Buf::kQ)], 0, p);
      fill(b[static_cast<size_t>(Buf::kK)], r.elems[static_cast<size_t>(Buf::kK)], 1, p);
      fill(b[static_cast<size_t>(Buf::kV)], r.elems[static_cast<size_t>(Buf::kV)], 2, p);
      fill(b[static_cast<size_t>(Buf::kOutHeads)], r.elems[static_cast<size_t>(Buf::kOutHeads)], 3, p);
      ref[static_cast<size_t>(p)] = b;
    }
    for (int p = 0; p < s.ranks; ++p) apply_segments(plan.ranks[p].pack, run[static_cast<size_t>(p)]);
    host_all_to_all(plan, run, false);
    for (int p = 0; p < s.ranks; ++p) apply_segments(plan.ranks[p].unpack, run[static_cast<size_t>(p)]);
    host_all_to_all(plan, run, true);
    for (int p = 0; p < s.ranks; ++p) apply_segments(plan.ranks[p].out_unpack, run[static_cast<size_t>(p)]);
    ulysses_reference_forward(plan, ref);
    ulysses_reference_backward(plan, ref);
    for (int p = 0; p < s.ranks; ++p)
      for (Buf b : {Buf::kQHeads, Buf::kKHeads, Buf::kVHeads, Buf::kOut}) {
        CAPTURE(p);
        CAPTURE(static_cast<int>(b));
        CHECK(run[static_cast<size_t>(p)][static_cast<size_t>(b)] == ref[static_cast<size_t>(p)][static_cast<size_t>(b)]);
      }
  }
}

TEST_CASE("Ulysses plan refuses what it cannot lay out") {
  CHECK_THROWS_AS(plan_ulysses(shape(8, std::vector<int64_t>(8, 4), 32, 4, spread(4, 16, 8), spread(4, 16, 8))),
                  InputError);  // fewer KV heads than GPUs
  CHECK_THROWS_AS(plan_ulysses(shape(2, {1, 2}, 4, 4, {16, 12, 16, 16}, spread(4, 16, 8))), InputError);
  CHECK_THROWS_AS(plan_ulysses(shape(2, {1}, 4, 4, spread(4, 16, 8), spread(4, 16, 8))), InputError);
  CHECK_THROWS_AS(plan_ulysses(shape(2, {1, -1}, 4, 4, spread(4, 16, 8), spread(4, 16, 8))), InputError);
  CHECK_THROWS_AS(plan_ulysses(shape(2, {1, 1}, 6, 4, spread(4, 16, 8), spread(4, 16, 8))), InputError);
}

TEST_CASE("collective patterns are exact in bf16 and fp16, sums of up to 8 ranks included") {
  for (DType t : {DType::kBF16, DType::kFP16}) {
    for (int64_t row = 0; row < 300; row += 7)
      for (int64_t col = 0; col < 2000; col += 3) {
        const float v = matrix_pattern(row, col, 5);
        REQUIRE(round_to(t, v) == v);
      }
    for (int ranks = 1; ranks <= 8; ++ranks)
      for (int64_t i = 0; i < 64; ++i) {
        float partial = 0.f;  // every partial sum of a ring or tree is exact too
        for (int r = 0; r < ranks; ++r) {
          partial = round_to(t, partial + allreduce_input(r, i));
          REQUIRE(round_to(t, allreduce_input(r, i)) == allreduce_input(r, i));
        }
        REQUIRE(partial == allreduce_sum(ranks, i));
      }
  }
}

TEST_CASE("bus bandwidth factors follow nccl-tests") {
  CHECK(bus_factor(Collective::kAllReduce, 2) == 1.0);
  CHECK(bus_factor(Collective::kAllToAll, 2) == 0.5);
  CHECK(bus_factor(Collective::kAllGather, 8) == doctest::Approx(0.875));
  CHECK(bus_factor(Collective::kAllReduce, 8) == doctest::Approx(1.75));
  // 1 GB all-reduced on 8 GPUs in 10 ms: algbw 100 GB/s, busbw 175 GB/s.
  CHECK(bus_bandwidth_gbps(Collective::kAllReduce, 8, 1e9, 0.01) == doctest::Approx(175.0));
}

TEST_CASE("run_ranks passes rank 0's token to every rank and reports failures") {
  auto ok = run_ranks(
      4, [] { return std::string("token-\n-with-newline"); },
      [](int rank, int n, const std::string& tok) { return (n == 4 && rank < 4 && tok == "token-\n-with-newline") ? 0 : 7; },
      30.0);
  CHECK(ok.exit_code == 0);
  CHECK(ok.failed_rank == -1);
  auto bad = run_ranks(
      3, [] { return std::string("t"); }, [](int rank, int, const std::string&) { return rank == 2 ? 5 : 0; }, 30.0);
  CHECK(bad.exit_code == 5);
  CHECK(bad.failed_rank == 2);
  // A rank that never finishes is stopped at the deadline.
  const auto t0 = std::chrono::steady_clock::now();
  auto hung = run_ranks(
      2, [] { return std::string("t"); },
      [](int rank, int, const std::string&) {
        if (rank == 1) ::pause();
        return 0;
      },
      0.3);
  CHECK(hung.timed_out);
  CHECK(hung.exit_code != 0);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10.0);
  // A rank that ignores SIGTERM (as one stuck in a driver call may) is killed after the grace time.
  const auto t1 = std::chrono::steady_clock::now();
  auto deaf = run_ranks(
      2, [] { return std::string("t"); },
      [](int rank, int, const std::string&) {
        if (rank == 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));  // rank 1 ignores SIGTERM by then
          return 4;
        }
        ::signal(SIGTERM, SIG_IGN);
        ::pause();
        return 0;
      },
      30.0, 0.2);
  CHECK(deaf.exit_code == 4);
  CHECK(deaf.failed_rank == 0);
  CHECK_FALSE(deaf.timed_out);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() < 10.0);
  // Rank 0 failing before it passes the token on must not leave the others waiting.
  auto early = run_ranks(
      3, []() -> std::string { throw InputError("no token today"); },
      [](int, int, const std::string&) { return 0; }, 30.0);
  CHECK(early.exit_code != 0);
  CHECK_FALSE(early.timed_out);
}
