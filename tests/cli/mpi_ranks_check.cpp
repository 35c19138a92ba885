// Run under an MPI launcher with 3 or more ranks (ctest `mpi_ranks`): checks that the ranks share
// out tasks and return every result in task order on every rank, and that a failure on one rank,
// in a task or in a step of all_ranks, reaches every rank as the lowest-numbered failure with its
// exit code and message. Prints one line per failed check; exit 0 when all hold on this rank.
#include <functional>
#include <ios>
#include <iostream>
#include <string>
#include <vector>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/mpi_ranks.h"
#include "core/error.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::cerr << "mpi_ranks_check: rank " << fdc::cli::mpi_ranks().rank << ": FAILED: " << what << "\n";
}

// The SharedFailure `body` throws on this rank, or exit code -1 when it throws none.
fdc::cli::SharedFailure failure_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const fdc::cli::SharedFailure& f) {
    return f;
  }
  return fdc::cli::SharedFailure(-1, "");
}

}  // namespace

int main(int argc, char** argv) {
  fdc::cli::MpiLaunch mpi(&argc, &argv);
  using fdc::cli::mpi_ranks;
  const int rank = mpi_ranks().rank, size = mpi_ranks().size;
  check(size >= 3, "expected an MPI launch of at least 3 ranks, found " + std::to_string(size));

  // Results in task order on every rank; each task ran on rank i % size.
  const size_t n = 11;
  const std::vector<std::string> out = fdc::cli::run_tasks_over_ranks(
      n, 2, [&](size_t i) { return std::to_string(i) + "@" + std::to_string(mpi_ranks().rank); });
  check(out.size() == n, "11 results");
  for (size_t i = 0; i < out.size(); ++i)
    check(out[i] == std::to_string(i) + "@" + std::to_string(i % static_cast<size_t>(size)), "result " + out[i]);

  // No tasks at all, and fewer tasks than ranks.
  check(fdc::cli::run_tasks_over_ranks(0, 1, [](size_t) { return std::string("x"); }).empty(), "no tasks");
  const auto two = fdc::cli::run_tasks_over_ranks(2, 1, [](size_t i) { return std::string(i, 'y'); });
  check(two.size() == 2 && two[0].empty() && two[1] == "y", "two tasks, one of them empty");

  // Tasks 4 and 8 fail (on ranks 1 and 2 of 3): every rank sees task 4's.
  const fdc::cli::SharedFailure task_failure = failure_of([&] {
    fdc::cli::run_tasks_over_ranks(9, 1, [](size_t i) -> std::string {
      if (i == 8) throw std::ios_base::failure("task 8 could not write");
      if (i == 4) throw fdc::InputError("task 4: bad key");
      return "ok";
    });
  });
  check(task_failure.exit_code() == fdc::cli::kExitBadInput,
        "task 4's exit code 2 on every rank, found " + std::to_string(task_failure.exit_code()));
  check(std::string(task_failure.what()) == "fdcsim: error: task 4: bad key",
        std::string("task 4's message, found: ") + task_failure.what());

  // A step that fails on the last rank alone: every rank learns of it, as an internal error.
  const fdc::cli::SharedFailure step_failure =
      failure_of([&] { fdc::cli::all_ranks([&] { FDC_CHECK(rank != size - 1, "the last rank's step"); }); });
  check(step_failure.exit_code() == fdc::cli::kExitInternal, "the step's exit code 3 on every rank");
  check(std::string(step_failure.what()).find("the last rank's step") != std::string::npos,
        std::string("the step's message, found: ") + step_failure.what());

  // A step that succeeds everywhere throws nothing.
  check(failure_of([] { fdc::cli::all_ranks([] {}); }).exit_code() == -1, "a step without failure");

  if (rank == 0 && failures == 0) std::cout << "mpi_ranks_check: " << size << " ranks, all checks passed\n";
  return mpi.finish(failures == 0 ? fdc::cli::kExitOk : fdc::cli::kExitInternal);
}
