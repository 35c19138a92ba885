// GPU suite of the communication parts: the segment-copy kernel runs every rank's Ulysses pack and
// unpack on one GPU (the all-to-all emulated with device copies) against the CPU reference of the
// layout; pattern fill/check kernels; with NCCL and two GPUs, the collectives driven from one
// process (ncclCommInitAll) with exactly-predictable inputs.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <vector>

#include "kernels/comm/comm_device.h"
#include "kernels/comm/ulysses_plan.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#ifdef FDCSIM_HAVE_NCCL
#include "kernels/comm/nccl_check.h"
#include "kernels/comm/nccl_comm.h"
#endif

using namespace fdc;
using namespace fdc::kernels;
using namespace fdc::kernels::comm;

TEST_CASE("Ulysses pack/unpack kernels match the layout reference") {
  const std::vector<UlyssesShape> cases = {
      {2, {3, 17}, 40, 40, std::vector<int>(40, 64), std::vector<int>(40, 64)},
      {3, {5, 7, 1}, 32, 8, {32, 48, 64, 80, 32, 48, 64, 80}, {16, 48, 80, 112, 16, 48, 80, 112}},
      {4, {129, 4, 17, 1000}, 20, 5, {16, 24, 32, 40, 16}, {128, 96, 64, 32, 128}},
  };
  for (const UlyssesShape& s : cases) {
    const UlyssesPlan plan = plan_ulysses(s);
    const int P = s.ranks;
    std::vector<RankBuffers> host(static_cast<size_t>(P));
    std::vector<std::vector<DeviceBuffer<uint16_t>>> dev(static_cast<size_t>(P));
    std::vector<BufPtrs> ptrs(static_cast<size_t>(P));
    for (int p = 0; p < P; ++p) {
      const RankPlan& r = plan.ranks[static_cast<size_t>(p)];
      for (int i = 0; i < kNumBufs; ++i) {
        auto& h = host[static_cast<size_t>(p)][static_cast<size_t>(i)];
        h.assign(static_cast<size_t>(r.elems[static_cast<size_t>(i)]), 0);
        for (size_t e = 0; e < h.size(); ++e) h[e] = float_to_bf16_bits(matrix_pattern(p, static_cast<int64_t>(e), i));
        dev[static_cast<size_t>(p)].emplace_back(h.empty() ? std::vector<uint16_t>(8, 0) : h);
        ptrs[static_cast<size_t>(p)][static_cast<size_t>(i)] = dev[static_cast<size_t>(p)].back().data();
      }
    }
    auto device_a2a = [&](bool out_dir) {
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < P; ++q) {
          const RankPlan& from = plan.ranks[static_cast<size_t>(q)];
          const RankPlan& to = plan.ranks[static_cast<size_t>(p)];
          const int64_t n = out_dir ? from.out_send_counts[p] : from.send_counts[p];
          const int64_t so = out_dir ? from.out_send_offsets[p] : from.send_offsets[p];
          const int64_t ro = out_dir ? to.out_recv_offsets[q] : to.recv_offsets[q];
          const auto* src = static_cast<const uint16_t*>(ptrs[static_cast<size_t>(q)][static_cast<size_t>(out_dir ? Buf::kOutHeads : Buf::kSend)]);
          auto* dst = static_cast<uint16_t*>(ptrs[static_cast<size_t>(p)][static_cast<size_t>(Buf::kRecv)]);
          if (n > 0) CUDA_CHECK(cudaMemcpy(dst + ro, src + so, size_t(n) * 2, cudaMemcpyDeviceToDevice));
        }
    };
    for (int p = 0; p < P; ++p) DeviceSegments(plan.ranks[static_cast<size_t>(p)].pack).launch(ptrs[static_cast<size_t>(p)], nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    device_a2a(false);
    for (int p = 0; p < P; ++p) DeviceSegments(plan.ranks[static_cast<size_t>(p)].unpack).launch(ptrs[static_cast<size_t>(p)], nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    device_a2a(true);
    for (int p = 0; p < P; ++p)
      DeviceSegments(plan.ranks[static_cast<size_t>(p)].out_unpack).launch(ptrs[static_cast<size_t>(p)], nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    ulysses_reference_forward(plan, host);
    ulysses_reference_backward(plan, host);
    for (int p = 0; p < P; ++p)
      for (Buf b : {Buf::kQHeads, Buf::kKHeads, Buf::kVHeads, Buf::kOut}) {
        CAPTURE(p);
        CAPTURE(static_cast<int>(b));
        if (host[static_cast<size_t>(p)][static_cast<size_t>(b)].empty()) continue;
        CHECK(dev[static_cast<size_t>(p)][static_cast<size_t>(b)].download() == host[static_cast<size_t>(p)][static_cast<size_t>(b)]);
      }
  }
}

TEST_CASE("pattern check kernels count mismatches, NaN included") {
  for (DType t : {DType::kBF16, DType::kFP16}) {
    DeviceBuffer<uint16_t> buf(size_t(17) * 40);
    DeviceBuffer<unsigned long long> count(std::vector<unsigned long long>{0});
    const PatternRegion r{17, 33, 40, 5, 9, 2};
    fill_pattern(buf.data(), t, r, nullptr);
    count_pattern_mismatches(buf.data(), t, r, count.data(), nullptr);
    CHECK(count.download()[0] == 0);
    auto h = buf.download();
    h[3 * 40 + 7] = float_to_bits(t, 1000.f);
    h[16 * 40 + 32] = 0x7FFF;  // NaN in bf16 and fp16
    buf.upload(h);
    count_pattern_mismatches(buf.data(), t, r, count.data(), nullptr);
    CHECK(count.download()[0] == 2);
  }
}

#ifdef FDCSIM_HAVE_NCCL
TEST_CASE("collectives on two GPUs give the predicted results") {
  int n = 0;
  CUDA_CHECK(cudaGetDeviceCount(&n));
  if (n < 2) {
    MESSAGE("fewer than 2 GPUs: collectives not tested here (fdcsim profile checks them on every run)");
    return;
  }
  ncclComm_t comms[2];
  int devs[2] = {0, 1};
  NCCL_CHECK(ncclCommInitAll(comms, 2, devs));
  const int64_t count = 4097 * 8;
  std::vector<DeviceBuffer<uint16_t>> send, recv;
  std::vector<DeviceBuffer<unsigned long long>> bad;
  std::vector<NcclComm> wrapped;
  for (int r = 0; r < 2; ++r) {
    CUDA_CHECK(cudaSetDevice(r));
    send.emplace_back(size_t(count));
    recv.emplace_back(size_t(count * 2));
    bad.emplace_back(std::vector<unsigned long long>{0});
  }
  for (int r = 0; r < 2; ++r) wrapped.emplace_back(NcclComm::adopt(comms[r], r, 2));
  // all-reduce
  for (int r = 0; r < 2; ++r) {
    CUDA_CHECK(cudaSetDevice(r));
    fill_allreduce_input(send[r].data(), DType::kBF16, count, r, nullptr);
  }
  NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < 2; ++r) all_reduce(send[r].data(), recv[r].data(), count, DType::kBF16, wrapped[r], nullptr);
  NCCL_CHECK(ncclGroupEnd());
  for (int r = 0; r < 2; ++r) {
    CUDA_CHECK(cudaSetDevice(r));
    count_allreduce_mismatches(recv[r].data(), DType::kBF16, count, 2, bad[r].data(), nullptr);
    CHECK(bad[r].download()[0] == 0);
  }
  // uneven all-to-all: rank r sends (r + 1) * 8 * (p + 1) elements to p
  for (int r = 0; r < 2; ++r) {
    CUDA_CHECK(cudaSetDevice(r));
    fill_pattern(send[r].data(), DType::kBF16, {1, count, count, r, 0, 4}, nullptr);
  }
  auto cnt = [](int from, int to) { return int64_t{8} * (from + 1) * (to + 1); };
  NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < 2; ++r) {
    std::vector<int64_t> sc{cnt(r, 0), cnt(r, 1)}, so{0, cnt(r, 0)}, rc{cnt(0, r), cnt(1, r)}, ro{0, cnt(0, r)};
    all_to_all_v(send[r].data(), sc, so, recv[r].data(), rc, ro, DType::kBF16, wrapped[r], nullptr);
  }
  NCCL_CHECK(ncclGroupEnd());
  for (int r = 0; r < 2; ++r) {
    CUDA_CHECK(cudaSetDevice(r));
    CUDA_CHECK(cudaMemset(bad[r].data(), 0, sizeof(unsigned long long)));
    for (int s = 0; s < 2; ++s) {
      const int64_t off_in_sender = r == 0 ? 0 : cnt(s, 0);
      const int64_t at = s == 0 ? 0 : cnt(0, r);
      count_pattern_mismatches(recv[r].data() + at, DType::kBF16, {1, cnt(s, r), cnt(s, r), s, off_in_sender, 4},
                               bad[r].data(), nullptr);
    }
    CHECK(bad[r].download()[0] == 0);
  }
  CUDA_CHECK(cudaSetDevice(0));
}
#endif
