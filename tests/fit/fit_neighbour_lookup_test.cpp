// neighbour_correction's lookup (the per-thread answers, cell and block lists of
// costmodel/fit/op_fit.cpp) gives the answer of a scan over all points, bit for bit: the committed
// H200 profile's decode and prefill neighbours, queried near their measured cases, between them, far
// from all of them, along fast-forwarded decode stretches and prompts of growing context, with
// repeats and with the two laws asking in turn.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <random>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/prefill_tiles.h"
#include "tests/test_paths.h"

namespace fdc::fit {
namespace {

// The definition (docs/fit.md): the k nearest points within the radius by (squared distance summed
// over the coordinates in order, index), their log ratios weighted by inverse squared distance.
double full_scan(const std::vector<NeighbourPoint>& points, const OpQuery& q, NeighbourSpace space) {
  const std::array<double, 6> x = neighbour_features(q, space);
  std::vector<std::pair<double, size_t>> near;
  for (size_t i = 0; i < points.size(); ++i) {
    double d2 = 0;
    for (size_t k = 0; k < x.size(); ++k) d2 += (points[i].x[k] - x[k]) * (points[i].x[k] - x[k]);
    if (d2 <= kNeighbourRadius * kNeighbourRadius) near.emplace_back(d2, i);
  }
  std::sort(near.begin(), near.end());
  if (near.empty()) return 1.0;
  double sum = 0, weight = 0;
  for (size_t i = 0; i < near.size() && i < static_cast<size_t>(kNeighbours); ++i) {
    const double w = 1.0 / (near[i].first + 1e-6);
    sum += w * points[near[i].second].log_ratio, weight += w;
  }
  return std::exp(sum / weight);
}

// A decode query at about x (neighbour_features inverted): sequences, mean keys, bytes per
// (sequence, key), staged / read bytes, longest / mean keys, balanced.
OpQuery decode_query(const std::array<double, 6>& x) {
  OpQuery q;
  q.seqs = std::exp2(x[0]), q.keys_mean = std::exp2(x[1]);
  q.bytes = std::exp2(x[2]) * q.seqs * q.keys_mean;
  q.stage_bytes = x[3] / 4 * q.bytes;
  q.keys_max = q.keys_mean * std::exp2(std::max(x[4], 0.0));
  q.balanced = x[5] / 8;
  return q;
}

// A prefill query at about x: sequences, new tokens per sequence, mean keys / new tokens, q heads x
// padded width, the ranks' share of the width, longest / mean keys.
OpQuery prefill_query(const std::array<double, 6>& x) {
  OpQuery q;
  q.seqs = std::exp2(x[0] / 2);
  const double n = std::exp2(x[1] / 2), keys = n * std::exp2(std::max(x[2], 0.0));
  const double heads_width = 4096 * std::exp2(x[3] / 8), fill = std::exp2(x[4] / 2);
  q.tokens = n * q.seqs, q.keys_mean = keys;
  q.block_elems = heads_width * q.seqs * std::ceil(n / costmodel::kPrefillTileQ) * costmodel::kPrefillTileQ;
  q.flops = fill * 4 * heads_width * q.seqs * (n * (keys - n) + n * (n + 1) / 2);
  q.keys_max = keys * std::exp2(std::max(x[5], 0.0) / 2);
  return q;
}

struct Law {
  const std::vector<NeighbourPoint>* points;
  NeighbourSpace space;
  OpQuery query(const std::array<double, 6>& x) const {
    return space == NeighbourSpace::kPrefill ? prefill_query(x) : decode_query(x);
  }
};

// Counts the queries answered otherwise than by the full scan (naming the first).
struct Tally {
  int queries = 0, differ = 0;
  void check(const Law& law, const OpQuery& q) {
    ++queries;
    const double fast = neighbour_correction(*law.points, q, law.space), full = full_scan(*law.points, q, law.space);
    if (fast != full && differ++ == 0) {
      const std::array<double, 6> x = neighbour_features(q, law.space);
      MESSAGE("first difference: space " << static_cast<int>(law.space) << std::setprecision(17) << ", x = " << x[0]
                                         << " " << x[1] << " " << x[2] << " " << x[3] << " " << x[4] << " " << x[5]
                                         << ": " << fast << " against " << full);
    }
  }
};

TEST_CASE("neighbour_correction: the lookup gives the full scan's answer, bit for bit (H200 profile)") {
  const FittedProfile profile = read_profile(test::source_path("configs/profiles/h200.json"));
  const OpFit& decode = profile.ops.at("attn_decode");
  const OpFit& prefill = profile.ops.at("attn_prefill");
  REQUIRE(decode.neighbour_space() == NeighbourSpace::kDecode);
  REQUIRE(prefill.neighbour_space() == NeighbourSpace::kPrefill);
  REQUIRE(decode.neighbours.size() > 100);
  REQUIRE(prefill.neighbours.size() > 100);
  const std::array<Law, 2> laws{Law{&decode.neighbours, NeighbourSpace::kDecode},
                                Law{&prefill.neighbours, NeighbourSpace::kPrefill}};
  std::mt19937_64 rng(20261204);
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  Tally tally;

  // About measured cases, between them, and farther than the radius from all of them; each query
  // asked twice (the second answered from the latest answers), the two laws in turn.
  for (const double spread : {0.0, 0.02, 0.2, 1.0, 3.0}) {
    for (int i = 0; i < 2000; ++i) {
      const Law& law = laws[static_cast<size_t>(i % 2)];
      std::array<double, 6> x = (*law.points)[rng() % law.points->size()].x;
      for (double& v : x) v += spread * unit(rng);
      const OpQuery q = law.query(x);
      tally.check(law, q);
      tally.check(law, q);
    }
  }

  // Decode stretches as fast-forward asks them: every sequence one key longer each step, a query per
  // layer group (here 3, of other bytes per key) each step; the cells and blocks then serve many steps.
  for (int stretch = 0; stretch < 40; ++stretch) {
    std::array<double, 6> x = decode.neighbours[rng() % decode.neighbours.size()].x;
    for (double& v : x) v += 0.3 * unit(rng);
    OpQuery base = decode_query(x);
    base.keys_mean = std::round(base.keys_mean), base.keys_max = std::round(std::max(base.keys_max, base.keys_mean));
    for (int step = 0; step < 300; ++step) {
      for (const double group : {1.0, 0.75, 0.5}) {
        OpQuery q = base;
        q.keys_mean += step, q.keys_max += step;
        q.bytes = base.bytes / base.keys_mean * q.keys_mean * group;
        q.stage_bytes = base.stage_bytes / base.keys_mean * q.keys_mean * group;
        tally.check(laws[0], q);
      }
    }
  }

  // Prompts of one length over a growing cached context (chunked prefill), with decode between.
  for (int run = 0; run < 40; ++run) {
    std::array<double, 6> x = prefill.neighbours[rng() % prefill.neighbours.size()].x;
    for (double& v : x) v += 0.3 * unit(rng);
    x[2] = 0;
    for (int chunk = 0; chunk < 100; ++chunk) {
      const OpQuery q = prefill_query(x);
      tally.check(laws[1], q);
      tally.check(laws[0], decode_query(decode.neighbours[static_cast<size_t>(chunk) % decode.neighbours.size()].x));
      x[2] += 0.02;
    }
  }

  CHECK(tally.queries > 40000);
  CHECK(tally.differ == 0);
}

}  // namespace
}  // namespace fdc::fit
