// Held-out (cross-validated) error: absolute percentage errors of predictions made by a fit that
// never saw the point, summarised by median and P90.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace fdc::fit {

struct HeldOutError {
  std::string method;  // "leave-one-out", "5-fold" or "none (n points)"
  int points = 0;
  std::optional<double> median_ape_pct;  // empty when there are too few points to hold one out
  std::optional<double> p90_ape_pct;
  // Each point's prediction by the fit that did not see it, in the caller's order (empty without
  // numbers); not written into profiles (`fdcsim fit --residuals` lists them).
  std::vector<double> predicted;
};

// Percentile p in [0, 1] with linear interpolation between order statistics (numpy's default).
double percentile(std::vector<double> values, double p);

// Folds of n points: leave-one-out up to 20 points, else 5 interleaved folds (point i in fold i % 5,
// points in the caller's order, which sorts them by size so each fold spans the range).
std::vector<int> fold_of_points(int n);

// predict_held_out(train_indices, test_index) -> predicted value; measured[i] > 0.
// Needs at least min_train training points per fold, else returns an error without numbers.
HeldOutError cross_validate(const std::vector<double>& measured, int min_train,
                            const std::function<double(const std::vector<int>&, int)>& predict_held_out);

}  // namespace fdc::fit
