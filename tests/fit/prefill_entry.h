// A raw `attention.json` entry of a synthetic attn_prefill case, for the fit tests of the prefill
// laws: Llama-2-13B shapes (40 q and KV heads, head dim 128), `seqs` chunks of `chunk` new tokens
// after `prefix` cached ones, a uniform rank or a mixed table (mean 80, largest 128), and the
// measured time `time_us` the test's law gives it.
#pragma once

#include <initializer_list>
#include <sstream>
#include <string>

namespace fdc::test {

inline std::string prefill_entry_json(int seqs, int chunk, int prefix, int rank, bool mixed, bool with_max_rank,
                                      double time_us) {
  const int max_rank = mixed ? 128 : rank;
  const double mean_rank = mixed ? 80 : rank;
  std::ostringstream os;
  os.precision(17);
  os << R"({"name": "attn_prefill/s)" << seqs << "/q" << chunk << "/ctx" << prefix << "/r" << rank << (mixed ? "m" : "")
     << R"(/manual_time", "real_time": )" << time_us << R"(, "time_unit": "us", "num_seqs": )" << seqs
     << R"(, "tokens": )" << seqs * chunk << R"(, "ctx_mean": )" << prefix << R"(, "ctx_max": )" << prefix
     << R"(, "ctx_cv": 0, "rank_qk": )" << mean_rank << R"(, "rank_v": )" << mean_rank << R"(, "rank_qk_lo": )"
     << mean_rank << R"(, "rank_v_lo": )" << mean_rank << R"(, "lo_fraction": 0, "group": 1, "q_heads": 40,)"
     << R"( "kv_heads": 40, "head_dim": 128, "ranks_mixed": )" << (mixed ? 1 : 0);
  if (with_max_rank) os << R"(, "max_rank": )" << max_rank;
  os << R"(, "bytes": )" << 1e6 * seqs * (chunk + prefix) * mean_rank / 128 << R"(, "flops": )"
     << 1e3 * seqs * chunk * (chunk / 2.0 + prefix) * mean_rank << "}";
  return os.str();
}

// A raw `attention.json` of synthetic prefill cases on a grid: 1, 4 and 8 chunks of 128, 512 and 2048
// new tokens after 0 or 1024 cached ones, at each of `ranks` (0: the mixed table, mean 80), each entry
// `entry(seqs, chunk, prefix, rank, mixed)` (a prefill_entry_json with the test law's time).
template <class Entry>
std::string prefill_grid_json(std::initializer_list<int> ranks, Entry entry) {
  std::string s = R"({"benchmarks": [)";
  bool first = true;
  for (int seqs : {1, 4, 8})
    for (int chunk : {128, 512, 2048})
      for (int prefix : {0, 1024})
        for (int rank : ranks) {
          s += (first ? "" : ",") + entry(seqs, chunk, prefix, rank == 0 ? 80 : rank, rank == 0);
          first = false;
        }
  return s + "]}";
}

}  // namespace fdc::test
