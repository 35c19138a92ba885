// Errors and checks. Two kinds of failure:
//  - InputError: the user's config, trace or command line is wrong. The message names the file,
//    the JSON path or line, what was expected and what was found. The CLI exits with code 2.
//  - InternalError: an invariant of fdcsim itself broke (a bug). The CLI exits with code 3.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace fdc {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

namespace detail {
[[noreturn]] void throw_check_failure(const char* expr, const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace fdc

// FDC_CHECK(cond, streamed message): throws fdc::InternalError with the expression, file:line and
// the message when cond is false. For invariants of the code, not for validating user input.
#define FDC_CHECK(cond, msg)                                                              \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::ostringstream fdc_check_os_;                                                   \
      fdc_check_os_ << msg;                                                               \
      ::fdc::detail::throw_check_failure(#cond, __FILE__, __LINE__, fdc_check_os_.str()); \
    }                                                                                     \
  } while (0)

// FDC_INPUT_CHECK(cond, streamed message): throws fdc::InputError(message) when cond is false.
#define FDC_INPUT_CHECK(cond, msg)                  \
  do {                                              \
    if (!(cond)) {                                  \
      std::ostringstream fdc_input_os_;             \
      fdc_input_os_ << msg;                         \
      throw ::fdc::InputError(fdc_input_os_.str()); \
    }                                               \
  } while (0)
