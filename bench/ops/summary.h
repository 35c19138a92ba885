// The side-by-side report of a raw profile, read back from its Google Benchmark JSON files:
// GEMMs at Llama-2-13B shapes (% of the measured bf16 peak, cuBLASLt next to cublasGemmEx), fused
// RoPE + rotation against RoPE alone and the bytes roofline, collective bus bandwidth by size
// (all-to-all, all-reduce, all-gather) and the Ulysses pack/unpack share of the all-to-alls.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fdc::profile {

// Markdown. Files that are missing or unreadable are named in the text, not fatal.
std::string summarize_profile(const std::vector<std::string>& json_paths);
std::string summarize_benchmarks(const std::vector<nlohmann::json>& docs);

}  // namespace fdc::profile
