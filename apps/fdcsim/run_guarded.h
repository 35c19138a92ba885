// Runs a command body and turns the project's exceptions into its documented exit codes, with
// the message on stderr: InputError -> 2, InternalError -> 3, file-system and stream errors -> 4.
// A failure shared by the ranks of an MPI launch (apps/fdcsim/mpi_ranks.h) is reported by rank 0.
#pragma once

#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/mpi_ranks.h"

namespace fdc::cli {

// A failure's exit code and the line run_guarded prints for it.
struct FailureReport {
  int exit_code = kExitInternal;
  std::string message;
};
// The report of the exception `e`: InputError, InternalError, file-system and stream errors (the
// codes above) and SharedFailure (its own code and line); any other exception is rethrown.
FailureReport report_of(const std::exception_ptr& e);

inline int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const SharedFailure& e) {
    if (mpi_ranks().rank == 0) std::cerr << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception&) {
    const FailureReport r = report_of(std::current_exception());  // rethrows what it does not know
    std::cerr << r.message << "\n";
    return r.exit_code;
  }
}

}  // namespace fdc::cli
