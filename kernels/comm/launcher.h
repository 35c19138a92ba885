// One process per GPU without MPI: run_ranks forks N worker processes (rank = GPU index). Rank 0
// calls make_token (for NCCL: ncclGetUniqueId, serialised) and passes it to the others through a
// pipe; each worker then runs `work` (for NCCL: set its device, ncclCommInitRank) and its return
// value is its exit code. The parent never touches CUDA (a process that has initialised CUDA must
// not fork workers that use it), waits for every worker, stops the others by pid when one fails or
// the deadline passes (SIGTERM, then SIGKILL after kill_after_s: a worker blocked in a driver call
// may not act on SIGTERM), and returns 0 only when every worker returned 0.
#pragma once

#include <functional>
#include <string>

namespace fdc::kernels::comm {

struct RankResult {
  int exit_code = 0;   // first non-zero worker exit code (or 128 + signal), 0 when all succeeded
  int failed_rank = -1;
  bool timed_out = false;
};

RankResult run_ranks(int num_ranks, const std::function<std::string()>& make_token,
                     const std::function<int(int rank, int num_ranks, const std::string& token)>& work,
                     double timeout_s, double kill_after_s = 10.0);

}  // namespace fdc::kernels::comm
