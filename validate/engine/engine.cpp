#include "validate/engine/engine.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "kernels/attention/attention.h"
#include "kernels/comm/launcher.h"
#include "kernels/common/cuda_check.h"
#include "sim/kv_memory.h"
#include "sim/scheduler.h"
#include "sim/timeline.h"
#include "validate/engine/gpu_model.h"
#if FDCSIM_HAVE_NCCL
#include "kernels/comm/nccl_check.h"
#include "kernels/comm/nccl_comm.h"
#endif

namespace fdc::engine {

namespace {

using Clock = std::chrono::steady_clock;

// FDCSIM_ENGINE_TRACE=1: each rank says what it is doing on stderr (diagnosing multi-GPU runs).
bool tracing() {
  static const bool on = [] {
    const char* v = std::getenv("FDCSIM_ENGINE_TRACE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}
void trace(int rank, const char* what, int iteration = -1, size_t seqs = 0) {
  if (!tracing()) return;
  if (iteration >= 0)
    std::fprintf(stderr, "[engine rank %d] %s %d (%zu sequences)\n", rank, what, iteration, seqs);
  else
    std::fprintf(stderr, "[engine rank %d] %s\n", rank, what);
  std::fflush(stderr);
}

// Waits until `deadline`: sleeps while far, then spins the last stretch (sleep overshoots by tens
// of microseconds, which would delay arrivals the simulator sees on time).
void wait_until(Clock::time_point deadline) {
  for (;;) {
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) return;
    if (left > std::chrono::microseconds(300)) {
      std::this_thread::sleep_for(left - std::chrono::microseconds(200));
    } else {
      std::this_thread::yield();
    }
  }
}

// Rank 0's batch, sent to the other ranks before each forward pass (SP). Layout of the int
// message: [num_seqs or -1 = stop], then per sequence new_tokens, context_before, emits,
// num_blocks, the new tokens' ids, the block table.
class BatchChannel {
 public:
#if FDCSIM_HAVE_NCCL
  BatchChannel(const kernels::comm::NcclComm& comm, size_t capacity) : comm_(comm), cap_(capacity) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&dev_), cap_ * sizeof(int)));
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host_), cap_ * sizeof(int)));
  }
  ~BatchChannel() {
    cudaFreeHost(host_);
    cudaFree(dev_);
    cudaStreamDestroy(stream_);
  }
  BatchChannel(const BatchChannel&) = delete;
  BatchChannel& operator=(const BatchChannel&) = delete;

  void send(const std::vector<SeqStep>* steps) {
    size_t n = 0;
    host_[n++] = steps ? static_cast<int>(steps->size()) : -1;
    if (steps) {
      for (const auto& s : *steps) {
        const int pages = s.num_blocks;
        FDC_CHECK(n + 4 + static_cast<size_t>(s.new_tokens) + static_cast<size_t>(pages) <= cap_, "batch message overflow");
        host_[n++] = s.new_tokens;
        host_[n++] = s.context_before;
        host_[n++] = s.emits ? 1 : 0;
        host_[n++] = pages;
        std::copy(s.token_ids, s.token_ids + s.new_tokens, host_ + n);
        n += static_cast<size_t>(s.new_tokens);
        std::copy(s.blocks, s.blocks + pages, host_ + n);
        n += static_cast<size_t>(pages);
      }
    }
    CUDA_CHECK(cudaMemcpyAsync(dev_, host_, n * sizeof(int), cudaMemcpyHostToDevice, stream_));
    broadcast();
  }

  // Returns false on the stop message; otherwise fills steps (pointing into this channel's buffers).
  bool receive(std::vector<SeqStep>& steps) {
    broadcast();
    CUDA_CHECK(cudaMemcpyAsync(host_, dev_, cap_ * sizeof(int), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    steps.clear();
    if (host_[0] < 0) return false;
    size_t n = 1;
    for (int i = 0; i < host_[0]; ++i) {
      SeqStep s;
      s.new_tokens = host_[n++];
      s.context_before = host_[n++];
      s.emits = host_[n++] != 0;
      s.num_blocks = host_[n++];
      s.token_ids = host_ + n;
      n += static_cast<size_t>(s.new_tokens);
      s.blocks = host_ + n;
      n += static_cast<size_t>(s.num_blocks);
      steps.push_back(s);
    }
    return true;
  }

 private:
  void broadcast() {
    NCCL_CHECK(ncclBroadcast(dev_, dev_, cap_, ncclInt32, 0, comm_.get(), stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  const kernels::comm::NcclComm& comm_;
  size_t cap_;
  cudaStream_t stream_ = nullptr;
  int* dev_ = nullptr;
  int* host_ = nullptr;
#else
  void send(const std::vector<SeqStep>*) { FDC_CHECK(false, "sequence parallelism needs a build with NCCL"); }
  bool receive(std::vector<SeqStep>&) { FDC_CHECK(false, "sequence parallelism needs a build with NCCL"); }
#endif
};

// One rank's run. Rank 0 schedules, measures and writes; the others follow its broadcasts.
void run_rank(sim::Experiment& exp, const EngineOptions& opt, const std::string& timeline_path, int rank, int ranks,
              const kernels::comm::NcclComm* comm) {
  const sim::KvLayout layout = sim::make_kv_layout(exp.model, exp.dims, exp.parallel, exp.hardware.gpu_memory_gib,
                                                   exp.memory, exp.scheduler.block_size);
  const sim::SchedulerConfig& sc = exp.scheduler;
  GpuModelConfig mc;
  mc.model = exp.model;
  mc.dims = exp.dims;
  mc.block_size = sc.block_size;
  mc.num_blocks = layout.num_blocks;
  mc.max_tokens = sc.max_batched_tokens;
  mc.max_seqs = sc.max_num_seqs;
  mc.seed = exp.seed;
  mc.weights = opt.weights;
  mc.device = opt.device + rank;
  mc.config_name = exp.source;
  mc.sp_rank = rank;
  mc.sp_size = ranks;
  mc.comm = comm;
  mc.decode_path = opt.decode_path;
  // Owned raw: on an error a rank must exit without destructors, which would wait (cudaFree
  // synchronises) on collectives its dead peers never join. run_engine's worker catches and exits.
  GpuModel& model = *new GpuModel(mc);
  trace(rank, "model ready");
  FDC_CHECK(model.kv_bytes_per_block() <= layout.block_bytes_max_gpu,
            "engine KV block of " << model.kv_bytes_per_block() << " bytes on rank " << rank
                                  << ", more than the simulator's layout gives the most loaded GPU ("
                                  << layout.block_bytes_max_gpu << ")");
  if (ranks == 1)
    FDC_CHECK(model.kv_bytes_per_block() == layout.block_bytes_max_gpu,
              "engine KV block of " << model.kv_bytes_per_block() << " bytes, simulator's layout "
                                    << layout.block_bytes_max_gpu);

  std::unique_ptr<BatchChannel> channel;  // released (not destroyed) when an error unwinds, see below
#if FDCSIM_HAVE_NCCL
  if (ranks > 1) {
    const size_t cap = 16 + static_cast<size_t>(sc.max_num_seqs) * 5 + static_cast<size_t>(sc.max_batched_tokens) +
                       static_cast<size_t>(layout.num_blocks);
    channel.reset(new BatchChannel(*comm, cap));
  }
#endif
  std::vector<SeqStep> steps;
  std::vector<int32_t> next;
  // From here on an exception must not run the channel's destructor either.
  struct Release {
    std::unique_ptr<BatchChannel>& c;
    ~Release() {
      if (std::uncaught_exceptions() > 0) (void)c.release();
    }
  } release_on_error{channel};
  if (rank > 0) {
    int it = 0;
    while (channel->receive(steps)) {
      trace(rank, "iteration", ++it, steps.size());
      model.forward(steps, next);
    }
    delete &model;
    return;
  }
  auto forward = [&](StepTimes* st) {
    if (channel) channel->send(&steps);
    model.forward(steps, next, st);
  };

  EngineTotals tot;
  tot.device = model.device_name();
  tot.decode_kernels = model.decode_kernels();
  tot.gemm_planning = model.gemm_planning();
  tot.kv_blocks = layout.num_blocks;
  // Warm-up on a scratch scheduler: loads kernels and cuBLASLt plans for prefill and decode, so
  // the first measured iterations do not pay one-time costs.
  {
    sim::Scheduler warm(sc, layout.num_blocks);
    const int32_t prompt = std::min<int32_t>(std::min(sc.max_batched_tokens, 512), exp.model.max_model_len - 8);
    std::vector<int32_t> ids(static_cast<size_t>(prompt) + 8, 1);
    for (int i = 0; i < 4; ++i)
      warm.add(static_cast<uint64_t>(i), Nanos(0), std::max(prompt / 4, 2), opt.warmup_iterations + 1);
    while (warm.has_work()) {
      warm.schedule(Nanos(0));
      steps.clear();
      for (size_t j = 0; j < warm.batch_slots().size(); ++j) {
        const auto& s = warm.seq(warm.batch_slots()[j]);
        const auto& w = warm.batch().seqs[j];
        steps.push_back(SeqStep{w.new_tokens, w.context_before, w.emits_token, ids.data(), s.blocks.data(),
                                static_cast<int32_t>(s.blocks.size())});
      }
      trace(rank, "warm-up iteration", 0, steps.size());
      forward(nullptr);
      warm.complete(Nanos(0));
    }
  }

  std::ofstream timeline(timeline_path);
  if (!timeline) throw InputError(timeline_path + ": cannot write the timeline");
  sim::write_header(timeline,
                    sim::TimelineHeader{
                        "engine", tot.device, 1, layout.num_blocks, layout.block_size, exp.resolved,
                        Json{{"decode", tot.decode_kernels},
                             {"decode_slot_index", kernels::attn::to_string(kernels::attn::decode_uneven_slot_index())},
                             {"gemm_planning", tot.gemm_planning}}});
  // Token ids of every live request: prompt ids drawn from the seed, then the generated ones.
  std::unordered_map<uint64_t, std::vector<int32_t>> tokens;
  std::mt19937_64 gen(exp.seed ^ 0x5eed5eedULL);
  std::uniform_int_distribution<int32_t> vocab(0, exp.model.vocab - 1);
  sim::Scheduler sched(sc, layout.num_blocks);
  std::unordered_map<uint64_t, std::vector<int64_t>> token_ns;
  std::optional<traces::RequestSpec> pending = exp.workload->next();
  const auto t0 = Clock::now();
  auto now_ns = [&] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count(); };
  int64_t first_arrival = -1, last_completion = 0;
  auto report = [&](bool final) {
    if (opt.quiet) return;
    std::printf("\r  %llu requests completed, %llu arrived%s", static_cast<unsigned long long>(tot.completed),
                static_cast<unsigned long long>(tot.arrived), final ? "\n" : "");
    std::fflush(stdout);
  };

  for (;;) {
    // Admit every request that has arrived.
    const int64_t t = now_ns();
    while (pending && pending->arrival.ns() <= t) {
      const auto& r = *pending;
      ++tot.arrived;
      if (first_arrival < 0) first_arrival = r.arrival.ns();
      if (auto rej = sched.check_admissible(r.prompt_tokens, r.output_tokens)) {
        ++tot.rejected;
        sim::RequestRecord rec;
        rec.id = r.id;
        rec.reason = rej->code;
        rec.arrival_ns = r.arrival.ns();
        rec.prompt = r.prompt_tokens;
        rec.output = r.output_tokens;
        sim::write_request(timeline, rec);
      } else {
        // The request enters the queue at its arrival time, as in the simulator.
        sched.add(r.id, r.arrival, r.prompt_tokens, r.output_tokens);
        auto& ids = tokens[r.id];
        ids.resize(static_cast<size_t>(r.prompt_tokens));
        for (auto& v : ids) v = vocab(gen);
      }
      pending = exp.workload->next();
    }
    if (!sched.has_work()) {
      if (!pending) break;
      wait_until(t0 + std::chrono::nanoseconds(pending->arrival.ns()));
      continue;
    }
    const int64_t start = now_ns();
    sched.schedule(Nanos(start));
    tot.preemptions += sched.preempted().size();
    const auto& batch = sched.batch();
    FDC_CHECK(!batch.empty(), "the scheduler has work but scheduled nothing");
    steps.clear();
    for (size_t j = 0; j < sched.batch_slots().size(); ++j) {
      const auto& s = sched.seq(sched.batch_slots()[j]);
      const auto& w = batch.seqs[j];
      const auto& ids = tokens.at(s.request_id);
      FDC_CHECK(static_cast<size_t>(w.context_before + w.new_tokens) <= ids.size(), "token ids missing");
      steps.push_back(SeqStep{w.new_tokens, w.context_before, w.emits_token, ids.data() + w.context_before,
                              s.blocks.data(), static_cast<int32_t>(s.blocks.size())});
    }
    StepTimes st;
    forward(&st);
    // Emitted ids follow the batch order of emitting sequences.
    {
      size_t e = 0;
      for (size_t j = 0; j < steps.size(); ++j)
        if (steps[j].emits) tokens.at(sched.seq(sched.batch_slots()[j]).request_id).push_back(next[e++]);
    }
    const int64_t end = std::max(now_ns(), start + 1);
    sim::write_iteration(timeline, 0, start, end - start, batch);  // before complete() recycles the batch
    sched.complete(Nanos(end));
    ++tot.iterations;
    tot.busy_s += static_cast<double>(end - start) * 1e-9;
    tot.gpu_s += st.gpu_ms * 1e-3;
    tot.host_s += st.host_ms * 1e-3;
    for (sim::SlotId s : sched.emitted()) token_ns[sched.seq(s).request_id].push_back(end);
    for (sim::SlotId f : sched.finished()) {
      const auto& s = sched.seq(f);
      ++tot.completed;
      last_completion = end;
      auto it = token_ns.find(s.request_id);
      sim::write_request(timeline, sim::completed_record(s, 0, std::move(it->second)));
      token_ns.erase(it);
      tokens.erase(s.request_id);
      if (tot.completed % 16 == 0) report(false);
    }
  }
  if (channel) channel->send(nullptr);  // stop the other ranks
  delete &model;
  FDC_CHECK(sched.kv().used_blocks() == 0, "KV blocks still in use at the end");
  tot.wall_s = first_arrival < 0 ? 0.0 : static_cast<double>(last_completion - first_arrival) * 1e-9;
  timeline.close();
  if (!timeline) throw InputError(timeline_path + ": write failed");
  report(true);
  if (!opt.quiet) {
    std::printf(
        "  %s x %d: %llu completed, %llu rejected, %llu iterations, %llu preemptions, %lld KV blocks\n"
        "  wall %.3f s, busy %.3f s (GPU %.3f s, host planning %.3f s)\n  decode kernel: %s\n  GEMM planning: %s\n"
        "  timeline: %s\n",
        tot.device.c_str(), ranks, static_cast<unsigned long long>(tot.completed),
        static_cast<unsigned long long>(tot.rejected), static_cast<unsigned long long>(tot.iterations),
        static_cast<unsigned long long>(tot.preemptions), static_cast<long long>(tot.kv_blocks), tot.wall_s,
        tot.busy_s, tot.gpu_s, tot.host_s, tot.decode_kernels.c_str(), tot.gemm_planning.c_str(),
        timeline_path.c_str());
  }
}

}  // namespace

void run_engine(sim::Experiment& exp, const EngineOptions& opt, const std::string& timeline_path) {
  FDC_INPUT_CHECK(exp.num_replicas() == 1,
                  exp.source << ": the engine runs one replica; this experiment has " << exp.num_replicas()
                             << " (servers x gpus_per_server / (tp x sp)); use --gpus to run one server of tp x sp GPUs");
  FDC_INPUT_CHECK(exp.parallel.tp == 1,
                  exp.source << ": the engine runs sequence parallelism only (tp=1); found tp=" << exp.parallel.tp);
  bool token_classes = false;
  for (const auto& ld : exp.dims.layers)
    for (const auto& hd : ld.kv_heads)
      token_classes |= (hd.qk_lo != hd.qk_hi || hd.v_lo != hd.v_hi) &&
                       costmodel::important_slots(ld.important_fraction, exp.scheduler.block_size) < exp.scheduler.block_size;
  FDC_INPUT_CHECK(!(token_classes && exp.scheduler.chunked_prefill),
                  exp.source << ": policy " << exp.policy.name
                             << " has token classes, which the engine decides once a whole prompt is prefilled; set "
                                "scheduler.chunked_prefill = false (it is true)");
  const int ranks = exp.parallel.sp;
  if (ranks == 1) {
    run_rank(exp, opt, timeline_path, 0, 1, nullptr);
    return;
  }
#if FDCSIM_HAVE_NCCL
  const auto result = kernels::comm::run_ranks(
      ranks, [] { return kernels::comm::make_nccl_token(); },
      [&](int rank, int n, const std::string& token) {
        try {
          int visible = 0;
          CUDA_CHECK(cudaGetDeviceCount(&visible));
          FDC_INPUT_CHECK(visible >= opt.device + n, exp.source << ": sp=" << n << " needs GPUs " << opt.device << ".."
                                                                << opt.device + n - 1 << "; " << visible
                                                                << " are visible");
          CUDA_CHECK(cudaSetDevice(opt.device + rank));
          // Leaked on error (see run_rank): its destructor could wait on dead peers.
          auto* comm = new kernels::comm::NcclComm(rank, n, token);
          trace(rank, "NCCL ready");
          run_rank(exp, opt, timeline_path, rank, n, comm);
          delete comm;
          return 0;
        } catch (const InputError& e) {
          std::fprintf(stderr, "fdcsim engine rank %d: error: %s\n", rank, e.what());
          std::fflush(stderr);
          _exit(2);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "fdcsim engine rank %d: %s\n", rank, e.what());
          std::fflush(stderr);
          _exit(3);
        }
      },
      opt.timeout_s);
  if (result.exit_code == 2) throw InputError("the engine stopped: rank " + std::to_string(result.failed_rank) + " refused its input (message above)");
  FDC_CHECK(result.exit_code == 0, "the engine failed: rank " << result.failed_rank
                                                              << (result.timed_out ? " timed out" : " exited with code ")
                                                              << (result.timed_out ? "" : std::to_string(result.exit_code))
                                                              << "; every rank was stopped");
#else
  throw InputError(exp.source + ": sp=" + std::to_string(ranks) + " needs a build with NCCL");
#endif
}

}  // namespace fdc::engine
