#include "kernels/comm/launcher.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

#include "core/error.h"

namespace fdc::kernels::comm {
namespace {

bool write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

bool read_exact(int fd, std::string& s, size_t n) {
  s.assign(n, '\0');
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, s.data() + done, n - done);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

// Worker body: exchanges the token, runs the work, never returns.
[[noreturn]] void worker(int rank, int n, const std::vector<int>& write_fds, int read_fd,
                         const std::function<std::string()>& make_token,
                         const std::function<int(int, int, const std::string&)>& work) {
  int code = 0;
  try {
    std::string token;
    if (rank == 0) {
      token = make_token();
      const std::string len = std::to_string(token.size()) + "\n";
      for (int fd : write_fds)
        if (!write_all(fd, len) || !write_all(fd, token)) throw InternalError("rank 0: cannot pass the token on");
    } else {
      std::string digits, c;
      while (read_exact(read_fd, c, 1) && c != "\n") digits += c;
      if (digits.empty() || !read_exact(read_fd, token, std::stoul(digits)))
        throw InternalError("rank 0 ended before passing the token on");
    }
    for (int fd : write_fds) ::close(fd);
    code = work(rank, n, token);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    code = 3;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}

}  // namespace

RankResult run_ranks(int num_ranks, const std::function<std::string()>& make_token,
                     const std::function<int(int, int, const std::string&)>& work, double timeout_s,
                     double kill_after_s) {
  FDC_INPUT_CHECK(num_ranks >= 1, "run_ranks: num_ranks must be >= 1, found " << num_ranks);
  // One pipe per non-zero rank: rank 0 writes every one, rank i reads its own.
  std::vector<int> rd(static_cast<size_t>(num_ranks), -1), wr(static_cast<size_t>(num_ranks), -1);
  for (int i = 1; i < num_ranks; ++i) {
    int fds[2];
    FDC_CHECK(::pipe(fds) == 0, "pipe() failed");
    rd[static_cast<size_t>(i)] = fds[0];
    wr[static_cast<size_t>(i)] = fds[1];
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids;
  // Signals stay blocked across fork() until the worker has default dispositions: the parent's
  // handlers (a test framework's crash reporter, say) must not run in a worker stopped with SIGTERM,
  // even one stopped before its first instruction. A signal that arrives meanwhile is delivered
  // once the worker unblocks it, to the default disposition.
  sigset_t all, before;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &before);
  for (int r = 0; r < num_ranks; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    FDC_CHECK(pid >= 0, "fork() failed for rank " << r);
    if (pid == 0) {
      for (int sig : {SIGTERM, SIGINT, SIGSEGV, SIGABRT, SIGFPE, SIGILL, SIGBUS, SIGPIPE}) ::signal(sig, SIG_DFL);
      ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
      std::vector<int> mine;  // write ends this worker keeps (rank 0: all)
      for (int i = 1; i < num_ranks; ++i) {
        if (i != r) ::close(rd[static_cast<size_t>(i)]);
        if (r == 0)
          mine.push_back(wr[static_cast<size_t>(i)]);
        else
          ::close(wr[static_cast<size_t>(i)]);
      }
      worker(r, num_ranks, mine, r == 0 ? -1 : rd[static_cast<size_t>(r)], make_token, work);
    }
    pids.push_back(pid);
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  for (int i = 1; i < num_ranks; ++i) {
    ::close(rd[static_cast<size_t>(i)]);
    ::close(wr[static_cast<size_t>(i)]);
  }
  RankResult result;
  std::vector<bool> done(pids.size(), false);
  size_t remaining = pids.size();
  const auto start = std::chrono::steady_clock::now();
  bool stopping = false;
  std::chrono::steady_clock::time_point stop_time;
  while (remaining > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      if (::waitpid(pids[i], &status, WNOHANG) != pids[i]) continue;
      done[i] = true;
      --remaining;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
      if (code != 0 && result.exit_code == 0) {
        result.exit_code = code;
        result.failed_rank = static_cast<int>(i);
      }
    }
    if (remaining == 0) break;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!stopping && (result.exit_code != 0 || elapsed > timeout_s)) {
      // A failed rank leaves its peers waiting inside NCCL forever: stop them.
      if (result.exit_code == 0) result.timed_out = true;
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) ::kill(pids[i], SIGTERM);
      stopping = true;
      stop_time = std::chrono::steady_clock::now();
    } else if (stopping &&
               std::chrono::duration<double>(std::chrono::steady_clock::now() - stop_time).count() > kill_after_s) {
      // A worker blocked inside a driver call may not act on SIGTERM: make sure it ends.
      for (size_t i = 0; i < pids.size(); ++i)
        if (!done[i]) ::kill(pids[i], SIGKILL);
      stop_time = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (result.timed_out && result.exit_code == 0) result.exit_code = 124;
  return result;
}

}  // namespace fdc::kernels::comm
