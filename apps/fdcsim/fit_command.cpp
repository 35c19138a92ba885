#include "apps/fdcsim/fit_command.h"

#include <cstdio>
#include <iostream>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/run_guarded.h"
#include "costmodel/fit/profile_io.h"

namespace fdc::cli {
namespace {

std::string pct(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", *v);
  return buf;
}

std::string range(const fit::Range& r) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g..%.3g", r.min, r.max);
  return buf;
}

void print_report(std::ostream& os, const fit::FittedProfile& p) {
  os << "profile: " << p.gpu << " (" << p.ops.size() << " ops)\n";
  char line[320];
  std::snprintf(line, sizeof line, "%-24s %-25s %-46s %6s %-16s %7s %7s\n", "op", "form", "coverage", "points",
                "held-out", "median", "P90");
  os << line;
  for (const auto& [name, f] : p.ops) {
    std::string cov = std::string(f.axis_name()) + " " + range(f.axis);
    if (f.m_range) cov += ", m " + range(*f.m_range);
    std::snprintf(line, sizeof line, "%-24s %-25s %-46s %6d %-16s %7s %7s\n", name.c_str(), fit::form_name(f.form),
                  cov.c_str(), f.held_out.points, f.held_out.method.c_str(), pct(f.held_out.median_ape_pct).c_str(),
                  pct(f.held_out.p90_ape_pct).c_str());
    os << line;
  }
}

}  // namespace

void add_fit_command(CLI::App& app, FitOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "fit",
      "Fit a profile (configs/profiles/<gpu>.json) from raw `fdcsim profile` folders of one GPU model "
      "(docs/fit.md)");
  sub->add_option("raw_dirs", o.raw_dirs, "Raw profile folders (provenance.json + ops.json / comm-<n>gpu.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--out,-o", o.out, "Fitted profile JSON to write")->required();
}

void add_profile_report_command(CLI::App& app, ProfileReportOptions& o) {
  CLI::App* sub = app.add_subcommand("profile-report",
                                     "Print each op of a fitted profile: form, measured coverage, held-out error");
  sub->add_option("profile", o.profile, "Fitted profile JSON (written by `fdcsim fit`)")->required();
}

int run_fit(const FitOptions& o) {
  return run_guarded([&]() -> int {
    std::string command = "fdcsim fit";
    for (const std::string& d : o.raw_dirs) command += " " + d;
    command += " --out " + o.out;
    const fit::FittedProfile p = fit::fit_profile(fit::read_raw_profiles(o.raw_dirs));
    fit::write_profile(p, command, o.out);
    print_report(std::cout, p);
    std::cout << "\n  wrote " << o.out << "\n";
    return kExitOk;
  });
}

int run_profile_report(const ProfileReportOptions& o) {
  return run_guarded([&]() -> int {
    print_report(std::cout, fit::read_profile(o.profile));
    return kExitOk;
  });
}

}  // namespace fdc::cli
