// Hand-computable runs: exact integer-nanosecond times under the toy cost model
// (iteration = 1 ms + 10 us per new token).
#include <doctest/doctest.h>

#include <sstream>

#include "sim/simulator.h"
#include "tests/sim/sim_fixtures.h"

using namespace fdc;
using fdc::test::req;

namespace {
struct Row {
  std::string status;
  double ttft_ms, jct_ms;
  int preemptions;
};
std::map<uint64_t, Row> parse_rows(const std::string& csv) {
  std::map<uint64_t, Row> rows;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    std::string x;
    while (std::getline(ls, x, ',')) f.push_back(x);
    while (f.size() < 12) f.push_back("");
    rows[std::stoull(f[0])] =
        Row{f[2], f[8].empty() ? -1 : std::stod(f[8]), f[10].empty() ? -1 : std::stod(f[10]), std::stoi(f[11])};
  }
  return rows;
}
}  // namespace

TEST_CASE("one request: prefill then decodes, exact times") {
  auto e = test::make_toy(test::toy_experiment(100, 16), {req(0, 0, 10, 3)});
  test::ToyCostModel cost(1'000'000, 10'000);
  std::ostringstream csv;
  sim::Simulator s(e, cost, {&csv, nullptr, nullptr});
  s.run();
  // prefill 10 tokens: 1.1 ms -> token 1; two decodes of 1.01 ms -> tokens 2, 3.
  auto rows = parse_rows(csv.str());
  CHECK(rows[0].status == "completed");
  CHECK(rows[0].ttft_ms == doctest::Approx(1.1).epsilon(1e-12));
  CHECK(rows[0].jct_ms == doctest::Approx(3.12).epsilon(1e-12));
  const auto& t = s.totals();
  CHECK(t.iterations == 3);
  CHECK(t.tbt.count() == 2);
  CHECK(t.tbt.min() == doctest::Approx(0.00101));
  CHECK(t.tbt.max() == doctest::Approx(0.00101));
  CHECK(t.last_completion.ns() == 3'120'000);
  CHECK(csv.str().find("0,0,completed,,0.000000,10,3,0.000000,1.100000,1.010000,3.120000,0\n") != std::string::npos);
}

TEST_CASE("two requests share a decode batch, exact times") {
  // A(10 prompt, 3 out) at 0; B(20, 2) at 0.5 ms.
  auto e = test::make_toy(test::toy_experiment(100, 16), {req(0, 0, 10, 3), req(1, 0.5, 20, 2)});
  test::ToyCostModel cost(1'000'000, 10'000);
  std::ostringstream csv;
  sim::Simulator s(e, cost, {&csv, nullptr, nullptr});
  s.run();
  auto rows = parse_rows(csv.str());
  // 0: prefill A (1.1 ms) -> 1.1: prefill B (1.2 ms) -> 2.3: decode A+B (1.02 ms) -> 3.32: decode A -> 4.33.
  CHECK(rows[0].ttft_ms == doctest::Approx(1.1));
  CHECK(rows[1].ttft_ms == doctest::Approx(1.8));  // 2.3 - 0.5
  CHECK(rows[1].jct_ms == doctest::Approx(2.82));  // 3.32 - 0.5
  CHECK(rows[0].jct_ms == doctest::Approx(4.33));
  CHECK(s.totals().iterations == 4);
  CHECK(s.totals().max_batch_seqs == 2);
  // TBT gaps: A 2.22 (stalled by B's prefill) and 1.01; B 1.02.
  CHECK(s.totals().tbt.count() == 3);
  CHECK(s.totals().tbt.max() == doctest::Approx(0.00222));
  CHECK(s.totals().tbt.min() == doctest::Approx(0.00101));
}

TEST_CASE("a preemption by recompute, exact times") {
  // block_size 4, 6 blocks. A(8, 8) and B(8, 8) both at t=0; A's arrival (earlier in event order)
  // starts an iteration before B's arrival is seen.
  // 0: prefill A (1.08 ms) -> 1.08: prefill B (1.08 ms) -> 2.16: B's token 1. 4 blocks used.
  // Decodes of A+B (1.02 ms): step k caches token 8+k. Step 1 takes a 3rd block each (6 used);
  //   steps 2-4 fit 12 tokens; step 5 needs a 4th block for A: none free -> B (admitted last) is
  //   preempted at 2.16 + 4 x 1.02 = 6.24 ms, with 5 tokens.
  // A decodes alone (1.01 ms): tokens 6, 7, 8 -> done at 9.27 ms.
  // B's recompute needs 8 + 5 = 13 tokens = 4 blocks up front: only after A frees its blocks.
  // 9.27: B prefills 13 tokens (1.13 ms) -> 10.40: token 6; 2 decodes -> 12.42 ms.
  auto e = test::make_toy(test::toy_experiment(6, 4), {req(0, 0, 8, 8), req(1, 0, 8, 8)});
  test::ToyCostModel cost(1'000'000, 10'000);
  std::ostringstream csv;
  sim::Simulator s(e, cost, {&csv, nullptr, nullptr});
  s.run();
  auto rows = parse_rows(csv.str());
  CHECK(s.totals().preemptions == 1);
  CHECK(rows[0].preemptions == 0);
  CHECK(rows[1].preemptions == 1);
  CHECK(rows[0].jct_ms == doctest::Approx(9.27));
  CHECK(rows[1].jct_ms == doctest::Approx(12.42));
  CHECK(rows[1].ttft_ms == doctest::Approx(2.16));  // the first token counts from the first prefill
  // B's gap across its preemption: from 6.24 to 10.40.
  CHECK(s.totals().tbt.max() == doctest::Approx(0.00416));
}
