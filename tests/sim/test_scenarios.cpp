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

namespace {
// request id -> the replica it was routed to (requests.csv's second column).
std::map<uint64_t, int> replicas_of(const std::string& csv) {
  std::map<uint64_t, int> out;
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    const size_t a = line.find(','), b = line.find(',', a + 1);
    out[std::stoull(line.substr(0, a))] = std::stoi(line.substr(a + 1, b - a - 1));
  }
  return out;
}

std::map<uint64_t, int> route(const std::string& router, std::vector<traces::RequestSpec> reqs, bool fast_forward,
                              int64_t per_token_ns = 10'000) {
  Json j = test::toy_experiment(100, 4);
  j["hardware"]["gpus_per_server"] = 2;  // two replicas
  j["cluster"] = {{"servers", 1}, {"router", router}};
  j["simulator"] = {{"fast_forward", fast_forward}};
  auto e = test::make_toy(j, std::move(reqs));
  test::ToyCostModel cost(1'000'000, per_token_ns);
  std::ostringstream csv;
  sim::Simulator s(e, cost, {&csv, nullptr, nullptr});
  s.run();
  CHECK(s.summary()["cluster"]["router"] == router);
  return replicas_of(csv.str());
}
}  // namespace

TEST_CASE("routers: round robin, fewest in flight, and fewest KV blocks (in use and queued)") {
  // A long prompt (20 blocks of 4 tokens) on replica 0, then three short ones (1-2 blocks each).
  // At 5 ms both replicas hold one request: fewest-in-flight ties to replica 0 (and sends the next
  // to replica 1), the KV-aware router sees 20+ blocks there against 2 and sends both to replica 1.
  const std::vector<traces::RequestSpec> reqs = {req(0, 0, 80, 50), req(1, 0.1, 4, 50), req(2, 5, 4, 50),
                                                 req(3, 5.1, 4, 50)};
  for (bool ff : {false, true}) {
    CAPTURE(ff);
    CHECK(route("round_robin", reqs, ff) == std::map<uint64_t, int>{{0, 0}, {1, 1}, {2, 0}, {3, 1}});
    CHECK(route("least_outstanding", reqs, ff) == std::map<uint64_t, int>{{0, 0}, {1, 1}, {2, 0}, {3, 1}});
    CHECK(route("kv_aware", reqs, ff) == std::map<uint64_t, int>{{0, 0}, {1, 1}, {2, 1}, {3, 1}});
  }
  // Queued blocks count: replica 0 prefills 8 tokens (2 blocks) until 1.08 ms; request 1 (80
  // tokens) starts on idle replica 1 (20 blocks); request 2 (80) goes to replica 0 (2 < 20) and
  // waits there, 20 blocks queued; request 3 then sees 22 against 20 and goes to replica 1 (by
  // blocks in use alone it would go to replica 0).
  const std::vector<traces::RequestSpec> queued = {req(0, 0, 8, 5), req(1, 0.01, 80, 5), req(2, 0.02, 80, 5),
                                                   req(3, 0.03, 4, 5)};
  CHECK(route("kv_aware", queued, false) == std::map<uint64_t, int>{{0, 0}, {1, 1}, {2, 0}, {3, 1}});

  // An arrival at the very end of an iteration sees the next iteration's blocks, as stepping does,
  // also inside a fast-forwarded stretch. Every iteration 1 ms; replica 0 decodes a 6-token prompt,
  // replica 1 a 4-token one. At 5 ms replica 1's next decode step takes its third block (9 tokens)
  // as replica 0 holds three (11 tokens): a tie, to replica 0; a router reading replica 1 before
  // that step would see two blocks and pick it.
  const std::vector<traces::RequestSpec> at_end = {req(0, 0, 6, 30), req(1, 0, 4, 30), req(2, 5, 4, 5)};
  for (bool ff : {false, true}) {
    CAPTURE(ff);
    CHECK(route("kv_aware", at_end, ff, 0) == std::map<uint64_t, int>{{0, 0}, {1, 1}, {2, 0}});
  }
}
