#include "apps/fdcsim/mpi_ranks.h"

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/parallel_tasks.h"
#include "apps/fdcsim/run_guarded.h"
#include "core/error.h"

#if FDCSIM_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace fdc::cli {

namespace {

Ranks g_ranks;
bool g_shared_failure = false;

// The report of any exception: the project's kinds as run_guarded prints them, others as main does.
FailureReport capture(const std::exception_ptr& e) {
  try {
    return report_of(e);
  } catch (const std::exception& x) {
    return {kExitInternal, std::string("fdcsim: unexpected error: ") + x.what()};
  } catch (...) {
    return {kExitInternal, "fdcsim: unexpected error"};
  }
}

#if !FDCSIM_HAVE_MPI
// The rank count an MPI launcher gave this process, from its environment (0 when it says none).
int launcher_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return 0;
}
#endif

// One rank's outcomes as bytes: per entry its task number, status (0 = result, else the exit code
// of a failure) and text (the result, or the failure's message).
struct Entry {
  uint64_t task = 0;
  int32_t status = 0;
  std::string text;
};

std::string encode(const std::vector<Entry>& entries) {
  std::string b;
  for (const Entry& e : entries) {
    const uint64_t len = e.text.size();
    b.append(reinterpret_cast<const char*>(&e.task), sizeof e.task);
    b.append(reinterpret_cast<const char*>(&e.status), sizeof e.status);
    b.append(reinterpret_cast<const char*>(&len), sizeof len);
    b += e.text;
  }
  return b;
}

std::vector<Entry> decode(const std::string& b) {
  std::vector<Entry> entries;
  size_t at = 0;
  auto take = [&](void* dst, size_t n) {
    FDC_CHECK(at + n <= b.size(), "a rank's results end early (" << b.size() << " bytes)");
    std::memcpy(dst, b.data() + at, n);
    at += n;
  };
  while (at < b.size()) {
    Entry e;
    uint64_t len = 0;
    take(&e.task, sizeof e.task);
    take(&e.status, sizeof e.status);
    take(&len, sizeof len);
    FDC_CHECK(len <= b.size() - at, "a rank's result runs past its end");
    e.text.assign(b, at, len);
    at += len;
    entries.push_back(std::move(e));
  }
  return entries;
}

#if FDCSIM_HAVE_MPI
// Every rank's bytes, in rank order, on every rank.
std::vector<std::string> allgather(const std::string& mine) {
  FDC_CHECK(mine.size() < static_cast<size_t>(INT_MAX), "a rank's results exceed 2 GiB");
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(g_ranks.size), displs(g_ranks.size);
  MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD);
  int64_t total = 0;
  for (int r = 0; r < g_ranks.size; ++r) {
    displs[r] = static_cast<int>(total);
    total += lens[r];
    FDC_CHECK(total < INT_MAX, "the ranks' results exceed 2 GiB");
  }
  std::string all(static_cast<size_t>(total), '\0');
  MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> out;
  for (int r = 0; r < g_ranks.size; ++r) out.push_back(all.substr(displs[r], lens[r]));
  return out;
}
#else
std::vector<std::string> allgather(const std::string& mine) { return {mine}; }
#endif

// Every rank's entries, on every rank.
std::vector<Entry> exchange(const std::vector<Entry>& mine) {
  std::vector<Entry> all;
  for (const std::string& b : allgather(encode(mine)))
    for (Entry& e : decode(b)) all.push_back(std::move(e));
  return all;
}

// Throws, on every rank, the failure among `entries` with the lowest task number (if any).
void throw_first_failure(const std::vector<Entry>& entries) {
  const Entry* first = nullptr;
  for (const Entry& e : entries)
    if (e.status != 0 && (!first || e.task < first->task)) first = &e;
  if (!first) return;
  g_shared_failure = true;
  throw SharedFailure(first->status, first->text);
}

}  // namespace

const Ranks& mpi_ranks() { return g_ranks; }

bool started_by_mpi_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(name)) return true;
  return false;
}

MpiLaunch::MpiLaunch(int* argc, char*** argv) {
#if FDCSIM_HAVE_MPI
  if (!started_by_mpi_launcher()) return;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);  // MPI calls on the main thread only
  MPI_Comm_rank(MPI_COMM_WORLD, &g_ranks.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_ranks.size);
  running_ = true;
#else
  (void)argc;
  (void)argv;
  const int n = launcher_size();
  FDC_INPUT_CHECK(n <= 1, "an MPI launcher started "
                              << n
                              << " ranks of this fdcsim, which was built without MPI: each would "
                                 "run the whole command. Run one process, or rebuild with MPI "
                                 "(scripts/setup.sh installs Open MPI; docs/cli.md, \"Across "
                                 "machines\")");
#endif
}

MpiLaunch::~MpiLaunch() {
  if (running_) finish(kExitInternal);
}

int MpiLaunch::finish(int exit_code) {
#if FDCSIM_HAVE_MPI
  if (!running_) return exit_code;
  running_ = false;
  const bool shared = exit_code == kExitOk || exit_code == kExitNotMet || g_shared_failure;
  if (!shared && g_ranks.size > 1) {
    // Only this rank knows: the others may wait for it in a collective, so end them all.
    std::cerr << std::flush;
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
  MPI_Finalize();
#endif
  return exit_code;
}

void mark_failure_shared() { g_shared_failure = true; }

void all_ranks(const std::function<void()>& step) {
  if (g_ranks.size == 1) {
    step();
    return;
  }
  std::vector<Entry> mine;
  try {
    step();
  } catch (...) {
    const FailureReport r = capture(std::current_exception());
    mine.push_back({static_cast<uint64_t>(g_ranks.rank), r.exit_code, r.message});
  }
  throw_first_failure(exchange(mine));
}

std::vector<std::string> run_tasks_over_ranks(size_t n, int jobs, const std::function<std::string(size_t)>& task) {
  std::vector<std::string> out(n);
  if (g_ranks.size == 1) {
    run_tasks(n, jobs, [&](size_t i) { out[i] = task(i); });
    return out;
  }
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(g_ranks.rank); i < n; i += static_cast<size_t>(g_ranks.size)) mine.push_back(i);
  std::vector<std::optional<FailureReport>> failures(mine.size());
  std::atomic<bool> failed{false};
  run_tasks(mine.size(), jobs, [&](size_t k) {
    if (failed) return;  // as run_tasks: no task starts after a failure
    try {
      out[mine[k]] = task(mine[k]);
    } catch (...) {
      failures[k] = capture(std::current_exception());
      failed = true;
    }
  });
  std::vector<Entry> entries;
  for (size_t k = 0; k < mine.size(); ++k) {
    if (failures[k])
      entries.push_back({mine[k], failures[k]->exit_code, failures[k]->message});
    else if (!failed)
      entries.push_back({mine[k], 0, std::move(out[mine[k]])});
  }
  std::vector<Entry> all = exchange(entries);
  throw_first_failure(all);
  FDC_CHECK(all.size() == n, "the ranks returned " << all.size() << " of " << n << " results");
  for (Entry& e : all) {
    FDC_CHECK(e.task < n, "a rank returned task " << e.task << " of " << n);
    out[e.task] = std::move(e.text);
  }
  return out;
}

}  // namespace fdc::cli
