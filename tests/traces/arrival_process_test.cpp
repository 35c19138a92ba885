// Arrival generators: statistics over 100k draws, exact fixed-rate gaps, trace replay, determinism.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "traces/arrival_process.h"

using namespace fdc::traces;
using fdc::Nanos;

namespace {

struct GapStats {
  double mean_s = 0;
  double cv = 0;
  bool monotone = true;
};

GapStats gap_stats(ArrivalProcess& p, int draws) {
  std::vector<double> gaps;
  Nanos prev = p.next();
  CHECK(prev == Nanos::zero());  // every process starts at t = 0
  GapStats s;
  for (int i = 0; i < draws; ++i) {
    Nanos t = p.next();
    if (t < prev) s.monotone = false;
    gaps.push_back((t - prev).seconds());
    prev = t;
  }
  double sum = 0, sq = 0;
  for (double g : gaps) sum += g;
  s.mean_s = sum / static_cast<double>(gaps.size());
  for (double g : gaps) sq += (g - s.mean_s) * (g - s.mean_s);
  s.cv = std::sqrt(sq / static_cast<double>(gaps.size() - 1)) / s.mean_s;
  return s;
}

}  // namespace

TEST_CASE("poisson: mean gap 1/rate and CV 1 over 100k draws") {
  PoissonArrivals p(12.5, fdc::make_rng(7, fdc::RngStream::kArrivals));
  GapStats s = gap_stats(p, 100'000);
  CHECK(s.monotone);
  // Standard error of the mean gap is 0.3% at n = 1e5; 1.5% is five of them.
  CHECK(s.mean_s == doctest::Approx(0.08).epsilon(0.015));
  CHECK(s.cv == doctest::Approx(1.0).epsilon(0.02));
  CHECK(p.describe() == "poisson 12.5 req/s");
}

TEST_CASE("gamma: mean gap 1/rate and the requested CV within 3%") {
  for (double cv : {0.5, 2.0, 4.0}) {
    CAPTURE(cv);
    GammaArrivals g(10.0, cv, fdc::make_rng(11, fdc::RngStream::kArrivals));
    GapStats s = gap_stats(g, 100'000);
    CHECK(s.monotone);
    CHECK(s.mean_s == doctest::Approx(0.1).epsilon(0.02 * cv));
    CHECK(s.cv == doctest::Approx(cv).epsilon(0.03));
  }
  CHECK(GammaArrivals(10, 2, fdc::Rng(1)).describe() == "gamma 10 req/s cv 2");
}

TEST_CASE("fixed rate: exact gaps without drift") {
  FixedRateArrivals f(10.0);
  for (int64_t i = 0; i < 1000; ++i) CHECK(f.next() == Nanos(i * 100'000'000));
  FixedRateArrivals third(3.0);  // 333,333,333.3 ns gaps: request i at round(i * 1e9 / 3)
  std::vector<int64_t> t;
  for (int i = 0; i < 3'000'001; ++i) t.push_back(third.next().ns());
  CHECK(t[1] == 333'333'333);
  CHECK(t[2] == 666'666'667);
  CHECK(t[3] == 1'000'000'000);
  CHECK(t[3'000'000] == 1'000'000'000'000'000);
}

TEST_CASE("burst: everything at t = 0") {
  BurstArrivals b;
  for (int i = 0; i < 10; ++i) CHECK(b.next() == Nanos::zero());
}

TEST_CASE("trace replay: times relative to the first row, gaps multiplied by time_scale") {
  auto table = std::make_shared<TraceTable>();
  table->path = "t.csv";
  table->rows = {{1, 1}, {1, 1}, {1, 1}, {1, 1}};
  table->timestamps_ns = {5'000'000'000, 5'000'000'000, 6'500'000'001, 9'000'000'000};
  TraceArrivals same(table, 1.0);
  CHECK(same.next() == Nanos(0));
  CHECK(same.next() == Nanos(0));
  CHECK(same.next() == Nanos(1'500'000'001));
  CHECK(same.next() == Nanos(4'000'000'000));
  TraceArrivals faster(table, 0.5);  // twice as fast
  std::vector<int64_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(faster.next().ns());
  CHECK(got == std::vector<int64_t>{0, 0, 750'000'001, 2'000'000'000});  // 750,000,000.5 rounds away from 0
  CHECK(faster.describe() == "trace timestamps x0.5 time scale");
  CHECK_THROWS_AS(faster.next(), fdc::InternalError);
}

TEST_CASE("same seed gives the same arrivals, another seed different ones") {
  auto draw = [](uint64_t seed) {
    GammaArrivals g(5.0, 3.0, fdc::make_rng(seed, fdc::RngStream::kArrivals));
    std::vector<int64_t> out;
    for (int i = 0; i < 1000; ++i) out.push_back(g.next().ns());
    return out;
  };
  CHECK(draw(1) == draw(1));
  CHECK(draw(1) != draw(2));
}
