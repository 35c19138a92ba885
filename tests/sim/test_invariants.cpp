// Invariants under stress: every arrived request completes or is rejected with a reason, KV in
// use stays within capacity (the block manager checks every allocation), time never goes back
// (the event loop checks every event) — here under heavy preemption, with both schedulers and
// every router.
#include <doctest/doctest.h>

#include <boost/random/uniform_int_distribution.hpp>

#include "core/rng.h"
#include "sim/simulator.h"
#include "tests/sim/sim_fixtures.h"

using namespace fdc;

TEST_CASE("invariants hold under memory pressure") {
  for (bool chunked : {false, true}) {
    for (std::string router : {"round_robin", "least_outstanding", "kv_aware"}) {
      CAPTURE(chunked);
      CAPTURE(router);
      Json j = test::toy_experiment(40, 4, chunked, chunked ? 32 : 200);
      j["hardware"]["gpus_per_server"] = 2;
      j["cluster"] = {{"servers", 2}, {"router", router}};
      j["simulator"] = {{"fast_forward", chunked}};  // both modes are covered across the loop
      Rng rng(7);
      boost::random::uniform_int_distribution<int> prompt(1, 80), output(1, 60), gap(0, 3000);
      std::vector<traces::RequestSpec> reqs;
      int64_t t = 0;
      for (uint64_t i = 0; i < 400; ++i) {
        t += gap(rng) * 1000;
        reqs.push_back({i, Nanos(t), prompt(rng), output(rng)});
      }
      reqs.push_back(
          {400, Nanos(t), 150, 60});  // needs 53 blocks > 40; the others need at most 35: rejected (kv_capacity)
      auto e = test::make_toy(j, reqs);
      test::ToyCostModel cost(500'000, 5'000, 100);
      sim::Simulator s(e, cost, {});
      s.run();
      const auto& tot = s.totals();
      CHECK(tot.arrived == 401);
      CHECK(tot.completed + tot.rejected == tot.arrived);
      CHECK(tot.rejected == 1);
      CHECK(tot.rejected_by_reason.at("kv_capacity") == 1);
      CHECK(tot.preemptions > 0);
      CHECK(tot.kv_max_used_blocks <= s.kv_blocks_per_replica());
      CHECK(tot.ttft.count() == tot.completed);
      // Every output token after the first has exactly one TBT gap.
      uint64_t outputs = 0;
      for (const auto& r : reqs) outputs += static_cast<uint64_t>(r.output_tokens);
      CHECK(tot.tbt.count() == outputs - 60 - tot.completed);
    }
  }
}
