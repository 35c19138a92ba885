#include "traces/length_source.h"

#include <boost/random/uniform_int_distribution.hpp>

#include "core/error.h"

namespace fdc::traces {

std::string FixedLengths::describe() const {
  return "fixed " + std::to_string(lengths_.prompt_tokens) + " prompt / " + std::to_string(lengths_.output_tokens) +
         " output tokens";
}

QuantileLengths::QuantileLengths(const LengthQuantiles& table, std::string name, Rng rng)
    : table_(&table), name_(std::move(name)), rng_(rng) {}

QuantileLengths::QuantileLengths(std::shared_ptr<const LengthQuantiles> owned, std::string name, Rng rng)
    : owned_(std::move(owned)), table_(owned_.get()), name_(std::move(name)), rng_(rng) {
  FDC_CHECK(table_ != nullptr, "no quantile table");
}

TableLengths::TableLengths(std::shared_ptr<const TraceTable> table, TableOrder order, std::string name, Rng rng)
    : table_(std::move(table)), order_(order), name_(std::move(name)), rng_(rng) {
  FDC_CHECK(table_ && !table_->rows.empty(), "an empty length table");
  FDC_CHECK(table_->rows.size() <= UINT32_MAX, "length table too large");
}

LengthPair TableLengths::next() {
  const size_t n = table_->rows.size();
  switch (order_) {
    case TableOrder::kSequential: {
      const LengthPair p = table_->rows[position_];
      position_ = (position_ + 1) % n;
      return p;
    }
    case TableOrder::kShuffle: {
      if (position_ == 0) {
        // Fisher-Yates with Boost's uniform integers: the same permutation on every platform
        // (std::shuffle's algorithm is left to the standard library).
        permutation_.resize(n);
        for (size_t i = 0; i < n; ++i) permutation_[i] = static_cast<uint32_t>(i);
        for (size_t i = n - 1; i > 0; --i) {
          boost::random::uniform_int_distribution<size_t> pick(0, i);
          std::swap(permutation_[i], permutation_[pick(rng_)]);
        }
      }
      const LengthPair p = table_->rows[permutation_[position_]];
      position_ = (position_ + 1) % n;
      return p;
    }
    case TableOrder::kSample: {
      boost::random::uniform_int_distribution<size_t> pick(0, n - 1);
      return table_->rows[pick(rng_)];
    }
  }
  FDC_CHECK(false, "unknown table order");
  return {};
}

}  // namespace fdc::traces
