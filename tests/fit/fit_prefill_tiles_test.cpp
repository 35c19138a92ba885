// The prefill kernel's padded tile work (costmodel/prefill_tiles.h) on hand-worked shapes, and the
// attention_tiles law fitted on it: a synthetic law in that work is recovered exactly; the forward
// pass fills the work of the GPU's own heads into the prefill query.
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "costmodel/batch.h"
#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/fit/raw_reader.h"
#include "costmodel/forward_pass.h"
#include "costmodel/prefill_tiles.h"
#include "tests/fit/prefill_entry.h"
#include "tests/traces/temp_file.h"

namespace fdc::costmodel {
namespace {

// Tile pairs by walking the q tiles one by one (the kernel's loop bounds).
int64_t pairs_by_walk(int64_t c, int64_t p, int tile_k) {
  int64_t n = 0;
  for (int64_t q0 = 0; q0 < c; q0 += kPrefillTileQ) {
    const int64_t keys = p + std::min<int64_t>(c, q0 + kPrefillTileQ);
    n += (keys + tile_k - 1) / tile_k;
  }
  return n;
}

}  // namespace

TEST_CASE("prefill tiles: padded width, key tile and causal tile pairs, worked by hand") {
  // Ranks pad to the launch's width: up to 64 -> 64, above -> 128 (rank 72 costs a 128 tile).
  CHECK(prefill_padded_width(32) == 64);
  CHECK(prefill_padded_width(64) == 64);
  CHECK(prefill_padded_width(72) == 128);
  CHECK(prefill_padded_width(128) == 128);
  CHECK(prefill_tile_k(64) == 64);
  CHECK(prefill_tile_k(128) == 128);
  // A chunk without cached context; rows per q tile 128.
  struct Row {
    int64_t tokens, pairs_k128, pairs_k64, q_tiles;
  };
  const Row rows[] = {
      {1, 1, 1, 1},    // one row, one key tile
      {64, 1, 1, 1},   // 64 keys: one tile of either size
      {65, 1, 2, 1},   // 65 keys: a second 64-key tile
      {129, 3, 5, 2},  // tile 0 sees 128 keys (1 | 2 tiles), tile 1 sees 129 (2 | 3)
      {256, 3, 6, 2},  // 1 + 2 | 2 + 4
  };
  for (const Row& r : rows) {
    CAPTURE(r.tokens);
    CHECK(causal_tile_pairs(r.tokens, 0, 128) == r.pairs_k128);
    CHECK(causal_tile_pairs(r.tokens, 0, 64) == r.pairs_k64);
    CHECK(prefill_query_tiles(r.tokens) == r.q_tiles);
  }
  // After a cached prefix: 128 new tokens after 1000 cached see 1128 keys, 9 tiles of 128.
  CHECK(causal_tile_pairs(128, 1000, 128) == 9);
  CHECK(causal_tile_pairs(0, 1000, 128) == 0);
  // The closed form equals the kernel's walk on awkward sizes.
  for (int64_t c : {1, 3, 17, 127, 128, 129, 1000, 4097})
    for (int64_t p : {0, 1, 63, 64, 65, 1000})
      for (int tk : {64, 128}) {
        CAPTURE(c);
        CAPTURE(p);
        CAPTURE(tk);
        CHECK(causal_tile_pairs(c, p, tk) == pairs_by_walk(c, p, tk));
      }
}

TEST_CASE("prefill tiles: the work of a batch at the padded width") {
  PrefillTileCounts n;
  n.add(129, 0);  // 2 q tiles; pairs 3 (k128) / 5 (k64)
  n.add(64, 64);  // 1 q tile; 128 keys: 1 / 2
  CHECK(n.q_tiles == 3);
  CHECK(n.pairs_k128 == 4);
  CHECK(n.pairs_k64 == 7);
  CHECK(n.keys_max == 129);
  // Two q heads at rank 72: padded to 128, key tiles of 128; a pair costs 2 x 128 x 128 x 256 FLOPs.
  const double pair128 = 2.0 * 128 * 128 * 256;
  PrefillTileWork w = prefill_tile_work(n, 2, 72);
  CHECK(w.padded_flops == 2 * 4 * pair128);
  CHECK(w.block_elems == 2 * 3 * 128 * 128);
  CHECK(w.longest_block_flops == 2 * pair128);  // 129 keys: 2 tiles of 128
  // At rank 64: width 64, key tiles of 64; a pair costs 2 x 128 x 64 x 128 FLOPs (a quarter).
  const double pair64 = 2.0 * 128 * 64 * 128;
  w = prefill_tile_work(n, 2, 64);
  CHECK(w.padded_flops == 2 * 7 * pair64);
  CHECK(w.block_elems == 2 * 3 * 128 * 64);
  CHECK(w.longest_block_flops == 3 * pair64);
  // The batch totals carry the same counts (decode steps add none).
  BatchTotals b;
  b.add({129, 0, true});
  b.add({64, 64, true});
  b.add({1, 500, true});
  CHECK(b.prefill_tiles.q_tiles == 3);
  CHECK(b.prefill_tiles.pairs_k128 == 4);
  CHECK(b.prefill_tiles.pairs_k64 == 7);
  CHECK(b.prefill_tiles.keys_max == 129);
}

TEST_CASE("forward pass: prefill attention carries the padded tile work of the GPU's own heads") {
  ModelSpec m;
  m.name = "toy";
  m.num_layers = 1, m.hidden = 1024, m.num_heads = 8, m.num_kv_heads = 8, m.head_dim = 128, m.ffn_hidden = 2048;
  m.vocab = 100, m.max_model_len = 10000;
  Batch b;
  b.add({129, 0, true});  // 2 q tiles; 3 pairs of 128-key tiles, 5 of 64-key tiles
  b.add({1, 300, true});  // a decode step: no prefill tiles
  const double pair128 = 2.0 * 128 * 128 * 256, pair64 = 2.0 * 128 * 64 * 128;
  auto prefill_call = [&](int rank_of_head5, ParallelConfig par) {
    ModelDims d;
    LayerDims l;
    l.kv_heads.assign(8, {32, 32, 32, 32});
    l.kv_heads[5] = {rank_of_head5, 32, rank_of_head5, 32};
    d.layers.assign(1, l);
    OpCall found;
    for_each_op(m, par, layer_shapes(m, d, par), b.totals, [&](const OpCall& c) {
      if (c.kind == OpKind::kAttnPrefill) found = c;
    });
    REQUIRE(found.kind == OpKind::kAttnPrefill);
    return found.tiles;
  };
  // sp = 2: each GPU runs 4 of the 8 heads; the GPU holding head 5 (rank 72) pads to 128.
  PrefillTileWork w = prefill_call(72, {1, 2});
  CHECK(w.padded_flops == 4 * 3 * pair128);
  CHECK(w.block_elems == 4 * 2 * 128 * 128);
  CHECK(w.longest_block_flops == 2 * pair128);
  // Every head at rank <= 64: width 64 and key tiles of 64 on both GPUs.
  w = prefill_call(64, {1, 2});
  CHECK(w.padded_flops == 4 * 5 * pair64);
  CHECK(w.longest_block_flops == 3 * pair64);
  // One GPU: all 8 heads.
  CHECK(prefill_call(72, {1, 1}).padded_flops == 8 * 3 * pair128);
}

}  // namespace fdc::costmodel

namespace fdc::fit {
namespace {

// A prefill case whose time is a known law of its padded tile work.
constexpr double kAlpha = 3.0, kPerPadded = 2e-9, kPerBlockElem = 1e-6, kPerLongest = 5e-9;

// extra_us: added to the law's time (the rank term of the second test, per case in file order).
std::string prefill_entry(int seqs, int chunk, int prefix, int rank, bool mixed, bool with_max_rank, double extra_us) {
  costmodel::PrefillTileCounts n;
  for (int s = 0; s < seqs; ++s) n.add(chunk, prefix);
  const costmodel::PrefillTileWork w = costmodel::prefill_tile_work(n, 40, mixed ? 128 : rank);
  const double t = kAlpha + kPerPadded * w.padded_flops + kPerBlockElem * w.block_elems +
                   kPerLongest * w.longest_block_flops + extra_us;
  return test::prefill_entry_json(seqs, chunk, prefix, rank, mixed, with_max_rank, t);
}

std::string prefill_file(bool with_max_rank, const std::vector<double>& extra_us = {}) {
  std::string s = R"({"benchmarks": [)";
  size_t i = 0;
  for (int seqs : {1, 4})
    for (int chunk : {128, 512, 2048})
      for (int prefix : {0, 1024})
        for (int rank : {32, 64, 96, 128, 0}) {
          const double extra = extra_us.empty() ? 0.0 : extra_us.at(i);
          s += (i == 0 ? "" : ",") +
               prefill_entry(seqs, chunk, prefix, rank == 0 ? 80 : rank, rank == 0, with_max_rank, extra);
          ++i;
        }
  return s + "]}";
}

}  // namespace

TEST_CASE("fit: prefill whose time follows the padded tile work takes attention_tiles, recovered exactly") {
  for (bool with_max_rank : {true, false}) {  // older raw files: the mixed table's top rank is implied
    CAPTURE(with_max_rank);
    test::TempFile f("attention.json", prefill_file(with_max_rank));
    RawProfile raw;
    RawSource src;
    read_raw_benchmark_file(f.path(), raw, src);
    REQUIRE(raw.samples.size() == 60);
    REQUIRE(raw.samples[4].attn);
    CHECK(raw.samples[4].attn->max_rank == 128);  // the mixed table
    CHECK(raw.samples[4].attn->padded_flops > 0);
    const OpFit fit = fit_op("attn_prefill", raw.samples, Peaks{}, false);
    CHECK(fit.form == FitForm::kAttentionTiles);
    REQUIRE(fit.candidates.size() == 4);  // the last: the tile law's neighbours, which an exact law keeps out
    CHECK(fit.candidates[2].form == FitForm::kAttentionTiles);
    CHECK(fit.alpha_us == doctest::Approx(kAlpha).epsilon(1e-6));
    CHECK(fit.us_per_padded_flop == doctest::Approx(kPerPadded).epsilon(1e-6));
    CHECK(fit.us_per_block_elem == doctest::Approx(kPerBlockElem).epsilon(1e-6));
    CHECK(fit.us_per_longest_flop == doctest::Approx(kPerLongest).epsilon(1e-6));
    REQUIRE(fit.held_out.median_ape_pct);
    CHECK(*fit.held_out.median_ape_pct < 1e-6);
    CHECK(*fit.held_out.p90_ape_pct < 1e-6);
    // The law survives the profile file.
    FittedProfile p;
    p.gpu = "test";
    p.ops["attn_prefill"] = fit;
    const FittedProfile back = profile_from_json(profile_to_json(p, "test"), "p.json");
    const OpQuery q = OpQuery::of(raw.samples[7]);
    CHECK(back.ops.at("attn_prefill").form == FitForm::kAttentionTiles);
    CHECK(predict_time_us(back.ops.at("attn_prefill"), q) == doctest::Approx(predict_time_us(fit, q)));
    CHECK(predict_time_us(fit, q) == doctest::Approx(raw.samples[7].time_us).epsilon(1e-9));
    CHECK(fit.us_per_flop == doctest::Approx(0.0).epsilon(1e-12));  // no rank term in these times
    CHECK_FALSE(profile_to_json(p, "test")["ops"]["attn_prefill"]["params"].contains("us_per_flop"));
  }
}

TEST_CASE("fit: a term on the FLOPs at the heads' own ranks is recovered and survives the profile file") {
  // The times of the test above plus kPerFlop x the FLOPs the reader counts for each case (at its
  // ranks, not padded): within one padded width, rank 32 now costs less than rank 64.
  constexpr double kPerFlop = 1e-9;
  std::vector<double> extra;
  {
    test::TempFile f("attention.json", prefill_file(true));
    RawProfile raw;
    RawSource src;
    read_raw_benchmark_file(f.path(), raw, src);
    for (const Sample& x : raw.samples) extra.push_back(kPerFlop * x.flops);
  }
  test::TempFile f("attention.json", prefill_file(true, extra));
  RawProfile raw;
  RawSource src;
  read_raw_benchmark_file(f.path(), raw, src);
  REQUIRE(raw.samples.size() == 60);
  const OpFit fit = fit_op("attn_prefill", raw.samples, Peaks{}, false);
  CHECK(fit.form == FitForm::kAttentionTiles);
  CHECK(fit.us_per_flop == doctest::Approx(kPerFlop).epsilon(1e-6));
  CHECK(fit.us_per_padded_flop == doctest::Approx(kPerPadded).epsilon(1e-6));
  CHECK(fit.alpha_us == doctest::Approx(kAlpha).epsilon(1e-6));
  REQUIRE(fit.held_out.p90_ape_pct);
  CHECK(*fit.held_out.p90_ape_pct < 1e-6);
  // Rank 32 and rank 64 of one shape share the padded work; the rank term parts them.
  const Sample& r32 = raw.samples[0];
  const Sample& r64 = raw.samples[1];
  REQUIRE(r32.attn->padded_flops == r64.attn->padded_flops);
  CHECK(predict_time_us(fit, OpQuery::of(r32)) < predict_time_us(fit, OpQuery::of(r64)));
  CHECK(predict_time_us(fit, OpQuery::of(r64)) == doctest::Approx(r64.time_us).epsilon(1e-9));
  FittedProfile p;
  p.gpu = "test";
  p.ops["attn_prefill"] = fit;
  const Json j = profile_to_json(p, "test");
  CHECK(j["ops"]["attn_prefill"]["params"]["us_per_flop"].get<double>() == doctest::Approx(kPerFlop).epsilon(1e-6));
  const FittedProfile back = profile_from_json(j, "p.json");
  CHECK(back.ops.at("attn_prefill").us_per_flop == fit.us_per_flop);
  // A negative rate in a profile file is refused, naming the op and the key.
  Json bad = j;
  bad["ops"]["attn_prefill"]["params"]["us_per_flop"] = -1e-9;
  try {
    (void)profile_from_json(bad, "bad.json");
    FAIL("a negative us_per_flop was accepted");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("bad.json: ops.attn_prefill: 'us_per_flop'") != std::string::npos);
  }
}

}  // namespace fdc::fit
