// Multi-GPU cases, one process per GPU: collective bandwidth sweeps (all-to-all, all-reduce,
// all-gather; nccl-tests sizes and bus bandwidth) and the Ulysses all-to-alls at model shapes with
// their pack / unpack kernels timed separately. Every rank runs the same benchmarks with the same
// fixed iteration counts (no time-based decisions that could differ between ranks); each
// iteration's time is the maximum over the ranks (an NCCL max-reduction outside the timed region).
// Inputs are exactly predictable (kernels/comm/pattern.h); after the timed runs every rank checks
// its outputs and the mismatch count, summed over ranks, must be zero or the case fails.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>

#include "bench/ops/bench_util.h"
#include "bench/ops/benchmarks.h"
#include "bench/ops/comm_benchmarks.h"
#include "kernels/comm/collectives.h"
#include "kernels/comm/comm_device.h"
#include "kernels/comm/nccl_check.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"

namespace fdc::profile {

using kernels::DeviceBuffer;
using kernels::DType;
namespace comm = kernels::comm;

namespace {

constexpr DType kType = DType::kBF16;

// Identical on every rank: derived from the plan's estimate only.
int64_t fixed_iterations(const BenchCase& c, double min_time_s) {
  return static_cast<int64_t>(std::clamp(std::ceil(min_time_s / std::max(c.op_est_s, 1e-6)), 5.0, 500.0));
}

double max_over_ranks(CommContext& ctx, double seconds) {
  const float v = static_cast<float>(seconds);
  CUDA_CHECK(cudaMemcpyAsync(ctx.scratch_f.data(), &v, sizeof v, cudaMemcpyHostToDevice, ctx.stream));
  NCCL_CHECK(ncclAllReduce(ctx.scratch_f.data(), ctx.scratch_f.data(), 1, ncclFloat32, ncclMax, ctx.comm->get(),
                           ctx.stream));
  float out = 0;
  CUDA_CHECK(cudaMemcpyAsync(&out, ctx.scratch_f.data(), sizeof out, cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return out;
}

// Sum over ranks of the device mismatch counter (then reset).
uint64_t mismatches_over_ranks(CommContext& ctx) {
  NCCL_CHECK(ncclAllReduce(ctx.mismatches.data(), ctx.mismatches.data(), 1, ncclUint64, ncclSum, ctx.comm->get(),
                           ctx.stream));
  unsigned long long n = 0;
  CUDA_CHECK(cudaMemcpyAsync(&n, ctx.mismatches.data(), sizeof n, cudaMemcpyDeviceToHost, ctx.stream));
  CUDA_CHECK(cudaMemsetAsync(ctx.mismatches.data(), 0, sizeof n, ctx.stream));
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  return n;
}

// Budget check agreed by every rank (rank 0 decides), so all ranks skip the same cases.
bool budget_spent_all(CommContext& ctx, benchmark::State& st) {
  const double spent = std::chrono::steady_clock::now() >= ctx.opts.deadline ? 1.0 : 0.0;
  if (max_over_ranks(ctx, spent) < 0.5) return false;
  st.SkipWithError("skipped: the time budget (--budget-s) was spent before this case");
  return true;
}

void shape_counters(benchmark::State& st, const BenchCase& c) {
  for (const auto& [k, v] : c.shape) st.counters[k] = v;
}

void collective_case(benchmark::State& st, CommContext& ctx, const BenchCase& c) {
  if (budget_spent_all(ctx, st)) return;
  const int g = ctx.comm->size(), rank = ctx.comm->rank();
  const auto size = static_cast<int64_t>(c.shape.at("bytes"));  // nccl-tests "size"
  const int64_t elems = size / 2;
  comm::Collective kind = comm::Collective::kAllToAll;
  DeviceBuffer<uint16_t> send, recv;
  std::function<void()> op, check;
  if (c.kind == "all_to_all") {
    const int64_t chunk = elems / g;
    send = DeviceBuffer<uint16_t>(static_cast<size_t>(chunk * g));
    recv = DeviceBuffer<uint16_t>(static_cast<size_t>(chunk * g));
    comm::fill_pattern(send.data(), kType, {1, chunk * g, chunk * g, rank, 0, 5}, ctx.stream);
    std::vector<int64_t> counts(static_cast<size_t>(g), chunk), offs(static_cast<size_t>(g));
    for (int p = 0; p < g; ++p) offs[static_cast<size_t>(p)] = p * chunk;
    op = [&, counts, offs] { comm::all_to_all_v(send.data(), counts, offs, recv.data(), counts, offs, kType, *ctx.comm, ctx.stream); };
    check = [&, chunk] {
      comm::count_pattern_mismatches(recv.data(), kType, {g, chunk, chunk, 0, rank * chunk, 5}, ctx.mismatches.data(),
                                     ctx.stream);
    };
  } else if (c.kind == "all_reduce") {
    kind = comm::Collective::kAllReduce;
    send = DeviceBuffer<uint16_t>(static_cast<size_t>(elems));
    recv = DeviceBuffer<uint16_t>(static_cast<size_t>(elems));
    comm::fill_allreduce_input(send.data(), kType, elems, rank, ctx.stream);
    op = [&] { comm::all_reduce(send.data(), recv.data(), elems, kType, *ctx.comm, ctx.stream); };
    check = [&] { comm::count_allreduce_mismatches(recv.data(), kType, elems, g, ctx.mismatches.data(), ctx.stream); };
  } else {
    kind = comm::Collective::kAllGather;
    const int64_t per = elems / g;
    send = DeviceBuffer<uint16_t>(static_cast<size_t>(per));
    recv = DeviceBuffer<uint16_t>(static_cast<size_t>(per * g));
    comm::fill_pattern(send.data(), kType, {1, per, per, rank, 0, 6}, ctx.stream);
    op = [&, per] { comm::all_gather(send.data(), recv.data(), per, kType, *ctx.comm, ctx.stream); };
    check = [&, per] {
      comm::count_pattern_mismatches(recv.data(), kType, {g, per, per, 0, 0, 6}, ctx.mismatches.data(), ctx.stream);
    };
  }
  CUDA_CHECK(cudaMemsetAsync(recv.data(), 0xFF, recv.bytes(), ctx.stream));  // NaN: nothing stale passes
  for (int i = 0; i < 3; ++i) op();  // warm-up (connections, buffers)
  // Small messages: a burst of back-to-back calls per timing, as nccl-tests times a loop.
  const int burst = size <= (int64_t{1} << 20) ? 20 : size <= (int64_t{64} << 20) ? 5 : 1;
  EventTimer ev;
  for (auto _ : st) {
    ev.start(ctx.stream);
    for (int i = 0; i < burst; ++i) op();
    st.SetIterationTime(max_over_ranks(ctx, ev.stop(ctx.stream) / burst));
  }
  check();
  const uint64_t bad = mismatches_over_ranks(ctx);
  shape_counters(st, c);
  using C = benchmark::Counter;
  st.counters["algbw_GB/s"] = C(double(size) / 1e9, C::kIsIterationInvariantRate);
  st.counters["busbw_GB/s"] = C(double(size) * comm::bus_factor(kind, g) / 1e9, C::kIsIterationInvariantRate);
  st.counters["errors"] = static_cast<double>(bad);
  if (bad) st.SkipWithError((std::to_string(bad) + " elements differ from the predicted result").c_str());
}

// Ulysses: pack -> all-to-all -> unpack (q/k/v to head-sharded), then all-to-all -> unpack (outputs
// back to sequence-sharded). Stage times are medians over the iterations (max over ranks each).
void ulysses_case(benchmark::State& st, CommContext& ctx, const BenchCase& c) {
  if (budget_spent_all(ctx, st)) return;
  const int g = ctx.comm->size(), rank = ctx.comm->rank();
  comm::UlyssesShape shape;
  shape.ranks = g;
  shape.tokens.assign(static_cast<size_t>(g), static_cast<int64_t>(c.shape.at("tokens_per_gpu")));
  shape.num_q_heads = static_cast<int>(c.shape.at("q_heads"));
  shape.num_kv_heads = static_cast<int>(c.shape.at("kv_heads"));
  shape.rk.assign(static_cast<size_t>(shape.num_kv_heads), static_cast<int>(c.shape.at("rank")));
  shape.rv.assign(static_cast<size_t>(shape.num_kv_heads), static_cast<int>(c.shape.at("rank_v")));
  const comm::UlyssesPlan plan = comm::plan_ulysses(shape);
  const comm::RankPlan& me = plan.ranks[static_cast<size_t>(rank)];
  std::vector<DeviceBuffer<uint16_t>> bufs;
  comm::BufPtrs ptr{};
  for (int i = 0; i < comm::kNumBufs; ++i) {
    bufs.emplace_back(static_cast<size_t>(std::max<int64_t>(me.elems[static_cast<size_t>(i)], 8)));
    ptr[static_cast<size_t>(i)] = bufs.back().data();
  }
  auto at = [&](comm::Buf b) { return bufs[static_cast<size_t>(b)].data(); };
  const int64_t T = plan.total_tokens, Ts = me.tokens, tb = me.token_begin;
  comm::fill_pattern(at(comm::Buf::kQ), kType, {Ts, plan.q_row, plan.q_row, tb, 0, 0}, ctx.stream);
  comm::fill_pattern(at(comm::Buf::kK), kType, {Ts, plan.k_row, plan.k_row, tb, 0, 1}, ctx.stream);
  comm::fill_pattern(at(comm::Buf::kV), kType, {Ts, plan.v_row, plan.v_row, tb, 0, 2}, ctx.stream);
  comm::fill_pattern(at(comm::Buf::kOutHeads), kType, {T, me.ow, me.ow, 0, me.o_col, 3}, ctx.stream);
  for (comm::Buf b : {comm::Buf::kQHeads, comm::Buf::kKHeads, comm::Buf::kVHeads, comm::Buf::kOut})
    CUDA_CHECK(cudaMemsetAsync(at(b), 0xFF, bufs[static_cast<size_t>(b)].bytes(), ctx.stream));
  const comm::DeviceSegments pack(me.pack), unpack(me.unpack), out_unpack(me.out_unpack);
  auto a2a_qkv = [&] {
    comm::all_to_all_v(at(comm::Buf::kSend), me.send_counts, me.send_offsets, at(comm::Buf::kRecv), me.recv_counts,
                       me.recv_offsets, kType, *ctx.comm, ctx.stream);
  };
  auto a2a_out = [&] {
    comm::all_to_all_v(at(comm::Buf::kOutHeads), me.out_send_counts, me.out_send_offsets, at(comm::Buf::kRecv),
                       me.out_recv_counts, me.out_recv_offsets, kType, *ctx.comm, ctx.stream);
  };
  const std::function<void()> stages[] = {[&] { pack.launch(ptr, ctx.stream); }, a2a_qkv,
                                          [&] { unpack.launch(ptr, ctx.stream); }, a2a_out,
                                          [&] { out_unpack.launch(ptr, ctx.stream); }};
  constexpr int kStages = 5;
  for (const auto& s : stages) s();  // warm-up
  std::vector<double> t[kStages];
  EventTimer ev;
  for (auto _ : st) {
    double total = 0;
    for (int i = 0; i < kStages; ++i) {
      ev.start(ctx.stream);
      stages[i]();
      const double s = max_over_ranks(ctx, ev.stop(ctx.stream));
      t[i].push_back(s);
      total += s;
    }
    st.SetIterationTime(total);
  }
  // The chain ran in full each iteration; check both directions' results on every rank.
  comm::count_pattern_mismatches(at(comm::Buf::kQHeads), kType, {T, me.qw, me.qw, 0, me.q_col, 0}, ctx.mismatches.data(), ctx.stream);
  comm::count_pattern_mismatches(at(comm::Buf::kKHeads), kType, {T, me.kw, me.kw, 0, me.k_col, 1}, ctx.mismatches.data(), ctx.stream);
  comm::count_pattern_mismatches(at(comm::Buf::kVHeads), kType, {T, me.vw, me.vw, 0, me.v_col, 2}, ctx.mismatches.data(), ctx.stream);
  comm::count_pattern_mismatches(at(comm::Buf::kOut), kType, {Ts, plan.o_row, plan.o_row, tb, 0, 3}, ctx.mismatches.data(),
                                 ctx.stream);
  const uint64_t bad = mismatches_over_ranks(ctx);
  shape_counters(st, c);
  const char* names[kStages] = {"pack_us", "a2a_qkv_us", "unpack_qkv_us", "a2a_out_us", "unpack_out_us"};
  double med[kStages];
  for (int i = 0; i < kStages; ++i) {
    med[i] = median(t[i]);
    st.counters[names[i]] = med[i] * 1e6;
  }
  // Bus bandwidth of each all-to-all from its per-rank buffer (the largest rank's, as nccl-tests).
  const double qkv_bytes = 2.0 * static_cast<double>(std::max(me.elems[static_cast<size_t>(comm::Buf::kSend)], int64_t{1}));
  const double out_bytes = 2.0 * static_cast<double>(Ts * plan.o_row);
  const double f = comm::bus_factor(comm::Collective::kAllToAll, g);
  if (med[1] > 0) st.counters["busbw_qkv_GB/s"] = qkv_bytes * f / med[1] / 1e9;
  if (med[3] > 0) st.counters["busbw_out_GB/s"] = out_bytes * f / med[3] / 1e9;
  const double a2a = med[1] + med[3];
  if (a2a > 0) st.counters["pack_unpack_share_of_a2a"] = (med[0] + med[2] + med[4]) / a2a;
  st.counters["errors"] = static_cast<double>(bad);
  if (bad) st.SkipWithError((std::to_string(bad) + " elements differ from the predicted layout").c_str());
}

}  // namespace

CommContext::CommContext(int rank, int gpus, const std::string& token, const RunOptions& o)
    : opts(o), scratch_f(1), mismatches(1) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  comm = std::make_unique<comm::NcclComm>(rank, gpus, token);
  CUDA_CHECK(cudaMemset(mismatches.data(), 0, sizeof(unsigned long long)));
}
CommContext::~CommContext() {
  comm.reset();
  if (stream) cudaStreamDestroy(stream);
}

void register_comm_case(const BenchCase& c, CommContext& ctx, int repeats) {
  CommContext* x = &ctx;
  std::function<void(benchmark::State&)> fn;
  if (c.kind == "ulysses_a2a") {
    fn = [x, c](benchmark::State& st) { ulysses_case(st, *x, c); };
  } else if (c.kind == "all_to_all" || c.kind == "all_reduce" || c.kind == "all_gather") {
    fn = [x, c](benchmark::State& st) { collective_case(st, *x, c); };
  } else {
    throw InternalError("register_comm_case: case " + c.name + " of kind " + c.kind + " is not a collective");
  }
  auto* b = benchmark::RegisterBenchmark(c.name.c_str(), [fn, repeats](benchmark::State& st) {
    fn(st);
    if (repeats > 1) st.counters["fdc_repeats"] = repeats;
  });
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(fixed_iterations(c, ctx.opts.min_time_s));
}

}  // namespace fdc::profile
