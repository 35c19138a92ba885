// A compact summary of a length trace — quantiles of prompt tokens and, to keep the joint shape,
// quantiles of output tokens within each prompt-length bin — and a sampler that draws
// (prompt, output) pairs from it by inverse CDF with linear interpolation.
//
// Table format (JSON; see docs/traces.md):
//   "format": "fdcsim-length-quantiles-1"
//   "provenance": {...}                   free-form: source file, rows, date, generator
//   "method": "..."                       one-line description
//   "prompt_tokens": [q_0 .. q_{L-1}]     quantiles at p = i/(L-1), non-decreasing
//   "output_tokens": [...]                marginal output quantiles (reference; the sampler does not use them)
//   "output_tokens_given_prompt_bin": [[...], ...]   B rows: output quantiles of the rows whose prompt
//                                         rank falls in bin b (equal-count bins of rows sorted by prompt)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/rng.h"
#include "traces/trace_table.h"

namespace fdc::traces {

inline constexpr const char* kQuantileTableFormat = "fdcsim-length-quantiles-1";

struct QuantileTableOptions {
  int prompt_levels = 1001;      // quantiles of prompt tokens at p = 0, 0.001, ..., 1
  int output_levels = 1001;      // marginal quantiles of output tokens (reference only)
  int prompt_bins = 10;          // equal-count prompt-length bins (deciles)
  int conditional_levels = 501;  // quantiles of output tokens within each bin
};

// Computes the table. Values are exact linear interpolations between order statistics (the
// "linear" / type-7 definition), rounded half-up to 0.1 token in integer arithmetic, so the same
// rows give the same table on every platform. `provenance` is stored as given.
Json build_quantile_table(const std::vector<LengthPair>& rows, const QuantileTableOptions& options,
                          const Json& provenance);

// The table as text: one key per line, each quantile array on one line (diff-friendly, compact).
std::string format_quantile_table(const Json& table);

class LengthQuantiles {
 public:
  // Validates a table (format, non-empty non-decreasing finite arrays, at least one bin). Errors
  // name `source` and the JSON path.
  static LengthQuantiles from_json(const Json& table, const std::string& source);

  // One (prompt, output) pair; both integers >= 1. Uses two uniform draws from `rng`.
  LengthPair sample(Rng& rng) const;

  const std::vector<double>& prompt_quantiles() const { return prompt_; }
  const std::vector<std::vector<double>>& conditional_output_quantiles() const { return output_given_bin_; }
  const Json& provenance() const { return provenance_; }

 private:
  std::vector<double> prompt_;
  std::vector<std::vector<double>> output_given_bin_;
  Json provenance_;
};

// The inverse CDF of a quantile array at u in [0, 1]: linear interpolation between levels.
double interpolate_quantile(const std::vector<double>& quantiles, double u);

// The ShareGPT table committed as configs/workloads/sharegpt_quantiles.json, compiled into the
// library at build time.
std::string_view embedded_sharegpt_quantiles_json();
const LengthQuantiles& embedded_sharegpt_quantiles();

}  // namespace fdc::traces
