#include "costmodel/fit/held_out.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fdc::fit {

double percentile(std::vector<double> v, double p) {
  FDC_CHECK(!v.empty() && p >= 0 && p <= 1, "percentile of " << v.size() << " values at " << p);
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

std::vector<int> fold_of_points(int n) {
  std::vector<int> f(static_cast<size_t>(std::max(n, 0)));
  for (int i = 0; i < n; ++i) f[static_cast<size_t>(i)] = n <= 20 ? i : i % 5;
  return f;
}

HeldOutError cross_validate(const std::vector<double>& measured, int min_train,
                            const std::function<double(const std::vector<int>&, int)>& predict_held_out) {
  const int n = static_cast<int>(measured.size());
  HeldOutError r;
  r.points = n;
  const std::vector<int> fold = fold_of_points(n);
  const int folds = n <= 20 ? n : 5;
  const int smallest_train = n - (n <= 20 ? 1 : (n + 4) / 5);
  if (n < 2 || smallest_train < min_train) {
    r.method = "none (" + std::to_string(n) + " points)";
    return r;
  }
  r.method = n <= 20 ? "leave-one-out" : "5-fold";
  std::vector<double> ape;
  r.predicted.assign(static_cast<size_t>(n), 0.0);
  for (int f = 0; f < folds; ++f) {
    std::vector<int> train, test;
    for (int i = 0; i < n; ++i) (fold[static_cast<size_t>(i)] == f ? test : train).push_back(i);
    for (int t : test) {
      const double m = measured[static_cast<size_t>(t)];
      const double pred = predict_held_out(train, t);
      r.predicted[static_cast<size_t>(t)] = pred;
      ape.push_back(100.0 * std::abs(pred - m) / m);
    }
  }
  r.median_ape_pct = percentile(ape, 0.5);
  r.p90_ape_pct = percentile(ape, 0.9);
  return r;
}

}  // namespace fdc::fit
