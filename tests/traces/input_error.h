// The message of the fdc::InputError that `f` throws, or "<no error>" (so a CHECK on the text fails
// readably when nothing was thrown). Other exceptions propagate and fail the test.
#pragma once

#include <string>

#include "core/error.h"

namespace fdc::test {

template <class F>
std::string input_error_text(F&& f) {
  try {
    f();
  } catch (const fdc::InputError& e) {
    return e.what();
  }
  return "<no error>";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace fdc::test
