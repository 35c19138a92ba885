// `--band PCT` of simulate, max-rate, min-servers and validate: the prediction band, every iteration PCT
// percent longer and shorter (costmodel.time_scale; docs/cli.md, "The prediction band").
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "sim/experiment.h"

namespace fdc::cli {

inline void add_band_option(CLI::App* sub, std::optional<double>& pct, const std::string& description) {
  sub->add_option("--band", pct, description)
      ->type_name("PCT")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(s, v) || !(v > 0 && v <= 50))
              return "expected a percent of iteration time in (0, 50], found " + s;
            return {};
          },
          "in (0, 50]"));
}

// The runs of a command with --band: each variant's input, then (with a band) its slower and
// faster ends, every iteration (1 + PCT/100) and (1 - PCT/100) times as long, labelled "LABEL
// (iterations x 1.05)". Variant i's runs are per_input * i .. per_input * i + per_input - 1.
struct BandRuns {
  std::vector<sim::ExperimentInput> inputs;
  std::vector<std::string> labels;
  size_t per_input = 1;
};
inline BandRuns with_band_ends(const std::vector<sim::Variant>& variants, const std::vector<std::string>& labels,
                               const std::optional<double>& pct) {
  BandRuns r;
  r.per_input = pct ? 3 : 1;
  for (size_t i = 0; i < variants.size(); ++i) {
    r.inputs.push_back(variants[i].input);
    r.labels.push_back(labels[i]);
    if (!pct) continue;
    for (double scale : {1 + *pct / 100, 1 - *pct / 100}) {
      r.inputs.push_back(sim::with_time_scale(variants[i].input, scale));
      char note[48];
      std::snprintf(note, sizeof note, " (iterations x %g)", scale);
      r.labels.push_back(labels[i] + note);
    }
  }
  return r;
}

}  // namespace fdc::cli
