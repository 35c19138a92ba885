#include "kernels/comm/nccl_comm.h"

#include <cstring>
#include <utility>

#include "core/error.h"
#include "kernels/comm/nccl_check.h"

namespace fdc::kernels::comm {

std::string make_nccl_token() {
  ncclUniqueId id;
  NCCL_CHECK(ncclGetUniqueId(&id));
  return std::string(reinterpret_cast<const char*>(&id), sizeof id);
}

ncclUniqueId nccl_id_from_token(const std::string& token) {
  ncclUniqueId id;
  FDC_CHECK(token.size() == sizeof id, "NCCL unique id of " << token.size() << " bytes, expected " << sizeof id);
  std::memcpy(&id, token.data(), sizeof id);
  return id;
}

NcclComm::NcclComm(int rank, int num_ranks, const std::string& token) : rank_(rank), size_(num_ranks) {
  NCCL_CHECK(ncclCommInitRank(&comm_, num_ranks, nccl_id_from_token(token), rank));
}

NcclComm NcclComm::adopt(ncclComm_t comm, int rank, int num_ranks) {
  NcclComm c;
  c.comm_ = comm;
  c.rank_ = rank;
  c.size_ = num_ranks;
  return c;
}

NcclComm::NcclComm(NcclComm&& o) noexcept : comm_(std::exchange(o.comm_, nullptr)), rank_(o.rank_), size_(o.size_) {}

NcclComm::~NcclComm() {
  if (comm_) ncclCommDestroy(comm_);
}

ncclDataType_t nccl_type(DType t) {
  FDC_INPUT_CHECK(t == DType::kBF16 || t == DType::kFP16,
                  "collectives: dtype " << to_string(t) << " is not supported (bf16 or fp16)");
  return t == DType::kBF16 ? ncclBfloat16 : ncclFloat16;
}

void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, const std::vector<int64_t>& send_offsets,
                  void* recv, const std::vector<int64_t>& recv_counts, const std::vector<int64_t>& recv_offsets,
                  DType t, const NcclComm& comm, cudaStream_t stream) {
  const auto n = static_cast<size_t>(comm.size());
  FDC_INPUT_CHECK(send_counts.size() == n && send_offsets.size() == n && recv_counts.size() == n &&
                      recv_offsets.size() == n,
                  "all_to_all_v: counts and offsets need one entry per rank (" << n << ")");
  const ncclDataType_t dt = nccl_type(t);
  const auto* s = static_cast<const uint16_t*>(send);
  auto* r = static_cast<uint16_t*>(recv);
  NCCL_CHECK(ncclGroupStart());
  for (size_t p = 0; p < n; ++p) {
    if (send_counts[p] > 0)
      NCCL_CHECK(ncclSend(s + send_offsets[p], static_cast<size_t>(send_counts[p]), dt, static_cast<int>(p), comm.get(),
                          stream));
    if (recv_counts[p] > 0)
      NCCL_CHECK(ncclRecv(r + recv_offsets[p], static_cast<size_t>(recv_counts[p]), dt, static_cast<int>(p), comm.get(),
                          stream));
  }
  NCCL_CHECK(ncclGroupEnd());
}

void all_reduce(const void* send, void* recv, int64_t count, DType t, const NcclComm& comm, cudaStream_t stream) {
  NCCL_CHECK(ncclAllReduce(send, recv, static_cast<size_t>(count), nccl_type(t), ncclSum, comm.get(), stream));
}

void all_gather(const void* send, void* recv, int64_t count_per_rank, DType t, const NcclComm& comm,
                cudaStream_t stream) {
  NCCL_CHECK(ncclAllGather(send, recv, static_cast<size_t>(count_per_rank), nccl_type(t), comm.get(), stream));
}

}  // namespace fdc::kernels::comm
