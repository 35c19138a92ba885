// attention_prefill_neighbours: the prefill law nearest the held-out target times its error at the
// nearest measured cases. It is taken where the time has steps the tile law cannot follow; a held-out
// case's correction comes from the other folds only; a measured case is answered with its own time;
// the form survives the profile file (and a malformed one is refused); a profile written before it
// still loads; on the committed raw folders it meets the held-out target.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/error.h"
#include "costmodel/fit/derive.h"
#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/profile_fit.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/fit/raw_reader.h"
#include "costmodel/prefill_tiles.h"
#include "tests/fit/prefill_entry.h"
#include "tests/test_paths.h"
#include "tests/traces/temp_file.h"

namespace fdc::fit {
namespace {

constexpr double kAlpha = 2.0, kPerPadded = 2e-10, kPerBlockElem = 8e-7, kPerLongest = 3e-8;

// The tile law's time times a step in (sequences, chunk) that no law of the tile work follows (as
// waves of blocks do on the GPU): every case shares it with the other ranks of its shape and padded
// width (three at width 64, four at 128), its neighbours.
double step(int seqs, int chunk) {
  const double by_seqs = seqs == 1 ? 1.0 : seqs == 4 ? 1.3 : 0.8;
  return by_seqs * (chunk == 512 ? 1.25 : 1.0);
}

std::string stepped_entry(int seqs, int chunk, int prefix, int rank, bool mixed) {
  costmodel::PrefillTileCounts n;
  for (int s = 0; s < seqs; ++s) n.add(chunk, prefix);
  const costmodel::PrefillTileWork w = costmodel::prefill_tile_work(n, 40, mixed ? 128 : rank);
  const double t =
      (kAlpha + kPerPadded * w.padded_flops + kPerBlockElem * w.block_elems + kPerLongest * w.longest_block_flops) *
      step(seqs, chunk);
  return test::prefill_entry_json(seqs, chunk, prefix, rank, mixed, true, t);
}

std::string stepped_file() { return test::prefill_grid_json({32, 48, 64, 96, 112, 128, 0}, stepped_entry); }

std::vector<Sample> stepped_cases(const test::TempFile& f) {
  RawProfile raw;
  RawSource src;
  read_raw_benchmark_file(f.path(), raw, src);
  return raw.samples;
}

const CandidateError& candidate(const OpFit& f, FitForm form) {
  const auto it =
      std::find_if(f.candidates.begin(), f.candidates.end(), [&](const CandidateError& c) { return c.form == form; });
  REQUIRE(it != f.candidates.end());
  return *it;
}

// The attn_prefill entry of configs/profiles/h200.json as written before the form existed
// (2026-12-04, attention_tiles): no neighbour_base, no neighbours.
constexpr const char* kOldProfile = R"({
  "format": "fdcsim-fitted-profile/1", "gpu": "NVIDIA H200", "peaks": {"TFLOP/s": 900, "GB/s": 4000},
  "sources": [], "extrapolated": false, "gemm_in_layer": null,
  "ops": {"attn_prefill": {
    "axis": "bytes",
    "candidates": [
      {"form": "attention_linear", "median_ape_pct": 22.96, "method": "5-fold", "p90_ape_pct": 43.71, "points": 270},
      {"form": "attention_linear_efficiency", "median_ape_pct": 21.47, "method": "5-fold", "p90_ape_pct": 45.46, "points": 270},
      {"form": "attention_tiles", "median_ape_pct": 7.35, "method": "5-fold", "p90_ape_pct": 23.0, "points": 270}],
    "coverage": {"bytes": [1048576.0, 838860800.0], "keys_max": [128.0, 12288.0], "sequences": [1.0, 8.0]},
    "efficiency_knots": [],
    "form": "attention_tiles",
    "held_out": {"median_ape_pct": 7.35, "method": "5-fold", "p90_ape_pct": 23.0, "points": 270},
    "params": {"alpha_us": 4.48, "us_per_block_elem": 1.23e-06, "us_per_longest_flop": 2.52e-07,
               "us_per_padded_flop": 2.86e-09}}}})";

}  // namespace

TEST_CASE("fit: prefill with steps the tile law misses takes attention_prefill_neighbours over the tile law") {
  test::TempFile f("attention.json", stepped_file());
  const std::vector<Sample> samples = stepped_cases(f);
  REQUIRE(samples.size() == 126);
  const OpFit fit = fit_op("attn_prefill", samples, Peaks{}, false);
  CHECK(fit.form == FitForm::kAttentionPrefillNeighbours);
  CHECK(fit.neighbour_base == FitForm::kAttentionTiles);  // the base law nearest the target
  CHECK(fit.base_form() == FitForm::kAttentionTiles);
  REQUIRE(fit.candidates.size() == 4);
  CHECK(fit.candidates[3].form == FitForm::kAttentionPrefillNeighbours);
  CHECK(fit.neighbours.size() == samples.size());
  // Held out, the neighbours put the steps back; the tile law alone misses them by 10% and more.
  const HeldOutError& tiles = candidate(fit, FitForm::kAttentionTiles).held_out;
  REQUIRE(fit.held_out.median_ape_pct);
  CHECK(*tiles.median_ape_pct > 10.0);
  // (1.05% since the tile law has a term on the ranks' own FLOPs, which takes up part of the steps
  // in the training folds; under 1% before.)
  CHECK(*fit.held_out.median_ape_pct < 1.5);
  CHECK(*fit.held_out.p90_ape_pct < 10.0);
  CHECK(*fit.held_out.p90_ape_pct < *tiles.p90_ape_pct / 2);
  CHECK(fit.held_out.median_ape_pct == candidate(fit, FitForm::kAttentionPrefillNeighbours).held_out.median_ape_pct);
  // A query on a measured case gets its measured time (its own place decides); the base law does not.
  for (const Sample& s : samples) {
    CAPTURE(s.where);
    const OpQuery q = OpQuery::of(s);
    CHECK(predict_time_us(fit, q) == doctest::Approx(s.time_us).epsilon(1e-4));
  }
}

TEST_CASE("fit: a prefill law without steps keeps its law; the neighbours are tried but not taken") {
  // The tile law's own cases: the neighbours' errors are all zero, so they cannot lower the held-out
  // error by the margin the rule asks of a later form.
  std::string s = R"({"benchmarks": [)";
  bool first = true;
  for (int seqs : {1, 4, 8})
    for (int chunk : {128, 512, 2048})
      for (int rank : {32, 64, 96, 128}) {
        costmodel::PrefillTileCounts n;
        for (int i = 0; i < seqs; ++i) n.add(chunk, 0);
        const costmodel::PrefillTileWork w = costmodel::prefill_tile_work(n, 40, rank);
        const double t =
            kAlpha + kPerPadded * w.padded_flops + kPerBlockElem * w.block_elems + kPerLongest * w.longest_block_flops;
        s += (first ? "" : ",") + test::prefill_entry_json(seqs, chunk, 0, rank, false, true, t);
        first = false;
      }
  test::TempFile f("attention.json", s + "]}");
  const OpFit fit = fit_op("attn_prefill", stepped_cases(f), Peaks{}, false);
  CHECK(fit.form == FitForm::kAttentionTiles);
  REQUIRE(fit.candidates.size() == 4);
  CHECK(fit.candidates[3].form == FitForm::kAttentionPrefillNeighbours);
  CHECK(fit.neighbours.empty());
}

TEST_CASE("fit: a held-out prefill case's correction comes from the other folds, never from itself") {
  test::TempFile f("attention.json", stepped_file());
  std::vector<Sample> samples = stepped_cases(f);
  // One case measured 3x slower than its shape's steps say: no other case shows it.
  const std::string odd = "attn_prefill/s4/q512/ctx1024/r96/manual_time";
  const auto it = std::find_if(samples.begin(), samples.end(),
                               [&](const Sample& s) { return s.where.find(odd) != std::string::npos; });
  REQUIRE(it != samples.end());
  it->time_us *= 3;
  const double measured = it->time_us;
  const OpFit fit = fit_op("attn_prefill", samples, Peaks{}, false);
  REQUIRE(fit.form == FitForm::kAttentionPrefillNeighbours);
  const HeldOutError& h = candidate(fit, FitForm::kAttentionPrefillNeighbours).held_out;
  REQUIRE(h.predicted.size() == fit.held_out_cases.size());
  size_t at = 0;
  while (at < fit.held_out_cases.size() && fit.held_out_cases[at].first.find(odd) == std::string::npos) ++at;
  REQUIRE(at < fit.held_out_cases.size());
  CHECK(fit.held_out_cases[at].second == measured);
  // Held out: its neighbours' correction (the shape's step), a third of what it measured. Were the case
  // among its own neighbours, at distance 0 it would decide and the prediction would be its time.
  CHECK(h.predicted[at] == doctest::Approx(measured / 3).epsilon(0.02));
  // Fitted on every case, a query on it gets its measured time.
  CHECK(predict_time_us(fit, OpQuery::of(*it)) == doctest::Approx(measured).epsilon(1e-4));
}

TEST_CASE("profile file: attention_prefill_neighbours survives it, a malformed entry is refused, an old one loads") {
  test::TempFile f("attention.json", stepped_file());
  const std::vector<Sample> samples = stepped_cases(f);
  FittedProfile p;
  p.gpu = "test";
  p.ops["attn_prefill"] = fit_op("attn_prefill", samples, Peaks{}, false);
  const OpFit& fit = p.ops.at("attn_prefill");
  REQUIRE(fit.form == FitForm::kAttentionPrefillNeighbours);
  const Json j = profile_to_json(p, "test");
  CHECK(j["ops"]["attn_prefill"]["form"] == "attention_prefill_neighbours");
  CHECK(j["ops"]["attn_prefill"]["neighbour_base"] == "attention_tiles");
  CHECK(j["ops"]["attn_prefill"]["neighbours"].size() == samples.size());
  CHECK(j["ops"]["attn_prefill"]["params"].contains("us_per_padded_flop"));  // the base law's parameters
  const FittedProfile back = profile_from_json(j, "p.json");
  const OpFit& b = back.ops.at("attn_prefill");
  CHECK(b.form == FitForm::kAttentionPrefillNeighbours);
  CHECK(b.neighbour_base == FitForm::kAttentionTiles);
  CHECK(b.neighbours.size() == fit.neighbours.size());
  CHECK(profile_to_json(back, "test") == j);
  // The same times on the measured cases and between them (another prefix, a longer chunk).
  for (const Sample& s : samples) CHECK(predict_time_us(b, OpQuery::of(s)) == predict_time_us(fit, OpQuery::of(s)));
  OpQuery between = OpQuery::of(samples[17]);
  between.tokens *= 1.5, between.keys_mean *= 1.5, between.keys_max *= 1.5;
  CHECK(predict_time_us(b, between) == predict_time_us(fit, between));
  CHECK(predict(b, between).extrapolated == predict(fit, between).extrapolated);
  // Derived for another GPU: the base law's rates scale, the neighbours' errors carry over.
  const FittedProfile derived = derive_profile(p, "test", {"a", "A", 1000, 3000, 400}, {"b", "B", 250, 2000, 300});
  const OpFit& dv = derived.ops.at("attn_prefill");
  CHECK(dv.form == FitForm::kAttentionPrefillNeighbours);
  CHECK(dv.neighbour_base == FitForm::kAttentionTiles);
  CHECK(dv.us_per_padded_flop == doctest::Approx(fit.us_per_padded_flop * 4));
  CHECK(dv.us_per_block_elem == doctest::Approx(fit.us_per_block_elem * 1.5));
  CHECK(dv.neighbours.size() == fit.neighbours.size());
  CHECK(dv.extrapolated);
  // Malformed: a base the form cannot have, no base, a point of the wrong size.
  auto refused = [&](Json bad, const std::string& message) {
    CAPTURE(message);
    try {
      (void)profile_from_json(bad, "p.json");
      FAIL("no error");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find(message) != std::string::npos);
    }
  };
  Json bad = j;
  bad["ops"]["attn_prefill"]["neighbour_base"] = "gemm_roofline_grid";
  refused(bad, "ops.attn_prefill: 'neighbour_base' must be one of");
  bad["ops"]["attn_prefill"]["neighbour_base"] = "attention_prefill_neighbours";
  refused(bad, "ops.attn_prefill: 'neighbour_base' must be one of");
  bad = j;
  bad["ops"]["attn_prefill"].erase("neighbour_base");
  refused(bad, "ops.attn_prefill: missing 'neighbour_base'");
  bad = j;
  bad["ops"]["attn_prefill"]["neighbours"][3] = Json::array({1, 2});
  refused(bad, "ops.attn_prefill: each neighbours point must be 7 finite numbers");
  bad = j;
  bad["ops"]["attn_prefill"]["neighbours"] = Json::object();
  refused(bad, "ops.attn_prefill: 'neighbours' must be an array");
  bad = j;
  bad["ops"]["attn_prefill"]["form"] = "attention_prefill_neighbour";
  refused(bad, "ops.attn_prefill: unknown form \"attention_prefill_neighbour\"");
  // A profile written before the form: its tile law loads as it was.
  const FittedProfile old = profile_from_json(Json::parse(kOldProfile), "old.json");
  const OpFit& o = old.ops.at("attn_prefill");
  CHECK(o.form == FitForm::kAttentionTiles);
  CHECK(o.base_form() == FitForm::kAttentionTiles);
  CHECK(o.neighbours.empty());
  CHECK(o.alpha_us == 4.48);
  const OpQuery q = OpQuery::of(samples[5]);
  CHECK(predict_time_us(o, q) == doctest::Approx(4.48 + 2.86e-09 * q.padded_flops + 1.23e-06 * q.block_elems +
                                                 2.52e-07 * q.longest_block_flops));
}

TEST_CASE("fit: the committed raw folders' prefill meets the held-out target with its neighbours") {
  // 5-fold, 270 cases each (docs/fit.md, "Prefill attention: the law's error at its neighbours"):
  // attention_tiles 7.4% / 23.7% (H100), 7.3% / 23.0% (H200) median / P90; with its neighbours 3.0% /
  // 8.3% and 2.9% / 7.4%.
  for (const char* folder :
       {"configs/profiles/raw/h100-1gpu-20261128-k2", "configs/profiles/raw/h200-1gpu-20261128-k2"}) {
    CAPTURE(folder);
    const RawProfile raw = read_raw_profiles({test::source_path(folder)});
    const FittedProfile p = fit_profile(raw);
    const OpFit& f = p.ops.at("attn_prefill");
    CHECK(f.form == FitForm::kAttentionPrefillNeighbours);
    CHECK(f.neighbour_base == FitForm::kAttentionTiles);
    CHECK(*f.held_out.median_ape_pct <= 5.0);
    CHECK(*f.held_out.p90_ape_pct <= 10.0);
    CHECK(*candidate(f, FitForm::kAttentionTiles).held_out.p90_ape_pct > 20.0);
    // Every measured case is answered within 0.1% of its time.
    for (const Sample& s : raw.samples) {
      if (s.group != "attn_prefill") continue;
      CAPTURE(s.where);
      CHECK(predict_time_us(f, OpQuery::of(s)) == doctest::Approx(s.time_us).epsilon(1e-3));
    }
  }
}

}  // namespace fdc::fit
