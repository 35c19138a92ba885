// `fdcsim profile` as a user runs it without a GPU: --dry-run writes the plan on every build; a run
// in a build without CUDA says it needs one; bad input is refused naming it.
#include <doctest/doctest.h>

#include <unistd.h>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/profile_command.h"
#include "core/config.h"

using namespace fdc;
namespace fs = std::filesystem;

namespace {
struct Result {
  int code;
  std::string err;
};
Result profile(const cli::ProfileOptions& o) {
  std::ostringstream err;
  auto* old = std::cerr.rdbuf(err.rdbuf());
  const int code = cli::run_profile(o);
  std::cerr.rdbuf(old);
  return {code, err.str()};
}
// A small grid: Llama-2-13B, 16 and 1024 token rows, tp 1, FDC 50%, one GPU.
cli::ProfileOptions small(const fs::path& out) {
  cli::ProfileOptions o;
  o.out_dir = out.string();
  o.models = {"llama-2-13b"};
  o.tokens = {16, 1024};
  o.tp = {1};
  o.rank_fractions = {0.5};
  o.gpus = 1;
  o.budget_s = 1e6;
  o.dry_run = true;
  return o;
}
}  // namespace

TEST_CASE("profile --dry-run writes the plan without a GPU, on every build") {
  const fs::path dir = fs::temp_directory_path() / ("fdcsim-profile-test-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  cli::ProfileOptions o = small(dir);
  o.attn_policies = {"fdc-table-llama-2-13b"};
  const Result r = profile(o);
  CAPTURE(r.err);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.err.find("dry run: nothing measured") != std::string::npos);
  const Json plan = load_json_file((dir / "plan.json").string());
  REQUIRE(plan["run"].is_array());
  int tables = 0, gemms = 0;
  for (const Json& c : plan["run"]) {
    const std::string name = c["name"].get<std::string>();
    tables += name.find("/table-fdc-table-llama-2-13b-l") != std::string::npos ? 1 : 0;
    gemms += name.rfind("gemm/", 0) == 0 ? 1 : 0;
  }
  CHECK(tables == 9 * 13);  // 9 tables x the decode grid's 13 (batch, context) points
  CHECK(gemms > 0);
  CHECK(plan["models"] == Json::array({"llama-2-13b"}));
  fs::remove_all(dir);

  // Bad input is refused naming it, before anything is written.
  cli::ProfileOptions bad = small(dir);
  bad.models = {"no-such-model"};
  const Result m = profile(bad);
  CHECK(m.code == cli::kExitBadInput);
  CHECK(m.err.find("unknown model 'no-such-model'") != std::string::npos);
  bad = small(dir);
  bad.attn_policies = {"no-such-policy"};
  CHECK(profile(bad).err.find("unknown policy 'no-such-policy'") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("profile --dry-run --repetitions 3: the plan runs every case three times and counts them") {
  const fs::path dir = fs::temp_directory_path() / ("fdcsim-profile-reps-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  cli::ProfileOptions o = small(dir);
  const Result once = profile(o);
  REQUIRE(once.code == cli::kExitOk);
  const double est_once = load_json_file((dir / "plan.json").string())["estimated_s"].get<double>();
  o.repetitions = 3;
  const Result r = profile(o);
  CAPTURE(r.err);
  REQUIRE(r.code == cli::kExitOk);
  CHECK(r.err.find(" x 3 repetitions on up to 1 GPUs") != std::string::npos);
  const Json plan = load_json_file((dir / "plan.json").string());
  CHECK(plan["repetitions"] == 3);
  CHECK(plan["estimated_s"].get<double>() > 2.5 * est_once);
  fs::remove_all(dir);
}

#if !FDCSIM_HAVE_CUDA
TEST_CASE("profile without --dry-run in a build without CUDA says it needs one (exit 2), writing nothing") {
  const fs::path dir = fs::temp_directory_path() / ("fdcsim-profile-run-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  cli::ProfileOptions o = small(dir);
  o.dry_run = false;
  const Result r = profile(o);
  CHECK(r.code == cli::kExitBadInput);
  CHECK(r.err.find("this build has no CUDA") != std::string::npos);
  CHECK(r.err.find("--dry-run plans the grid on any build") != std::string::npos);
  CHECK_FALSE(fs::exists(dir));
}
#endif
