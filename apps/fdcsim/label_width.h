// The width of the first column of max-rate's and min-servers' tables: 26 characters, or the
// longest row label (a --vary combination can be longer), so the columns stay aligned.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace fdc::cli {

inline int label_width(const std::vector<std::string>& labels) {
  size_t w = 26;
  for (const auto& l : labels) w = std::max(w, l.size());
  return static_cast<int>(w);
}

}  // namespace fdc::cli
