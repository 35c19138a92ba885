#include "traces/workload.h"

#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/rng.h"
#include "traces/arrival_process.h"
#include "traces/length_source.h"

namespace fdc::traces {

namespace {

const std::vector<std::string> kLengthSources = {"sharegpt_embedded", "length_csv", "azure_csv",
                                                 "generic",           "fixed",      "quantiles"};
const std::vector<std::string> kProcesses = {"poisson", "gamma", "fixed_rate", "trace", "burst"};

std::string file_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// Resolves a trace path against base_dir and checks that the file exists, naming the config key.
std::string resolve_path(const ConfigNode& node, const std::string& base_dir) {
  const std::string given = node.get<std::string>("path");
  FDC_INPUT_CHECK(!given.empty(), node.where("path") << ": expected a file path, found an empty string");
  std::filesystem::path p(given);
  if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
  std::error_code ec;
  FDC_INPUT_CHECK(std::filesystem::is_regular_file(p, ec),
                  node.where("path") << ": expected an existing file, found no file at \"" << p.string() << "\"");
  return p.string();
}

// Lengths: either a table read from a file (with or without timestamps) or a generator.
struct Lengths {
  std::shared_ptr<const TraceTable> table;  // null for generated lengths
  std::unique_ptr<LengthSource> source;
  std::string source_name;  // the "source" key, for messages
};

Lengths read_lengths(const ConfigNode& node, Rng rng, const std::string& base_dir) {
  Lengths out;
  out.source_name = node.get_enum_or("source", "sharegpt_embedded", kLengthSources);
  const std::string& s = out.source_name;
  if (s == "sharegpt_embedded") {
    out.source = std::make_unique<QuantileLengths>(embedded_sharegpt_quantiles(), "sharegpt (embedded quantiles)", rng);
  } else if (s == "fixed") {
    LengthPair p{node.get<int32_t>("prompt_tokens", Bounds::at_least(1)),
                 node.get<int32_t>("output_tokens", Bounds::at_least(1))};
    out.source = std::make_unique<FixedLengths>(p);
  } else if (s == "quantiles") {
    const std::string path = resolve_path(node, base_dir);
    auto table = std::make_shared<const LengthQuantiles>(LengthQuantiles::from_json(load_json_file(path), path));
    out.source = std::make_unique<QuantileLengths>(table, "quantile table " + file_name(path), rng);
  } else if (s == "length_csv") {
    const std::string order = node.get_enum_or("order", "sequential", {"sequential", "shuffle", "sample"});
    const std::string path = resolve_path(node, base_dir);
    out.table = std::make_shared<const TraceTable>(read_length_csv(path));
    TableOrder o = order == "shuffle"  ? TableOrder::kShuffle
                   : order == "sample" ? TableOrder::kSample
                                       : TableOrder::kSequential;
    out.source = std::make_unique<TableLengths>(
        out.table, o,
        "lengths from " + file_name(path) + " (" + std::to_string(out.table->rows.size()) + " rows, " + order + ")",
        rng);
  } else if (s == "azure_csv") {
    const std::string path = resolve_path(node, base_dir);
    out.table = std::make_shared<const TraceTable>(read_azure_csv(path));
    out.source = std::make_unique<TableLengths>(
        out.table, TableOrder::kSequential,
        "azure trace " + file_name(path) + " (" + std::to_string(out.table->rows.size()) + " rows)", rng);
  } else {  // generic
    const std::string format = node.get_enum("format", {"csv", "jsonl"});
    const ConfigNode cols = node.child("columns");
    GenericColumns c;
    c.prompt_tokens = cols.get<std::string>("prompt_tokens");
    c.output_tokens = cols.get<std::string>("output_tokens");
    if (cols.has("arrival_s")) c.arrival_s = cols.get<std::string>("arrival_s");
    cols.finish();
    const std::string path = resolve_path(node, base_dir);
    out.table = std::make_shared<const TraceTable>(
        read_generic_trace(path, format == "csv" ? GenericFormat::kCsv : GenericFormat::kJsonl, c));
    out.source = std::make_unique<TableLengths>(
        out.table, TableOrder::kSequential,
        "generic " + format + " trace " + file_name(path) + " (" + std::to_string(out.table->rows.size()) + " rows)",
        rng);
  }
  node.finish();
  return out;
}

std::unique_ptr<ArrivalProcess> read_arrivals(const ConfigNode& node, const ConfigNode& lengths_node,
                                              const Lengths& lengths, Rng rng) {
  const bool timestamped = lengths.table && lengths.table->has_timestamps();
  const std::string process =
      timestamped ? node.get_enum_or("process", "trace", kProcesses) : node.get_enum("process", kProcesses);
  std::unique_ptr<ArrivalProcess> out;
  if (process == "poisson") {
    out = std::make_unique<PoissonArrivals>(node.get<double>("rate_per_s", Bounds::positive()), rng);
  } else if (process == "gamma") {
    const double rate = node.get<double>("rate_per_s", Bounds::positive());
    out = std::make_unique<GammaArrivals>(rate, node.get<double>("cv", Bounds::positive()), rng);
  } else if (process == "fixed_rate") {
    out = std::make_unique<FixedRateArrivals>(node.get<double>("rate_per_s", Bounds::positive()));
  } else if (process == "burst") {
    out = std::make_unique<BurstArrivals>();
  } else {  // trace
    FDC_INPUT_CHECK(timestamped, node.where("process")
                                     << ": \"trace\" replays the timestamps of a trace, but "
                                     << lengths_node.where("source") << " \"" << lengths.source_name
                                     << "\" has none (use \"azure_csv\", or \"generic\" with columns.arrival_s; "
                                        "or a generated process: poisson, gamma, fixed_rate, burst)");
    out = std::make_unique<TraceArrivals>(lengths.table, node.get_or<double>("time_scale", 1.0, Bounds::positive()));
  }
  node.finish();
  return out;
}

class GeneratedSource final : public RequestSource {
 public:
  GeneratedSource(Lengths lengths, std::unique_ptr<ArrivalProcess> arrivals, uint64_t count,
                  std::optional<int32_t> max_prompt, std::optional<int32_t> max_output)
      : lengths_(std::move(lengths)),
        arrivals_(std::move(arrivals)),
        count_(count),
        max_prompt_(max_prompt),
        max_output_(max_output) {}

  std::optional<RequestSpec> next() override {
    if (emitted_ >= count_) return std::nullopt;
    RequestSpec r;
    r.id = emitted_++;
    r.arrival = arrivals_->next();
    LengthPair p = lengths_.source->next();
    if (max_prompt_ && p.prompt_tokens > *max_prompt_) {
      p.prompt_tokens = *max_prompt_;
      ++clipped_prompts_;
    }
    if (max_output_ && p.output_tokens > *max_output_) {
      p.output_tokens = *max_output_;
      ++clipped_outputs_;
    }
    r.prompt_tokens = p.prompt_tokens;
    r.output_tokens = p.output_tokens;
    return r;
  }

  std::string describe() const override {
    std::string d = lengths_.source->describe() + ", " + arrivals_->describe() + ", " + std::to_string(count_) +
                    (count_ == 1 ? " request" : " requests");
    if (max_prompt_)
      d +=
          ", prompts clipped to " + std::to_string(*max_prompt_) + " (" + std::to_string(clipped_prompts_) + " so far)";
    if (max_output_)
      d +=
          ", outputs clipped to " + std::to_string(*max_output_) + " (" + std::to_string(clipped_outputs_) + " so far)";
    return d;
  }

 private:
  Lengths lengths_;
  std::unique_ptr<ArrivalProcess> arrivals_;
  uint64_t count_;
  std::optional<int32_t> max_prompt_, max_output_;
  uint64_t emitted_ = 0;
  uint64_t clipped_prompts_ = 0, clipped_outputs_ = 0;
};

}  // namespace

std::unique_ptr<RequestSource> make_request_source(const ConfigNode& workload, uint64_t seed,
                                                   const std::string& base_dir) {
  const ConfigNode lengths_node = workload.child_or_empty("lengths");
  Lengths lengths = read_lengths(lengths_node, make_rng(seed, RngStream::kLengths), base_dir);
  const ConfigNode arrival_node = workload.child_or_empty("arrival");
  auto arrivals = read_arrivals(arrival_node, lengths_node, lengths, make_rng(seed, RngStream::kArrivals));

  const bool replay = dynamic_cast<const TraceArrivals*>(arrivals.get()) != nullptr;
  int64_t count = 0;
  if (lengths.table) {
    const auto rows = static_cast<int64_t>(lengths.table->rows.size());
    count = workload.get_or<int64_t>("num_requests", rows, Bounds::at_least(1));
    FDC_INPUT_CHECK(!replay || count <= rows, workload.where("num_requests")
                                                  << ": expected at most the " << rows << " rows of "
                                                  << lengths.table->path
                                                  << " (trace arrival replays each row once), found " << count);
  } else {
    count = workload.get<int64_t>("num_requests", Bounds::at_least(1));
  }
  std::optional<int32_t> max_prompt, max_output;
  if (workload.has("max_prompt_tokens")) max_prompt = workload.get<int32_t>("max_prompt_tokens", Bounds::at_least(1));
  if (workload.has("max_output_tokens")) max_output = workload.get<int32_t>("max_output_tokens", Bounds::at_least(1));
  workload.finish();
  return std::make_unique<GeneratedSource>(std::move(lengths), std::move(arrivals), static_cast<uint64_t>(count),
                                           max_prompt, max_output);
}

}  // namespace fdc::traces
