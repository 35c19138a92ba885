#include "sim/simulator.h"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>

#include "core/error.h"
#include "sim/timeline.h"

namespace fdc::sim {

namespace {

// Integer text without printf (these run once per request row).
void append_int(std::string& s, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}
// `whole.frac` with `digits` zero-padded fraction digits, from an integer count of units.
void append_fixed(std::string& s, int64_t v, int64_t scale, int digits) {
  if (v < 0) {
    s += '-';
    v = -v;
  }
  append_int(s, v / scale);
  s += '.';
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v % scale);
  s.append(static_cast<size_t>(digits - (r.ptr - buf)), '0');
  s.append(buf, r.ptr);
}
// Nanoseconds as milliseconds with all 6 decimals: exact, and the same text on every platform.
void append_ms(std::string& s, int64_t ns) { append_fixed(s, ns, 1000000, 6); }
// Nanoseconds as microseconds with 3 decimals (Chrome trace timestamps).
void append_us(std::string& s, int64_t ns) { append_fixed(s, ns, 1000, 3); }

}  // namespace

Simulator::Simulator(Experiment& e, const costmodel::CostModel& cost, OutputStreams streams)
    : exp_(e), cost_(cost), out_(streams) {
  layout_ = make_kv_layout(e.model, e.dims, e.parallel, e.hardware.gpu_memory_gib, e.memory, e.scheduler.block_size);
  const int per_server = e.replicas_per_server();
  replicas_.reserve(static_cast<size_t>(e.num_replicas()));
  for (int i = 0; i < e.num_replicas(); ++i) {
    replicas_.push_back(Replica{Scheduler(e.scheduler, layout_.num_blocks), i / per_server, false, 0, 0, Run{}});
  }
  heap_.reserve(2 * replicas_.size() + 2);
  fast_forward_ = e.fast_forward && out_.trace_json == nullptr && out_.timeline == nullptr;
}

void Simulator::push(int64_t time, uint32_t kind, uint32_t replica, uint64_t version) {
  heap_.push_back(Event{time, kind, replica, version});
  std::push_heap(heap_.begin(), heap_.end(), Later{});
}

uint32_t Simulator::route() {
  const auto n = static_cast<uint32_t>(replicas_.size());
  if (exp_.router == RouterKind::kRoundRobin) {
    uint32_t r = rr_next_;
    rr_next_ = (rr_next_ + 1) % n;
    return r;
  }
  uint32_t best = 0;
  if (exp_.router == RouterKind::kLeastOutstanding) {
    for (uint32_t i = 1; i < n; ++i)
      if (replicas_[i].outstanding < replicas_[best].outstanding) best = i;
    return best;
  }
  // kv_aware: the fewest KV blocks in use now plus those its waiting queue needs; ties go to the
  // fewest requests in flight, then the lowest index.
  auto load = [&](uint32_t i) {
    const Replica& rep = replicas_[i];
    // As stepping has it when an arrival at `now` is routed: iteration ends at `now` come first.
    return std::pair{used_blocks_at(rep, now_, true) + rep.sched.waiting_blocks(), rep.outstanding};
  };
  auto best_load = load(0);
  for (uint32_t i = 1; i < n; ++i)
    if (const auto l = load(i); l < best_load) best = i, best_load = l;
  return best;
}

void Simulator::run(const std::function<void(const Progress&)>& progress) {
  if (out_.requests_csv)
    *out_.requests_csv << "request_id,replica,status,reason,arrival_ms,prompt_tokens,output_tokens,queue_ms,ttft_ms,"
                          "tpot_ms,jct_ms,preemptions\n";
  if (out_.kv_csv) *out_.kv_csv << "time_s,mean_kv_utilization,max_kv_utilization,running_seqs,waiting_seqs\n";
  if (out_.trace_json) {
    *out_.trace_json << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
    // One metadata event per replica first; every later event is written with a leading comma.
    for (size_t r = 0; r < replicas_.size(); ++r)
      *out_.trace_json << (r ? ",\n" : "") << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" << replicas_[r].server
                       << ",\"tid\":" << r << ",\"args\":{\"name\":\"replica " << r << "\"}}";
  }
  if (out_.timeline) {
    write_header(*out_.timeline, TimelineHeader{"simulator", "", static_cast<int>(replicas_.size()), layout_.num_blocks,
                                                layout_.block_size, exp_.resolved, Json()});
  }
  std::optional<traces::RequestSpec> pending = exp_.workload->next();
  if (pending) push(pending->arrival.ns(), kArrival, 0);
  next_kv_sample_ = Nanos(0);

  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    const Event ev = heap_.back();
    heap_.pop_back();
    FDC_CHECK(ev.time >= now_.ns(), "time went backwards: event at " << ev.time << " ns after " << now_.ns() << " ns");
    if (out_.kv_csv && ev.time >= next_kv_sample_.ns()) sample_kv_until(Nanos(ev.time));
    now_ = Nanos(ev.time);
    ++totals_.events;
    if (ev.kind == kArrival) {
      traces::RequestSpec r = *pending;
      pending = exp_.workload->next();
      if (pending) {
        FDC_CHECK(pending->arrival >= r.arrival, "workload produced arrivals out of order");
        push(pending->arrival.ns(), kArrival, 0);
      }
      on_arrival(r);
    } else if (ev.version == replicas_[ev.replica].version) {
      on_iteration_end(ev.replica);
    }  // else: an iteration end replaced when an arrival cut a steady decode stretch
    if (progress && (totals_.events & 0xFFFF) == 0) progress(Progress{totals_.arrived, totals_.completed, now_});
  }
  flush_tbt();
  if (out_.kv_csv) sample_kv_until(now_);
  if (out_.trace_json) *out_.trace_json << "\n]}\n";

  // Invariants of every run.
  FDC_CHECK(totals_.arrived == totals_.completed + totals_.rejected,
            totals_.arrived << " arrived, " << totals_.completed << " completed, " << totals_.rejected << " rejected");
  for (const auto& rep : replicas_) {
    FDC_CHECK(!rep.sched.has_work() && !rep.busy, "a replica still has work at the end");
    FDC_CHECK(rep.sched.kv().used_blocks() == 0, "KV blocks still in use at the end");
  }
  FDC_CHECK(used_blocks_total_ == 0, "KV block accounting drifted: " << used_blocks_total_);
  if (progress) progress(Progress{totals_.arrived, totals_.completed, now_});
}

void Simulator::on_arrival(const traces::RequestSpec& r) {
  ++totals_.arrived;
  if (totals_.first_arrival.ns() < 0) totals_.first_arrival = r.arrival;
  totals_.last_arrival = r.arrival;
  const uint32_t idx = route();
  Replica& rep = replicas_[idx];
  if (auto rej = rep.sched.check_admissible(r.prompt_tokens, r.output_tokens)) {
    ++totals_.rejected;
    ++totals_.rejected_by_reason[rej->code];
    if (out_.timeline) {
      RequestRecord rec;
      rec.id = r.id;
      rec.replica = static_cast<int>(idx);
      rec.reason = rej->code;
      rec.arrival_ns = r.arrival.ns();
      rec.prompt = r.prompt_tokens;
      rec.output = r.output_tokens;
      write_request(*out_.timeline, rec);
    }
    if (out_.requests_csv && exp_.outputs.per_request_csv) {
      begin_request_row(r.id, idx, "rejected", rej->code, r.arrival, r.prompt_tokens, r.output_tokens);
      line_ += ",,,,,0\n";
      *out_.requests_csv << line_;
    }
    return;
  }
  if (rep.run.active()) {
    // Cut the stretch at the iteration in progress: it ends after `now`; the request is seen
    // when it ends, as in step-by-step simulation (iteration ends precede arrivals at equal times).
    const auto& ends = rep.run.ends;
    const size_t done = static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), now_.ns()) - ends.begin());
    FDC_CHECK(done < ends.size(), "arrival after the end of a steady stretch");
    if (done + 1 < ends.size()) {
      const int64_t end = ends[done];
      if (done == 0) {
        rep.run.ends.clear();  // only iteration 1 remains: an ordinary iteration
        rep.run.used.clear();
      } else {
        rep.run.ends.resize(done + 1);
        rep.run.used.resize(done + 1);
      }
      ++rep.version;
      push(end, kIterationEnd, idx, rep.version);
    }
  }
  rep.sched.add(r.id, r.arrival, r.prompt_tokens, r.output_tokens);
  ++rep.outstanding;
  if (!rep.busy) start_iteration(idx);
}

void Simulator::start_iteration(uint32_t r) {
  Replica& rep = replicas_[r];
  const int64_t before = rep.sched.kv().used_blocks();
  rep.sched.schedule(now_);
  const int64_t used = rep.sched.kv().used_blocks();
  used_blocks_total_ += used - before;
  totals_.preemptions += rep.sched.preempted().size();
  const costmodel::Batch& batch = rep.sched.batch();
  if (batch.empty()) {
    FDC_CHECK(!rep.sched.has_work(), "replica " << r << " has " << rep.sched.num_waiting() << " waiting and "
                                                << rep.sched.num_running() << " running but scheduled nothing");
    rep.busy = false;
    return;
  }
  const Nanos dur = cost_.iteration_time(batch);
  FDC_CHECK(dur.ns() > 0, "the cost model returned a non-positive iteration time");
  rep.busy = true;
  ++totals_.iterations;
  totals_.max_batch_seqs = std::max<uint64_t>(totals_.max_batch_seqs, static_cast<uint64_t>(batch.totals.num_seqs));
  totals_.busy_ns += dur.ns();
  totals_.kv_block_ns += static_cast<SimulationTotals::Int128>(used) * dur.ns();
  totals_.kv_max_used_blocks = std::max(totals_.kv_max_used_blocks, used);
  if (out_.trace_json && totals_.iterations <= static_cast<uint64_t>(exp_.outputs.trace_max_iterations)) {
    const auto& t = batch.totals;
    const char* kind = t.prefill_seqs == 0 ? "decode" : (t.decode_seqs == 0 ? "prefill" : "mixed");
    line_.clear();
    line_ += ",\n{\"name\":\"";
    line_ += kind;
    line_ += "\",\"ph\":\"X\",\"pid\":";
    append_int(line_, rep.server);
    line_ += ",\"tid\":";
    append_int(line_, r);
    line_ += ",\"ts\":";
    append_us(line_, now_.ns());
    line_ += ",\"dur\":";
    append_us(line_, dur.ns());
    line_ += ",\"args\":{\"seqs\":";
    append_int(line_, t.num_seqs);
    line_ += ",\"new_tokens\":";
    append_int(line_, t.new_tokens);
    line_ += ",\"decode_seqs\":";
    append_int(line_, t.decode_seqs);
    line_ += ",\"decode_kv_tokens\":";
    append_int(line_, t.decode_kv_tokens);
    line_ += ",\"prefill_tokens\":";
    append_int(line_, t.prefill_tokens);
    line_ += ",\"kv_blocks_used\":";
    append_int(line_, used);
    line_ += "}}";
    *out_.trace_json << line_;
  }
  if (out_.timeline) write_iteration(*out_.timeline, static_cast<int>(r), now_.ns(), dur.ns(), batch);
  if (fast_forward_ && rep.sched.steady_decode()) {
    plan_run(r, dur, used);
    return;
  }
  push(now_.ns() + dur.ns(), kIterationEnd, r, rep.version);
}

void Simulator::plan_run(uint32_t r, Nanos first_duration, int64_t used) {
  Replica& rep = replicas_[r];
  const int64_t horizon = rep.sched.steady_decode_horizon(1 << 16, new_blocks_);
  if (horizon < 2) {
    push(now_.ns() + first_duration.ns(), kIterationEnd, r, rep.version);
    return;
  }
  Run& run = rep.run;
  run.start = now_.ns();
  run.ends.clear();
  run.used.clear();
  int64_t t = now_.ns() + first_duration.ns();
  run.ends.push_back(t);
  run.used.push_back(used);
  for (int64_t j = 1; j < horizon; ++j) {
    used += new_blocks_[static_cast<size_t>(j)];
    t += cost_.decode_time_shifted(rep.sched.batch(), j).ns();
    run.ends.push_back(t);
    run.used.push_back(used);
  }
  push(run.ends.back(), kIterationEnd, r, rep.version);
}

// Applies iterations 1..K-1 of a stretch ending now (iteration K is completed by the caller, as any
// iteration): their metrics, then the scheduler's state, exactly as stepping would.
void Simulator::finish_run(uint32_t r) {
  Replica& rep = replicas_[r];
  Run& run = rep.run;
  const size_t K = run.ends.size();
  FDC_CHECK(K >= 2, "a steady stretch of " << K << " iterations");
  Scheduler& sched = rep.sched;
  // Iteration 1: each sequence's gap since its own previous token.
  for (SlotId s : sched.batch_slots()) add_tbt(run.ends[0] - sched.seq(s).last_token.ns(), 1);
  const auto n = static_cast<uint64_t>(sched.batch_slots().size());
  for (size_t j = 1; j < K; ++j) {
    const int64_t d = run.ends[j] - run.ends[j - 1];
    if (j + 1 < K) add_tbt(d, n);  // iteration K's tokens are added when it completes
    ++totals_.iterations;
    totals_.busy_ns += d;
    totals_.kv_block_ns += static_cast<SimulationTotals::Int128>(run.used[j]) * d;
    totals_.kv_max_used_blocks = std::max(totals_.kv_max_used_blocks, run.used[j]);
  }
  const int64_t before = sched.kv().used_blocks();
  sched.advance_steady_decode(static_cast<int64_t>(K - 1), Nanos(run.ends[K - 2]));
  FDC_CHECK(sched.kv().used_blocks() == run.used[K - 1], "steady stretch block plan drifted");
  used_blocks_total_ += sched.kv().used_blocks() - before;
  run.ends.clear();
  run.used.clear();
}

int64_t Simulator::used_blocks_at(const Replica& rep, Nanos t, bool ends_at_t_done) const {
  if (!rep.run.active()) return rep.sched.kv().used_blocks();
  // Iteration j's blocks are taken when iteration j-1 ends: count the iterations that started
  // before t (or at t too, when the iteration ending at t has been processed).
  const auto& ends = rep.run.ends;
  const auto last = ends.end() - 1;
  const auto started =
      ends_at_t_done ? std::upper_bound(ends.begin(), last, t.ns()) : std::lower_bound(ends.begin(), last, t.ns());
  return rep.run.used[static_cast<size_t>(started - ends.begin())];
}

void Simulator::add_tbt(int64_t gap_ns, uint64_t count) {
  if (gap_ns != tbt_gap_) {
    flush_tbt();
    tbt_gap_ = gap_ns;
  }
  tbt_run_ += count;
}

void Simulator::flush_tbt() {
  if (tbt_run_ > 0) totals_.tbt.add(Nanos(tbt_gap_), tbt_run_);
  tbt_run_ = 0;
}

void Simulator::on_iteration_end(uint32_t r) {
  Replica& rep = replicas_[r];
  Scheduler& sched = rep.sched;
  if (rep.run.active()) finish_run(r);
  const int64_t before = sched.kv().used_blocks();
  sched.complete(now_);
  used_blocks_total_ += sched.kv().used_blocks() - before;
  const auto& emitted = sched.emitted();
  const auto& prev = sched.emitted_prev_token();
  for (size_t k = 0; k < emitted.size(); ++k) {
    const Sequence& s = sched.seq(emitted[k]);
    if (out_.timeline) token_ns_[s.request_id].push_back(now_.ns());
    if (s.generated == 1) {
      totals_.ttft.add(now_ - s.arrival);
      totals_.queue.add(s.first_scheduled - s.arrival);
    } else {
      add_tbt((now_ - prev[k]).ns(), 1);  // most sequences of a batch share a gap: runs are added at once
    }
  }
  for (SlotId f : sched.finished()) {
    const Sequence& s = sched.seq(f);
    ++totals_.completed;
    --rep.outstanding;
    totals_.prompt_tokens += static_cast<uint64_t>(s.prompt);
    totals_.output_tokens += static_cast<uint64_t>(s.output);
    const Nanos ttft = s.first_token - s.arrival;
    const Nanos tpot(s.output > 1 ? (s.last_token - s.first_token).ns() / (s.output - 1) : 0);
    totals_.jct.add(s.last_token - s.arrival);
    totals_.tpot.add(tpot);
    if (ttft.ms() <= exp_.slo.ttft_ms && tpot.ms() <= exp_.slo.tpot_ms) ++totals_.slo_met;
    totals_.last_completion = std::max(totals_.last_completion, now_);
    if (out_.requests_csv && exp_.outputs.per_request_csv) write_request_row(s, r);
    if (out_.timeline) {
      auto it = token_ns_.find(s.request_id);
      write_request(*out_.timeline, completed_record(s, static_cast<int>(r), std::move(it->second)));
      token_ns_.erase(it);
    }
  }
  if (sched.has_work()) {
    start_iteration(r);
  } else {
    rep.busy = false;
  }
}

// The columns every row has: request_id, replica, status, reason, arrival_ms, prompt_tokens, output_tokens.
void Simulator::begin_request_row(uint64_t id, uint32_t replica, std::string_view status, std::string_view reason,
                                  Nanos arrival, int32_t prompt, int32_t output) {
  line_.clear();
  append_int(line_, static_cast<int64_t>(id));
  line_ += ',';
  append_int(line_, replica);
  line_ += ',';
  line_ += status;
  line_ += ',';
  line_ += reason;
  line_ += ',';
  append_ms(line_, arrival.ns());
  line_ += ',';
  append_int(line_, prompt);
  line_ += ',';
  append_int(line_, output);
}

void Simulator::write_request_row(const Sequence& s, uint32_t replica) {
  begin_request_row(s.request_id, replica, "completed", "", s.arrival, s.prompt, s.output);
  line_ += ',';
  append_ms(line_, (s.first_scheduled - s.arrival).ns());
  line_ += ',';
  append_ms(line_, (s.first_token - s.arrival).ns());
  line_ += ',';
  append_ms(line_, s.output > 1 ? (s.last_token - s.first_token).ns() / (s.output - 1) : 0);
  line_ += ',';
  append_ms(line_, (s.last_token - s.arrival).ns());
  line_ += ',';
  append_int(line_, s.preemptions);
  line_ += '\n';
  *out_.requests_csv << line_;
}

void Simulator::sample_kv_until(Nanos t) {
  const Nanos interval = Nanos::from_ms(exp_.outputs.kv_sample_interval_ms);
  while (next_kv_sample_ <= t) {
    int64_t mx = 0, total = 0;
    uint64_t running = 0, waiting = 0;
    for (const auto& rep : replicas_) {
      const int64_t used = used_blocks_at(rep, next_kv_sample_, false);
      mx = std::max(mx, used);
      total += used;
      running += rep.sched.num_running();
      waiting += rep.sched.num_waiting();
    }
    const double blocks = static_cast<double>(layout_.num_blocks);
    const double mean = static_cast<double>(total) / (blocks * static_cast<double>(replicas_.size()));
    char buf[160];
    int n = std::snprintf(buf, sizeof buf, "%.3f,%.6f,%.6f,%" PRIu64 ",%" PRIu64 "\n", next_kv_sample_.seconds(), mean,
                          static_cast<double>(mx) / blocks, running, waiting);
    out_.kv_csv->write(buf, n);
    next_kv_sample_ += interval;
  }
}

Json range_uses_json(const std::vector<costmodel::RangeUse>& uses) {
  Json a = Json::array();
  for (const auto& u : uses)
    a.push_back({{"op", u.op},
                 {"queries", u.queries},
                 {"outside", u.outside},
                 {"share", u.queries > 0 ? static_cast<double>(u.outside) / static_cast<double>(u.queries) : 0.0},
                 {"example", u.example}});
  return a;
}

Json Simulator::summary() const {
  const auto& t = totals_;
  const double start = t.first_arrival.ns() < 0 ? 0.0 : t.first_arrival.seconds();
  const double span = std::max(0.0, t.last_completion.seconds() - start);
  auto per_s = [&](double x) { return span > 0 ? x / span : 0.0; };
  Json j;
  j["experiment"] = exp_.name;
  j["config_source"] = exp_.source;
  j["seed"] = exp_.seed;
  j["model"] = exp_.model.name;
  j["hardware"] = exp_.hardware.name;
  j["policy"] = exp_.policy.name;
  j["workload"] = exp_.workload->describe();
  j["cost_model"] = {{"description", cost_.describe()}, {"extrapolated", cost_.extrapolated()}};
  // Which kind the config asked for and, for a fitted profile, its name, source and which of its
  // ops were not measured (cost_info, set when the experiment was loaded).
  if (exp_.cost_info.is_object()) {
    j["cost_model"]["kind"] = exp_.cost_info["kind"];
    if (exp_.cost_info.contains("time_scale")) j["cost_model"]["time_scale"] = exp_.cost_info["time_scale"];
    if (exp_.cost_info.contains("profile")) {
      j["cost_model"]["profile"] = exp_.cost_info["profile"];
      j["cost_model"]["outside_measured"] = range_uses_json(cost_.outside_measured());
    }
  }
  j["cluster"] = {{"servers", exp_.servers},
                  {"gpus", exp_.servers * exp_.hardware.gpus_per_server},
                  {"replicas", replicas_.size()},
                  {"tp", exp_.parallel.tp},
                  {"sp", exp_.parallel.sp},
                  {"router", to_string(exp_.router)},
                  {"price_per_hour_usd", exp_.hardware.price_per_hour_usd * exp_.servers}};
  j["kv_cache"] = {
      {"blocks_per_replica", layout_.num_blocks},
      {"block_size_tokens", layout_.block_size},
      {"bytes_per_token_replica", layout_.bytes_per_token_replica()},
      {"tokens_per_replica", layout_.num_blocks * layout_.block_size},
      {"weight_gib_per_gpu", static_cast<double>(layout_.weight_bytes_per_gpu) / (1024.0 * 1024 * 1024)},
      {"kv_budget_gib_per_gpu", static_cast<double>(layout_.kv_budget_bytes_per_gpu) / (1024.0 * 1024 * 1024)},
      {"mean_utilization",
       span > 0 ? static_cast<double>(t.kv_block_ns) * 1e-9 /
                      (static_cast<double>(layout_.num_blocks) * static_cast<double>(replicas_.size()) * span)
                : 0.0},
      {"max_utilization", static_cast<double>(t.kv_max_used_blocks) / static_cast<double>(layout_.num_blocks)}};
  j["requests"] = {{"arrived", t.arrived},
                   {"completed", t.completed},
                   {"rejected", t.rejected},
                   {"rejected_by_reason", t.rejected_by_reason},
                   {"preemptions", t.preemptions}};
  j["makespan_s"] = span;
  j["throughput"] = {{"requests_per_s", per_s(static_cast<double>(t.completed))},
                     {"output_tokens_per_s", per_s(static_cast<double>(t.output_tokens))},
                     {"total_tokens_per_s", per_s(static_cast<double>(t.prompt_tokens + t.output_tokens))}};
  j["slo"] = {{"ttft_ms", exp_.slo.ttft_ms},
              {"tpot_ms", exp_.slo.tpot_ms},
              {"met", t.slo_met},
              {"attainment", t.completed ? static_cast<double>(t.slo_met) / static_cast<double>(t.completed) : 0.0},
              {"goodput_requests_per_s", per_s(static_cast<double>(t.slo_met))}};
  j["latency"] = {{"ttft", t.ttft.to_json_ms()},
                  {"tbt", t.tbt.to_json_ms()},
                  {"tpot", t.tpot.to_json_ms()},
                  {"jct", t.jct.to_json_ms()},
                  {"queue", t.queue.to_json_ms()}};
  j["gpu_busy_fraction"] =
      span > 0 ? static_cast<double>(t.busy_ns) * 1e-9 / (static_cast<double>(replicas_.size()) * span) : 0.0;
  // The event count depends on fast-forward, so it is reported on stderr, not here.
  j["simulation"] = {{"iterations", t.iterations}, {"max_batch_seqs", t.max_batch_seqs}};
  return j;
}

}  // namespace fdc::sim
