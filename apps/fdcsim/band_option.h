// `--band PCT` of simulate, max-rate, min-servers and validate: the prediction band, every iteration PCT
// percent longer and shorter (costmodel.time_scale; docs/cli.md, "The prediction band").
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

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

}  // namespace fdc::cli
