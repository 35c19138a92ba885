// The fitted profile file, configs/profiles/<gpu>.json (format in docs/fit.md), and its reader.
#pragma once

#include <string>

#include "core/config.h"
#include "costmodel/fit/profile_fit.h"

namespace fdc::fit {

inline constexpr const char* kProfileFormat = "fdcsim-fitted-profile/1";

Json profile_to_json(const FittedProfile& p, const std::string& command);
// `source` names the file in errors.
FittedProfile profile_from_json(const Json& j, const std::string& source);

void write_profile(const FittedProfile& p, const std::string& command, const std::string& path);
FittedProfile read_profile(const std::string& path);

}  // namespace fdc::fit
