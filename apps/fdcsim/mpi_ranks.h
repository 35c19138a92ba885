// Spreading max-rate's and min-servers' independent searches over the ranks of an MPI launch:
//
//   mpirun -np 8 --hostfile hosts fdcsim min-servers --vary hardware=p4de,p5,h200x8 ...
//
// Every rank parses the same command line and config, runs its share of the searches (task i on
// rank i % size, each on up to --jobs threads) and sends the results to the others; rank 0 prints
// the table and writes --json-out. Each search is a deterministic chain of simulations, so the
// output is byte for byte that of one process.
//
// MPI starts only when fdcsim was built with MPI (CMake found it) and was started by an MPI
// launcher (Open MPI's mpirun, MPICH's or Intel MPI's mpiexec, srun with PMIx); run directly it is
// one process with no MPI calls at all. No MPI header is included here.
//
// Failures, so that no rank hangs: a failure every rank learns of (in a step run through
// all_ranks or run_tasks_over_ranks, or parsing the same command line) is reported once, by rank 0,
// and every rank exits with its code; any other failure (one rank alone) aborts the whole launch
// (MPI_Abort) after printing its message, since the other ranks may be waiting for it.
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fdc::cli {

// This process's place in the launch: rank 0 of 1 when MPI is not running.
struct Ranks {
  int rank = 0;
  int size = 1;
};
const Ranks& mpi_ranks();

// Starts MPI at construction when this process was started by an MPI launcher, and ends it in
// finish(). Throws InputError when an MPI launcher started several ranks of a build without MPI
// (each would run the whole command).
class MpiLaunch {
 public:
  MpiLaunch(int* argc, char*** argv);
  ~MpiLaunch();
  MpiLaunch(const MpiLaunch&) = delete;
  MpiLaunch& operator=(const MpiLaunch&) = delete;
  // Ends MPI and returns the process's exit code: MPI_Finalize when the outcome is one every rank
  // shares (success, "SLO not met", or a failure every rank learned of), MPI_Abort otherwise.
  int finish(int exit_code);

 private:
  bool running_ = false;
};

// Whether an MPI launcher started this process (its environment says so), whatever the build.
bool started_by_mpi_launcher();

// Marks the failure being handled as one every rank shares (the same command line failed to parse
// on each): MPI then ends normally in finish().
void mark_failure_shared();

// What all_ranks and run_tasks_over_ranks throw on every rank when a step or task failed on some
// rank: the exit code and the message line that failure gives (run_guarded's), reported by rank 0
// alone.
class SharedFailure : public std::runtime_error {
 public:
  SharedFailure(int exit_code, const std::string& message) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Runs `step` on every rank; when it throws on any rank, every rank throws the failure of the
// lowest rank that failed as a SharedFailure (its exit code and message). One process: just runs
// `step`, whose exceptions pass unchanged.
void all_ranks(const std::function<void()>& step);

// Runs task(0) .. task(n - 1) over the ranks, task i on rank i % size, each rank's share on up to
// `jobs` threads (run_tasks), and returns every task's result, in task order, on every rank. When
// any task throws, no further task starts on its rank and every rank throws the failure of the
// lowest-numbered failed task, as all_ranks does.
std::vector<std::string> run_tasks_over_ranks(size_t n, int jobs, const std::function<std::string(size_t)>& task);

}  // namespace fdc::cli
