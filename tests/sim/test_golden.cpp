// Whole-run regression: the embedded default experiment (300 requests) against a stored summary.
// An intended change of results regenerates it:
//   FDCSIM_UPDATE_GOLDEN=1 build/tests/fdcsim_tests -tc="golden*"
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sim/simulator.h"
#include "tests/test_paths.h"

using namespace fdc;

namespace {
// Exact for integers, strings and structure; floating values to 1e-9 relative (a build with other
// optimisation flags may round a last bit differently).
void check_same(const Json& got, const Json& want, const std::string& path) {
  CAPTURE(path);
  if (want.is_number_float() || got.is_number_float()) {
    REQUIRE(got.is_number());
    CHECK(got.get<double>() == doctest::Approx(want.get<double>()).epsilon(1e-9));
  } else if (want.is_object()) {
    REQUIRE(got.is_object());
    CHECK(got.size() == want.size());
    for (auto it = want.begin(); it != want.end(); ++it) {
      REQUIRE(got.contains(it.key()));
      check_same(got[it.key()], it.value(), path + "/" + it.key());
    }
  } else {
    CHECK(got == want);
  }
}
}  // namespace

TEST_CASE("golden: the default experiment's summary is unchanged") {
  const std::string path = test::source_path("tests/golden/default_300_summary.json");
  sim::Experiment e = sim::load_experiment("", {"workload.num_requests=300"});
  auto cost = sim::make_cost_model(e);
  std::ostringstream requests;
  sim::Simulator s(e, *cost, {&requests, nullptr, nullptr});
  s.run();
  Json got = s.summary();
  got.erase("config_source");
  if (std::getenv("FDCSIM_UPDATE_GOLDEN")) {
    std::ofstream(path) << got.dump(2) << "\n";
    MESSAGE("rewrote " << path);
  }
  Json want = load_json_file(path);
  check_same(got, want, "");
}
