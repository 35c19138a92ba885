// fdcsim: predicts how an LLM serving cluster performs under FDC KV dimensionality compression.
#include <exception>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/fdcsim/engine_command.h"
#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/fit_command.h"
#include "apps/fdcsim/layer_check_command.h"
#include "apps/fdcsim/max_rate_command.h"
#include "apps/fdcsim/min_servers_command.h"
#include "apps/fdcsim/mpi_ranks.h"
#include "apps/fdcsim/parallel_tasks.h"
#include "apps/fdcsim/profile_command.h"
#include "apps/fdcsim/run_guarded.h"
#include "apps/fdcsim/simulate_command.h"
#include "apps/fdcsim/sweep_command.h"
#include "apps/fdcsim/validate_command.h"

namespace {

int run_command(int argc, char** argv) {
  CLI::App app{"fdcsim " FDCSIM_VERSION
               ": simulate LLM serving clusters under FDC KV dimensionality compression.\n"
               "Exit codes: 0 ok, 1 max-rate / min-servers: no rate / server count meets the SLO, 2 bad input (command "
               "line, config, trace), 3 "
               "internal error, 4 output not writable."};
  app.set_version_flag("--version", "fdcsim " FDCSIM_VERSION);
  app.require_subcommand(1);
  fdc::cli::SimulateOptions sim_opts;
  fdc::cli::add_simulate_command(app, sim_opts);
  fdc::cli::MaxRateCommandOptions max_rate_opts;
  max_rate_opts.jobs = fdc::cli::default_jobs();
  fdc::cli::add_max_rate_command(app, max_rate_opts);
  fdc::cli::MinServersCommandOptions min_servers_opts;
  min_servers_opts.jobs = fdc::cli::default_jobs();
  fdc::cli::add_min_servers_command(app, min_servers_opts);
  fdc::cli::SweepOptions sweep_opts;
  sweep_opts.jobs = fdc::cli::default_jobs();
  fdc::cli::add_sweep_command(app, sweep_opts);
  fdc::cli::ValidateOptions val_opts;
  fdc::cli::add_validate_command(app, val_opts);
  fdc::cli::EngineCommandOptions engine_opts;
  fdc::cli::add_engine_command(app, engine_opts);
  fdc::cli::LayerCheckOptions layer_opts;
  fdc::cli::add_layer_check_command(app, layer_opts);
  fdc::cli::ProfileOptions prof_opts;
  fdc::cli::add_profile_command(app, prof_opts);
  fdc::cli::FitOptions fit_opts;
  fdc::cli::add_fit_command(app, fit_opts);
  fdc::cli::ProfileReportOptions report_opts;
  fdc::cli::add_profile_report_command(app, report_opts);
  for (int i = 0; i < argc; ++i) prof_opts.command_line += (i ? " " : "") + std::string(argv[i]);
  layer_opts.command_line = prof_opts.command_line;
  // The ranks of an MPI launch parse the same command line: rank 0 alone prints help, version or
  // a parse error, and every rank ends alike.
  const bool rank0 = fdc::cli::mpi_ranks().rank == 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return rank0 ? app.exit(e) : fdc::cli::kExitOk;
  } catch (const CLI::CallForVersion& e) {
    return rank0 ? app.exit(e) : fdc::cli::kExitOk;
  } catch (const CLI::ParseError& e) {
    if (rank0) app.exit(e);
    fdc::cli::mark_failure_shared();
    return fdc::cli::kExitBadInput;
  }
  if (fdc::cli::mpi_ranks().size > 1 && !app.got_subcommand("max-rate") && !app.got_subcommand("min-servers") &&
      !app.got_subcommand("sweep")) {
    if (rank0)
      std::cerr << "fdcsim: error: an MPI launch of " << fdc::cli::mpi_ranks().size << " ranks runs max-rate, "
                << "min-servers and sweep, whose runs it spreads over the ranks; run "
                << app.get_subcommands()[0]->get_name() << " as one process\n";
    fdc::cli::mark_failure_shared();
    return fdc::cli::kExitBadInput;
  }
  try {
    if (app.got_subcommand("simulate")) return fdc::cli::run_simulate(sim_opts);
    if (app.got_subcommand("max-rate")) return fdc::cli::run_max_rate(max_rate_opts);
    if (app.got_subcommand("min-servers")) return fdc::cli::run_min_servers(min_servers_opts);
    if (app.got_subcommand("sweep")) return fdc::cli::run_sweep(sweep_opts);
    if (app.got_subcommand("validate")) return fdc::cli::run_validate(val_opts);
    if (app.got_subcommand("engine")) return fdc::cli::run_engine_command(engine_opts);
    if (app.got_subcommand("layer-check")) return fdc::cli::run_layer_check(layer_opts);
    if (app.got_subcommand("profile")) return fdc::cli::run_profile(prof_opts);
    if (app.got_subcommand("fit")) return fdc::cli::run_fit(fit_opts);
    if (app.got_subcommand("profile-report")) return fdc::cli::run_profile_report(report_opts);
  } catch (const std::exception& e) {
    std::cerr << "fdcsim: unexpected error: " << e.what() << "\n";
    return fdc::cli::kExitInternal;
  }
  return fdc::cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<fdc::cli::MpiLaunch> mpi;
  try {
    mpi = std::make_unique<fdc::cli::MpiLaunch>(&argc, &argv);
  } catch (const std::exception&) {
    const fdc::cli::FailureReport r = fdc::cli::report_of(std::current_exception());
    std::cerr << r.message << "\n";
    return r.exit_code;
  }
  return mpi->finish(run_command(argc, argv));
}
