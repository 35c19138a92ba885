#include "core/error.h"

namespace fdc::detail {

void throw_check_failure(const char* expr, const char* file, int line, const std::string& message) {
  std::ostringstream os;
  os << "internal check failed: " << expr << " at " << file << ":" << line;
  if (!message.empty()) os << ": " << message;
  throw InternalError(os.str());
}

}  // namespace fdc::detail
