// Non-negative least squares in relative error, for a handful of features: minimises
// sum_i ((x_i . c - t_i) / t_i)^2 over c >= 0 by solving every subset of columns (Eigen QR) and
// keeping the best non-negative solution (ties go to the subset with the later features, so a single
// point gives a pure bandwidth, not a constant). Exact for the 2-3 features the fits use.
#pragma once

#include <vector>

namespace fdc::fit {

// rows[i]: the features of sample i; targets[i] > 0. Returns one coefficient per feature
// (0 for features left out). Subsets larger than the number of rows are not tried.
std::vector<double> relative_nnls(const std::vector<std::vector<double>>& rows, const std::vector<double>& targets);

}  // namespace fdc::fit
