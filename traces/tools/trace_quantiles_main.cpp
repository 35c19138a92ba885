// fdcsim-trace-quantiles: reads a Vidur/Etalon length CSV and writes its quantile table (the format
// of configs/workloads/sharegpt_quantiles.json, which this program regenerates; docs/traces.md).
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "core/wall_clock.h"
#include "traces/length_quantiles.h"
#include "traces/trace_table.h"

namespace {

std::string today_utc() { return fdc::utc_now("%Y-%m-%d"); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Computes the quantile table of a length CSV (num_prefill_tokens,num_decode_tokens,...): "
      "quantiles of prompt tokens, and of output tokens within equal-count prompt-length bins. "
      "The table drives the \"quantiles\" / \"sharegpt_embedded\" workload lengths.",
      "fdcsim-trace-quantiles"};
  std::string input, output = "-", date = today_utc();
  fdc::traces::QuantileTableOptions opt;
  app.add_option("input", input, "length CSV (Vidur/Etalon format)")->required();
  app.add_option("-o,--output", output, "output JSON file ('-' = standard output)")->capture_default_str();
  app.add_option("--date", date, "date recorded in the provenance (default: today, UTC)");
  app.add_option("--prompt-levels", opt.prompt_levels, "quantile levels of prompt tokens")
      ->capture_default_str()
      ->check(CLI::Range(2, 100001));
  app.add_option("--output-levels", opt.output_levels, "quantile levels of (marginal) output tokens")
      ->capture_default_str()
      ->check(CLI::Range(2, 100001));
  app.add_option("--bins", opt.prompt_bins, "equal-count prompt-length bins")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--conditional-levels", opt.conditional_levels, "quantile levels of output tokens per bin")
      ->capture_default_str()
      ->check(CLI::Range(2, 100001));
  CLI11_PARSE(app, argc, argv);

  try {
    const fdc::traces::TraceTable table = fdc::traces::read_length_csv(input);
    const std::string name = std::filesystem::path(input).filename().string();
    fdc::Json provenance = fdc::Json::object();
    provenance["source_file"] = name;
    provenance["created"] = date;
    provenance["generator"] = "fdcsim-trace-quantiles";
    provenance["command"] = "fdcsim-trace-quantiles " + name + " --prompt-levels " + std::to_string(opt.prompt_levels) +
                            " --output-levels " + std::to_string(opt.output_levels) + " --bins " +
                            std::to_string(opt.prompt_bins) + " --conditional-levels " +
                            std::to_string(opt.conditional_levels);
    const std::string text =
        fdc::traces::format_quantile_table(fdc::traces::build_quantile_table(table.rows, opt, provenance));
    if (output == "-") {
      std::cout << text;
    } else {
      std::ofstream out(output, std::ios::binary);
      out << text;
      out.close();
      FDC_INPUT_CHECK(out, output << ": cannot write the output file");
      std::cerr << "wrote " << output << " (" << table.rows.size() << " rows of " << name << ", " << text.size()
                << " bytes)\n";
    }
  } catch (const fdc::InputError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
