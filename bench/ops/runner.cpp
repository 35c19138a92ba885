#include "bench/ops/runner.h"

#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "bench/ops/benchmarks.h"
#include "bench/ops/summary.h"
#include "kernels/comm/launcher.h"
#include "kernels/common/cuda_check.h"
#ifdef FDCSIM_HAVE_NCCL
#include "bench/ops/comm_benchmarks.h"
#include "kernels/comm/nccl_comm.h"
#endif

namespace fdc::profile {
namespace {

class NullReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

// Google Benchmark's flags for RunOptions::repetitions in a single-GPU part (none for one run): its
// repetitions, interleaved at random.
std::vector<std::string> repetition_args(const RunOptions& o) {
  if (o.repetitions <= 1) return {};
  return {"--benchmark_repetitions=" + std::to_string(o.repetitions), "--benchmark_enable_random_interleaving=true"};
}

// The multi-GPU parts' interleaving order: the same on every rank.
constexpr unsigned kCommInterleaveSeed = 20261205;

// Google Benchmark reads its flags from an argv; each worker process initialises it once.
void init_benchmark(const std::string& json_path, const std::vector<std::string>& extra) {
  static std::vector<std::string> args;  // argv must outlive the library's use of it
  args = {"fdcsim-profile"};
  if (!json_path.empty()) {
    args.push_back("--benchmark_out=" + json_path);
    args.push_back("--benchmark_out_format=json");
  }
  args.insert(args.end(), extra.begin(), extra.end());
  static std::vector<char*> argv;
  argv.clear();
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int argc = static_cast<int>(args.size());
  benchmark::Initialize(&argc, argv.data());
}

void add_context(const nlohmann::json& prov) {
  for (const auto& [k, v] : prov.items())
    benchmark::AddCustomContext("fdcsim_" + k, v.is_string() ? v.get<std::string>() : v.dump());
}

double remaining_s(const RunOptions& o) {
  return std::chrono::duration<double>(o.deadline - std::chrono::steady_clock::now()).count();
}

}  // namespace

int probe_gpu_count() {
  // The count travels as the probe's exit code (a server has far fewer than 100 GPUs); 100 = no
  // usable driver.
  const auto r = kernels::comm::run_ranks(
      1, [] { return std::string(); },
      [](int, int, const std::string&) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) return 100;
        return std::min(n, 99);
      },
      120.0);
  return r.exit_code >= 100 ? 0 : r.exit_code;
}

int run_single_gpu_part(const ProfilePlan& plan, const RunOptions& o, const std::string& json_path,
                        const std::vector<std::string>& extra_benchmark_args) {
  CUDA_CHECK(cudaSetDevice(0));
  const nlohmann::json prov = collect_provenance(o.command_line);
  if (!o.out_dir.empty()) std::ofstream(std::filesystem::path(o.out_dir) / "provenance.json") << prov.dump(2) << "\n";
  std::vector<std::string> args = repetition_args(o);
  args.insert(args.end(), extra_benchmark_args.begin(), extra_benchmark_args.end());
  init_benchmark(json_path, args);
  add_context(prov);
  OpContext ctx;
  ctx.opts = o;
  CUDA_CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
  ctx.gemm = std::make_unique<kernels::ops::GemmRunner>();
  int n = 0;
  for (const BenchCase& c : plan.run)
    if (c.gpus == 1 && !is_attention_case(c)) {
      register_op_case(c, ctx);
      ++n;
    }
  if (n > 0) {
    if (o.quiet) {
      NullReporter null;
      benchmark::RunSpecifiedBenchmarks(&null);
    } else {
      benchmark::RunSpecifiedBenchmarks();
    }
  }
  ctx.gemm.reset();
  CUDA_CHECK(cudaStreamDestroy(ctx.stream));
  return 0;
}

int run_attention_part(const ProfilePlan& plan, const RunOptions& o, const std::string& json_path) {
  CUDA_CHECK(cudaSetDevice(0));
  init_benchmark(json_path, repetition_args(o));
  add_context(collect_provenance(o.command_line));
  OpContext ctx;
  ctx.opts = o;
  CUDA_CHECK(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
  int n = 0;
  for (const BenchCase& c : plan.run)
    if (is_attention_case(c)) {
      register_attention_case(c, ctx);
      ++n;
    }
  if (n > 0) {
    NullReporter null;
    if (o.quiet)
      benchmark::RunSpecifiedBenchmarks(&null);
    else
      benchmark::RunSpecifiedBenchmarks();
  }
  CUDA_CHECK(cudaStreamDestroy(ctx.stream));
  return 0;
}

int run_multi_gpu_part(const ProfilePlan& plan, int gpus, int rank, const std::string& nccl_token, const RunOptions& o,
                       const std::string& json_path) {
#ifdef FDCSIM_HAVE_NCCL
  CUDA_CHECK(cudaSetDevice(rank));
  init_benchmark(rank == 0 ? json_path : "", {});
  if (rank == 0) add_context(collect_provenance(o.command_line));
  benchmark::AddCustomContext("fdcsim_process_per_gpu", std::to_string(gpus) + " processes, one per GPU (fork launcher)");
  CommContext ctx(rank, gpus, nccl_token, o);
  // Repetitions interleaved in one order on every rank (each must launch the same collective at
  // the same time; Google Benchmark's random interleaving draws its order per process): each case
  // registered `repetitions` times, shuffled with a fixed seed, so that drift over the run falls
  // on every case alike.
  std::vector<const BenchCase*> order;
  for (const BenchCase& c : plan.run)
    if (c.gpus == gpus)
      for (int r = 0; r < std::max(o.repetitions, 1); ++r) order.push_back(&c);
  if (o.repetitions > 1) std::shuffle(order.begin(), order.end(), std::mt19937(kCommInterleaveSeed));
  for (const BenchCase* c : order) register_comm_case(*c, ctx, o.repetitions);
  NullReporter null;
  if (rank == 0 && !o.quiet)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&null);
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return 0;
#else
  (void)plan, (void)gpus, (void)rank, (void)nccl_token, (void)o, (void)json_path;
  std::fprintf(stderr, "fdcsim profile: this build has no NCCL: multi-GPU cases cannot run\n");
  return 2;
#endif
}

int run_plan(const ProfilePlan& plan, const RunOptions& o) {
  namespace fs = std::filesystem;
  const fs::path out(o.out_dir);
  fs::create_directories(out);
  std::ofstream(out / "plan.json") << plan.to_json().dump(2) << "\n";
  int status = 0;
  std::vector<std::string> outputs;
  const double grace = 300;  // a case already running finishes; then the worker is stopped
  {
    const std::string path = (out / "ops.json").string();
    auto r = kernels::comm::run_ranks(
        1, [] { return std::string(); },
        [&](int, int, const std::string&) { return run_single_gpu_part(plan, o, path, {}); },
        std::max(remaining_s(o), 0.0) + grace);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "fdcsim profile: the single-GPU part failed (exit %d%s)\n", r.exit_code,
                   r.timed_out ? ", stopped at the deadline" : "");
      status = 3;
    }
    outputs.push_back(path);
  }
  // Attention in a worker of its own: Google Benchmark writes one JSON file per process, and the
  // attention cases go to attention.json.
  if (std::any_of(plan.run.begin(), plan.run.end(), is_attention_case)) {
    const std::string path = (out / "attention.json").string();
    auto r = kernels::comm::run_ranks(
        1, [] { return std::string(); },
        [&](int, int, const std::string&) { return run_attention_part(plan, o, path); },
        std::max(remaining_s(o), 0.0) + grace);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "fdcsim profile: the attention part failed (exit %d%s)\n", r.exit_code,
                   r.timed_out ? ", stopped at the deadline" : "");
      status = 3;
    }
    outputs.push_back(path);
  }
  std::set<int> counts;
  for (const BenchCase& c : plan.run)
    if (c.gpus > 1) counts.insert(c.gpus);
  for (int g : counts) {
#ifdef FDCSIM_HAVE_NCCL
    const std::string path = (out / ("comm-" + std::to_string(g) + "gpu.json")).string();
    auto r = kernels::comm::run_ranks(
        g, [] { return kernels::comm::make_nccl_token(); },
        [&](int rank, int n, const std::string& token) { return run_multi_gpu_part(plan, n, rank, token, o, path); },
        std::max(remaining_s(o), 0.0) + grace);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "fdcsim profile: the %d-GPU part failed (rank %d, exit %d%s)\n", g, r.failed_rank,
                   r.exit_code, r.timed_out ? ", stopped at the deadline" : "");
      status = 3;
    }
    outputs.push_back(path);
#else
    std::fprintf(stderr, "fdcsim profile: %d-GPU cases skipped: this build has no NCCL\n", g);
#endif
  }
  // Google Benchmark writes non-finite aggregates of repeated cases as bare NaN: keep the raw
  // files valid JSON.
  for (const std::string& path : outputs) rewrite_nonfinite_as_null(path);
  const std::string summary = summarize_profile(outputs);
  std::ofstream(out / "summary.md") << summary;
  if (!o.quiet) std::cout << summary;
  return status;
}

}  // namespace fdc::profile
