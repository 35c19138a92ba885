// Paths for tests: the source tree and the shared data beside it (never copied into the repo).
#pragma once
#include <string>

namespace fdc::test {
inline std::string source_path(const std::string& rel) { return std::string(FDCSIM_SOURCE_DIR) + "/" + rel; }
inline std::string shared_path(const std::string& rel) { return std::string(FDCSIM_SHARED_DIR) + "/" + rel; }
}  // namespace fdc::test
