#include "costmodel/fit/least_squares.h"

#include <cmath>
#include <limits>

#include <Eigen/Dense>

#include "core/error.h"

namespace fdc::fit {

std::vector<double> relative_nnls(const std::vector<std::vector<double>>& rows, const std::vector<double>& targets) {
  FDC_CHECK(!rows.empty() && rows.size() == targets.size(), "relative_nnls: " << rows.size() << " rows");
  const size_t nf = rows[0].size();
  FDC_CHECK(nf > 0 && nf < 16, "relative_nnls: " << nf << " features");
  const auto nr = static_cast<Eigen::Index>(rows.size());
  // Columns scaled to unit max so that bytes (1e9) and an intercept (1) sit side by side.
  std::vector<double> scale(nf, 0.0);
  for (const auto& r : rows)
    for (size_t j = 0; j < nf; ++j) scale[j] = std::max(scale[j], std::abs(r[j]));
  std::vector<double> best(nf, 0.0);
  double best_err = std::numeric_limits<double>::infinity();
  // Larger masks first: on a tie (e.g. one point) the size-proportional terms win over a constant.
  for (unsigned mask = (1u << nf) - 1; mask >= 1; --mask) {
    // A column of zeros adds nothing: the subsets with it are those without it, tried in their turn.
    std::vector<size_t> cols;
    bool zero_column = false;
    for (size_t j = 0; j < nf; ++j)
      if ((mask >> j) & 1u) (scale[j] > 0 ? cols.push_back(j) : void(zero_column = true));
    if (zero_column || cols.empty() || static_cast<Eigen::Index>(cols.size()) > nr) continue;
    Eigen::MatrixXd a(nr, static_cast<Eigen::Index>(cols.size()));
    Eigen::VectorXd b(nr);
    for (Eigen::Index i = 0; i < nr; ++i) {
      const auto ui = static_cast<size_t>(i);
      for (size_t c = 0; c < cols.size(); ++c)
        a(i, static_cast<Eigen::Index>(c)) = rows[ui][cols[c]] / scale[cols[c]] / targets[ui];
      b(i) = 1.0;
    }
    const Eigen::VectorXd x = a.colPivHouseholderQr().solve(b);
    bool ok = true;
    for (Eigen::Index c = 0; c < x.size(); ++c) ok = ok && std::isfinite(x(c)) && x(c) >= 0;
    if (!ok) continue;
    const double err = (a * x - b).squaredNorm();
    if (err < best_err * (1 - 1e-12)) {
      best_err = err;
      best.assign(nf, 0.0);
      for (size_t c = 0; c < cols.size(); ++c) best[cols[c]] = x(static_cast<Eigen::Index>(c)) / scale[cols[c]];
    }
  }
  FDC_CHECK(std::isfinite(best_err), "relative_nnls: no non-negative solution");
  return best;
}

}  // namespace fdc::fit
