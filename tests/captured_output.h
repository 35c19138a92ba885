// Tests of commands: run one with std::cout and std::cerr captured.
#pragma once

#include <iostream>
#include <sstream>
#include <string>

namespace fdc::test {

struct CapturedRun {
  int code;
  std::string out, err;
};

// Runs `run` (returning an exit code) with std::cout and std::cerr redirected into strings.
template <class F>
CapturedRun captured(F&& run) {
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  const int code = run();
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return {code, out.str(), err.str()};
}

}  // namespace fdc::test
