// The message of the InputError a call throws ("" when it throws none): the tests of refused input.
#pragma once

#include <functional>
#include <string>

#include "core/error.h"

namespace fdc::test {

inline std::string input_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace fdc::test
