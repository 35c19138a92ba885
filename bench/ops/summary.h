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

// Rewrites a Google Benchmark JSON file whose text has bare NaN / inf literals (its aggregates of
// repeated cases, e.g. the coefficient of variation of a counter that is 0 in every repetition)
// with null in their place, so that the raw file is valid JSON for any reader. Returns how many
// literals were replaced (0: the file is left untouched; a missing file is left to the summary).
int rewrite_nonfinite_as_null(const std::string& path);

}  // namespace fdc::profile
