// `fdcsim fit RAW_DIR... --out FILE`: fits a profile from raw `fdcsim profile` folders;
// `fdcsim profile-report PROFILE`: prints each op's form, coverage and held-out error.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace fdc::cli {

struct FitOptions {
  std::vector<std::string> raw_dirs;
  std::string out;
};

struct ProfileReportOptions {
  std::string profile;
};

void add_fit_command(CLI::App& app, FitOptions& opts);
void add_profile_report_command(CLI::App& app, ProfileReportOptions& opts);
int run_fit(const FitOptions& opts);
int run_profile_report(const ProfileReportOptions& opts);

}  // namespace fdc::cli
