// Counters of an attention case whose per-KV-head ranks come from a table (a layer of an FDC
// policy, `fdcsim profile --attn-policies`): `rank_table` = 1 and, for every KV head h of the case,
// h<h>_rk, h<h>_rv, h<h>_rk_lo and h<h>_rv_lo (the lo ranks equal the hi ones without token
// classes). Written by the profile's plan (bench/ops/attention_grid.h), read back by its runner and
// by `fdcsim fit` (raw_reader.h), so what is measured and what is fitted are the same table.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace fdc::fit {

inline constexpr std::string_view kRankTableCounter = "rank_table";
// The four ranks of a head, in HeadRanks order {rk, rv, rk_lo, rv_lo}.
inline constexpr std::array<std::string_view, 4> kHeadRankFields{"rk", "rv", "rk_lo", "rv_lo"};

inline std::string head_rank_counter(int head, int field) {
  return "h" + std::to_string(head) + "_" + std::string(kHeadRankFields[static_cast<size_t>(field)]);
}

}  // namespace fdc::fit
