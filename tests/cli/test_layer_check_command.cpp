// `fdcsim layer-check` as a user runs it: what it refuses before any GPU work, and, in a CPU-only
// build, that it needs a CUDA build.
#include <doctest/doctest.h>

#include <iostream>
#include <sstream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/layer_check_command.h"
#include "tests/test_paths.h"

using namespace fdc;

namespace {
struct Result {
  int code;
  std::string err;
};
Result layer_check(cli::LayerCheckOptions o) {
  o.quiet = true;
  std::ostringstream err;
  auto* old = std::cerr.rdbuf(err.rdbuf());
  const int code = cli::run_layer_check(o);
  std::cerr.rdbuf(old);
  return {code, err.str()};
}
cli::LayerCheckOptions h100() {
  cli::LayerCheckOptions o;
  o.config = test::source_path("configs/validate/llama-2-13b-h100.json");
  o.gpus = 1;
  return o;
}
}  // namespace

TEST_CASE("layer-check refuses bad input before touching a GPU (exit 2, naming the item)") {
  SUBCASE("malformed batch") {
    auto o = h100();
    o.batches = "prefill:1x512,decode:32";
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("--batches: item 'decode:32'") != std::string::npos);
  }
  SUBCASE("layer window beyond the model") {
    auto o = h100();
    o.first_layer = 38;
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("needs policy layers 38..43; the model has 40 layers") != std::string::npos);
  }
  SUBCASE("sequence parallelism") {
    auto o = h100();
    o.config = test::source_path("configs/validate/llama-2-7b-sp2-h100.json");
    o.gpus = 2;
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("layer-check times the layer on one GPU (tp = sp = 1)") != std::string::npos);
  }
  SUBCASE("unknown config key") {
    auto o = h100();
    o.overrides = {"scheduler.max_num_seq=12"};
    const Result r = layer_check(o);
    CHECK(r.code == cli::kExitBadInput);
    CHECK(r.err.find("/scheduler/max_num_seq: unknown key") != std::string::npos);
  }
}

#if !FDCSIM_HAVE_CUDA
TEST_CASE("layer-check in a CPU-only build: checks its input, then says it needs CUDA (exit 2)") {
  const Result r = layer_check(h100());
  CHECK(r.code == cli::kExitBadInput);
  CHECK(r.err.find("built without CUDA: layer-check times the layer on a GPU and needs a CUDA build") !=
        std::string::npos);
}
#endif
