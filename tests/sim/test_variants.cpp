// `--vary` and `--compare-policy`: the configurations a comparison runs.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "sim/experiment.h"
#include "tests/input_error.h"

using namespace fdc;
using test::input_error_of;

namespace {
sim::ExperimentInput base() { return sim::ExperimentInput{Json{{"name", "x"}, {"policy", "none"}}, "x.json", ""}; }
}  // namespace

TEST_CASE("variants: the input alone without --vary or --compare-policy") {
  const auto v = sim::variants_of(base(), {}, {});
  REQUIRE(v.size() == 1);
  CHECK(v[0].label.empty());
  CHECK(v[0].settings.empty());
  CHECK(v[0].input.config == base().config);
  CHECK(v[0].input.source == "x.json");
}

TEST_CASE("variants: the cross product, --vary keys outermost in order, policies innermost") {
  const auto v = sim::variants_of(base(), {"hardware=p4de,p5", "scheduler.max_num_seqs=64", "hardware=h200x8"},
                                  {"none", "fdc-uniform-50"});
  REQUIRE(v.size() == 3 * 1 * 2);
  const std::vector<std::string> labels = {"p4de, 64, none",   "p4de, 64, fdc-uniform-50",
                                           "p5, 64, none",     "p5, 64, fdc-uniform-50",
                                           "h200x8, 64, none", "h200x8, 64, fdc-uniform-50"};
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i].label == labels[i]);
  CHECK(v[3].input.config["hardware"] == "p5");
  CHECK(v[3].input.config["policy"] == "fdc-uniform-50");
  CHECK(v[3].input.config["scheduler"]["max_num_seqs"] == 64);  // a number, as --set reads it
  CHECK(v[3].input.config["name"] == "x");
  CHECK(v[3].settings == Json{{"hardware", "p5"}, {"scheduler.max_num_seqs", 64}, {"policy", "fdc-uniform-50"}});
  CHECK(v[3].input.source.find("x.json with ") == 0);
  CHECK(v[3].input.source.find("hardware=\"p5\"") != std::string::npos);
}

TEST_CASE("variants: a value that is JSON as a whole is one value; others split at commas") {
  const auto v = sim::variants_of(
      base(), {R"(workload.arrival={"process":"poisson","rate_per_s":2})", R"(name="a,b")", "seed=[1,2]"}, {});
  REQUIRE(v.size() == 1);
  CHECK(v[0].input.config["workload"]["arrival"]["rate_per_s"] == 2);
  CHECK(v[0].input.config["name"] == "a,b");
  CHECK(v[0].input.config["seed"] == Json::array({1, 2}));
  const auto w = sim::variants_of(base(), {"costmodel.time_scale=0.9,1.1"}, {});
  REQUIRE(w.size() == 2);
  CHECK(w[1].input.config["costmodel"]["time_scale"] == 1.1);
}

TEST_CASE("variants: bad --vary and --compare-policy values name the option") {
  CHECK(input_error_of([] { sim::variants_of(base(), {"hardware"}, {}); }) ==
        "--vary hardware: expected KEY=V1,V2,... (for example hardware=p4de,p5)");
  CHECK(input_error_of([] { sim::variants_of(base(), {"=p5"}, {}); }).find("--vary =p5: expected KEY=") == 0);
  CHECK(input_error_of([] { sim::variants_of(base(), {"hardware=p4de,,p5"}, {}); }) ==
        "--vary hardware=p4de,,p5: an empty value");
  CHECK(input_error_of([] { sim::variants_of(base(), {"hardware="}, {}); }) == "--vary hardware=: an empty value");
  CHECK(input_error_of([] { sim::variants_of(base(), {}, {"none", ""}); }) == "--compare-policy: an empty policy name");
  CHECK(input_error_of([] { sim::variants_of(base(), {"policy=none"}, {"fdc-uniform-50"}); }) ==
        "--compare-policy and --vary policy=...: give the policies once");
}
