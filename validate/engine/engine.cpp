#include "validate/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "sim/kv_memory.h"
#include "sim/scheduler.h"
#include "sim/timeline.h"
#include "validate/engine/gpu_model.h"

namespace fdc::engine {

namespace {

using Clock = std::chrono::steady_clock;

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

}  // namespace

EngineTotals run_engine(sim::Experiment& exp, const EngineOptions& opt, std::ostream& timeline,
                        const std::function<void(uint64_t, uint64_t)>& progress) {
  FDC_INPUT_CHECK(exp.num_replicas() == 1,
                  exp.source << ": the engine runs one replica; this experiment has " << exp.num_replicas()
                             << " (servers x gpus_per_server / (tp x sp)); use --gpus to run one server of that many GPUs");
  FDC_INPUT_CHECK(exp.parallel.tp == 1 && exp.parallel.sp == 1,
                  exp.source << ": the engine runs tp=1, sp=1 (found tp=" << exp.parallel.tp << ", sp=" << exp.parallel.sp
                             << ")");
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
  mc.device = opt.device;
  mc.config_name = exp.source;
  GpuModel model(mc);
  FDC_CHECK(model.kv_bytes_per_block() == layout.block_bytes_max_gpu,
            "engine KV block of " << model.kv_bytes_per_block() << " bytes, simulator's layout "
                                  << layout.block_bytes_max_gpu);

  EngineTotals tot;
  tot.device = model.device_name();
  tot.kv_blocks = layout.num_blocks;

  // Token ids of every live request: prompt ids drawn from the seed, then the generated ones.
  std::unordered_map<uint64_t, std::vector<int32_t>> tokens;
  std::mt19937_64 gen(exp.seed ^ 0x5eed5eedULL);
  std::uniform_int_distribution<int32_t> vocab(0, exp.model.vocab - 1);

  // Warm-up on a scratch scheduler: loads kernels and cuBLASLt plans for prefill and decode, so
  // the first measured iterations do not pay one-time costs.
  {
    sim::Scheduler warm(sc, layout.num_blocks);
    const int32_t prompt = std::min<int32_t>(std::min(sc.max_batched_tokens, 512), exp.model.max_model_len - 8);
    std::vector<int32_t> ids(static_cast<size_t>(prompt) + 8, 1);
    for (int i = 0; i < 4; ++i) warm.add(static_cast<uint64_t>(i), Nanos(0), std::max(prompt / 4, 2), opt.warmup_iterations + 1);
    std::vector<SeqStep> steps;
    std::vector<int32_t> next;
    while (warm.has_work()) {
      warm.schedule(Nanos(0));
      steps.clear();
      for (size_t j = 0; j < warm.batch_slots().size(); ++j) {
        const auto& s = warm.seq(warm.batch_slots()[j]);
        const auto& w = warm.batch().seqs[j];
        steps.push_back(SeqStep{w.new_tokens, w.context_before, w.emits_token, ids.data(), s.blocks.data(),
                                static_cast<int32_t>(s.blocks.size())});
      }
      model.forward(steps, next);
      warm.complete(Nanos(0));
    }
  }

  sim::write_header(timeline, sim::TimelineHeader{"engine", tot.device, 1, layout.num_blocks, layout.block_size,
                                                  exp.resolved});
  sim::Scheduler sched(sc, layout.num_blocks);
  std::unordered_map<uint64_t, std::vector<int64_t>> token_ns;
  std::vector<SeqStep> steps;
  std::vector<int32_t> next;
  std::optional<traces::RequestSpec> pending = exp.workload->next();
  const auto t0 = Clock::now();
  auto now_ns = [&] { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count(); };
  int64_t first_arrival = -1, last_completion = 0;
  uint64_t last_report = 0;

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
    model.forward(steps, next, &st);
    // Emitted ids follow the batch order of emitting sequences.
    {
      size_t e = 0;
      for (size_t j = 0; j < steps.size(); ++j)
        if (steps[j].emits) tokens.at(sched.seq(sched.batch_slots()[j]).request_id).push_back(next[e++]);
    }
    const int64_t end = std::max(now_ns(), start + 1);
    sched.complete(Nanos(end));
    ++tot.iterations;
    tot.busy_s += static_cast<double>(end - start) * 1e-9;
    tot.gpu_s += st.gpu_ms * 1e-3;
    tot.host_s += st.host_ms * 1e-3;
    sim::write_iteration(timeline, 0, start, end - start, batch);
    for (sim::SlotId s : sched.emitted()) token_ns[sched.seq(s).request_id].push_back(end);
    for (sim::SlotId f : sched.finished()) {
      const auto& s = sched.seq(f);
      ++tot.completed;
      last_completion = end;
      sim::RequestRecord rec;
      rec.id = s.request_id;
      rec.completed = true;
      rec.arrival_ns = s.arrival.ns();
      rec.prompt = s.prompt;
      rec.output = s.output;
      rec.first_scheduled_ns = s.first_scheduled.ns();
      rec.preemptions = s.preemptions;
      auto it = token_ns.find(s.request_id);
      rec.token_ns = std::move(it->second);
      token_ns.erase(it);
      tokens.erase(s.request_id);
      sim::write_request(timeline, rec);
    }
    if (progress && tot.completed != last_report && (tot.completed % 16 == 0)) {
      last_report = tot.completed;
      progress(tot.completed, tot.arrived);
    }
  }
  FDC_CHECK(sched.kv().used_blocks() == 0, "KV blocks still in use at the end");
  tot.wall_s = first_arrival < 0 ? 0.0 : static_cast<double>(last_completion - first_arrival) * 1e-9;
  if (progress) progress(tot.completed, tot.arrived);
  timeline.flush();
  return tot;
}

}  // namespace fdc::engine
