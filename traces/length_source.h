// Where the (prompt, output) lengths of generated requests come from.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "traces/length_quantiles.h"
#include "traces/trace_table.h"

namespace fdc::traces {

class LengthSource {
 public:
  virtual ~LengthSource() = default;
  virtual LengthPair next() = 0;
  virtual std::string describe() const = 0;
};

class FixedLengths final : public LengthSource {
 public:
  explicit FixedLengths(LengthPair lengths) : lengths_(lengths) {}
  LengthPair next() override { return lengths_; }
  std::string describe() const override;

 private:
  LengthPair lengths_;
};

class QuantileLengths final : public LengthSource {
 public:
  // `table` must outlive this object when `owned` is null (the embedded table lives forever).
  QuantileLengths(const LengthQuantiles& table, std::string name, Rng rng);
  QuantileLengths(std::shared_ptr<const LengthQuantiles> owned, std::string name, Rng rng);
  LengthPair next() override { return table_->sample(rng_); }
  std::string describe() const override { return name_; }

 private:
  std::shared_ptr<const LengthQuantiles> owned_;
  const LengthQuantiles* table_;
  std::string name_;
  Rng rng_;
};

enum class TableOrder {
  kSequential,  // file order, wrapping around at the end
  kShuffle,     // a fresh random permutation for every pass over the table
  kSample,      // rows drawn uniformly with replacement
};

class TableLengths final : public LengthSource {
 public:
  TableLengths(std::shared_ptr<const TraceTable> table, TableOrder order, std::string name, Rng rng);
  LengthPair next() override;
  std::string describe() const override { return name_; }

 private:
  std::shared_ptr<const TraceTable> table_;
  TableOrder order_;
  std::string name_;
  Rng rng_;
  size_t position_ = 0;                // rows used in the current pass
  std::vector<uint32_t> permutation_;  // kShuffle only
};

}  // namespace fdc::traces
