// `fdcsim fit` and `fdcsim profile-report` as a user runs them: exit codes and messages.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <doctest/doctest.h>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/fit_command.h"
#include "tests/test_paths.h"

namespace fdc {
namespace {

struct Result {
  int code;
  std::string out, err;
};

template <class F>
Result capture(F&& run) {
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  const int code = run();
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return {code, out.str(), err.str()};
}

}  // namespace

TEST_CASE("fit command: fits the committed H100 folder, reports it, refuses a partial file") {
  namespace fs = std::filesystem;
  const fs::path tmp = fs::temp_directory_path() / ("fdcsim_fit_cmd_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string profile = (tmp / "h100.json").string();

  const Result fit = capture([&] {
    cli::FitOptions o;
    o.raw_dirs = {test::source_path("configs/profiles/raw/h100-1gpu-20261127")};
    o.out = profile;
    return cli::run_fit(o);
  });
  CHECK(fit.code == cli::kExitOk);
  CHECK(fit.out.find("gemm/qkv_proj/cublaslt") != std::string::npos);

  const Result report = capture([&] { return cli::run_profile_report({profile}); });
  CHECK(report.code == cli::kExitOk);
  CHECK(report.out.find("NVIDIA H100") != std::string::npos);
  CHECK(report.out.find("leave-one-out") != std::string::npos);

  // A raw folder whose ops.json lacks a counter: exit 2, file and benchmark named.
  const fs::path raw = tmp / "raw";
  fs::create_directories(raw);
  fs::copy_file(test::source_path("configs/profiles/raw/h100-1gpu-20261127/provenance.json"), raw / "provenance.json");
  std::ofstream(raw / "ops.json")
      << R"({"benchmarks": [{"name": "mlp_act/swiglu/f13824/m1024", "real_time": 25, "time_unit": "us", "rows": 1024}]})";
  const Result bad = capture([&] {
    cli::FitOptions o;
    o.raw_dirs = {raw.string()};
    o.out = (tmp / "x.json").string();
    return cli::run_fit(o);
  });
  CHECK(bad.code == cli::kExitBadInput);
  CHECK(bad.err.find((raw / "ops.json").string()) != std::string::npos);
  CHECK(bad.err.find("mlp_act/swiglu/f13824/m1024") != std::string::npos);

  const Result missing = capture([&] { return cli::run_profile_report({(tmp / "none.json").string()}); });
  CHECK(missing.code == cli::kExitBadInput);
  fs::remove_all(tmp);
}

}  // namespace fdc
