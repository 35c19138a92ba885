// NCCL communicator of one rank (one process per GPU) and the collectives the cost model uses.
// Counts and offsets are in elements of the dtype (16-bit).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"

namespace fdc::kernels::comm {

// ncclUniqueId as bytes (what run_ranks passes from rank 0 to the others) and back.
std::string make_nccl_token();
ncclUniqueId nccl_id_from_token(const std::string& token);

class NcclComm {
 public:
  NcclComm(int rank, int num_ranks, const std::string& token);  // the current device must be set
  // Takes ownership of a communicator made elsewhere (ncclCommInitAll: one process, several GPUs).
  static NcclComm adopt(ncclComm_t comm, int rank, int num_ranks);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  NcclComm(NcclComm&& o) noexcept;
  NcclComm& operator=(NcclComm&&) = delete;
  ncclComm_t get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  NcclComm() = default;
  ncclComm_t comm_ = nullptr;
  int rank_ = 0, size_ = 0;
};

ncclDataType_t nccl_type(DType t);

// All-to-all with per-peer counts (one ncclSend + ncclRecv per peer in a group; self included).
void all_to_all_v(const void* send, const std::vector<int64_t>& send_counts, const std::vector<int64_t>& send_offsets,
                  void* recv, const std::vector<int64_t>& recv_counts, const std::vector<int64_t>& recv_offsets,
                  DType t, const NcclComm& comm, cudaStream_t stream);
void all_reduce(const void* send, void* recv, int64_t count, DType t, const NcclComm& comm, cudaStream_t stream);
void all_gather(const void* send, void* recv, int64_t count_per_rank, DType t, const NcclComm& comm,
                cudaStream_t stream);

}  // namespace fdc::kernels::comm
