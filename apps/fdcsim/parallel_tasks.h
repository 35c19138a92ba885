// Independent searches of one command (max-rate's and min-servers' policies and band ends) on the
// local cores: each is a chain of deterministic simulations, so its result does not depend on
// which thread runs it or when; only the order of the progress lines on stderr does.
#pragma once

#include <cstddef>
#include <functional>

namespace fdc::cli {

// The default of --jobs: the machine's hardware threads (at least 1).
int default_jobs();

// Runs task(0) .. task(n - 1) on up to `jobs` threads (jobs <= 1 or n <= 1: in order on this
// thread). Once a task throws, no further task starts; after all threads end, the exception of the
// lowest-numbered failed task is rethrown.
void run_tasks(size_t n, int jobs, const std::function<void(size_t)>& task);

}  // namespace fdc::cli
