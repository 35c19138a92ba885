#include "apps/fdcsim/parallel_tasks.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

namespace fdc::cli {

int default_jobs() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

void run_tasks(size_t n, int jobs, const std::function<void(size_t)>& task) {
  if (jobs <= 1 || n <= 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  std::vector<std::exception_ptr> errors(n);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (size_t i = next++; i < n && !failed; i = next++) {
      try {
        task(i);
      } catch (...) {
        errors[i] = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < std::min(n, static_cast<size_t>(jobs)); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace fdc::cli
