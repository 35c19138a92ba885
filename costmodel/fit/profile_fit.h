// A fitted profile: every op's law for one GPU model, with the provenance of its measurements.
#pragma once

#include <map>
#include <string>

#include "core/config.h"
#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/raw_reader.h"

namespace fdc::fit {

struct FittedProfile {
  std::string gpu;
  Json sources = Json::array();  // per raw folder: folder, cases used and excluded, provenance.json
  Peaks peaks;
  std::map<std::string, OpFit> ops;  // by op group name (raw_reader.h)
  const OpFit* find(const std::string& op) const {
    const auto it = ops.find(op);
    return it == ops.end() ? nullptr : &it->second;
  }
};

// Groups the samples by op and fits each group.
FittedProfile fit_profile(const RawProfile& raw);

}  // namespace fdc::fit
