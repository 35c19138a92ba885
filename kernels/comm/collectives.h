// Collectives measured for the cost model, described once (nccl-tests style): what "size" means
// for each and its bus-bandwidth factor (costmodel/ops.h, the one place the factors live).
//   all-to-all  size = a rank's whole send buffer (= its receive buffer), factor (g-1)/g
//   all-reduce  size = the reduced buffer,                                  factor 2(g-1)/g
//   all-gather  size = the gathered output buffer,                          factor (g-1)/g
// algbw = size / time; busbw = algbw x factor (comparable with the link's bandwidth).
#pragma once

#include <string_view>

#include "costmodel/ops.h"

namespace fdc::kernels::comm {

enum class Collective { kAllToAll, kAllReduce, kAllGather };

inline std::string_view collective_name(Collective c) {
  switch (c) {
    case Collective::kAllToAll: return "all_to_all";
    case Collective::kAllReduce: return "all_reduce";
    case Collective::kAllGather: return "all_gather";
  }
  return "?";
}

inline double bus_factor(Collective c, int ranks) {
  switch (c) {
    case Collective::kAllToAll: return costmodel::alltoall_send_factor(ranks);
    case Collective::kAllReduce: return costmodel::allreduce_send_factor(ranks);
    case Collective::kAllGather: return costmodel::allgather_send_factor(ranks);
  }
  return 0.0;
}

// GB/s (1e9 bytes per second).
inline double alg_bandwidth_gbps(double size_bytes, double seconds) { return size_bytes / seconds / 1e9; }
inline double bus_bandwidth_gbps(Collective c, int ranks, double size_bytes, double seconds) {
  return alg_bandwidth_gbps(size_bytes, seconds) * bus_factor(c, ranks);
}

}  // namespace fdc::kernels::comm
