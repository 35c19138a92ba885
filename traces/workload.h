// The workload of a run, built from the "workload" config object (keys in docs/traces.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config.h"
#include "traces/request.h"

namespace fdc::traces {

// Builds the request source. `seed` is the run's seed (arrivals and lengths draw from independent
// streams derived from it); `base_dir` resolves relative trace paths (the directory of the config
// file; "" = the current directory). Throws InputError naming the config file and JSON path for bad
// keys, and the trace file and line for bad traces. Calls finish() on every node it reads.
std::unique_ptr<RequestSource> make_request_source(const ConfigNode& workload, uint64_t seed,
                                                   const std::string& base_dir);

}  // namespace fdc::traces
