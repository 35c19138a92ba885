// Request traces read from files: per-row prompt/output token counts and, for timestamped traces,
// arrival times. Readers validate everything and report problems as fdc::InputError naming the file,
// the line and what was expected vs found; they never crash on bad input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fdc::traces {

struct LengthPair {
  int32_t prompt_tokens = 0;  // >= 1
  int32_t output_tokens = 0;  // >= 1
};

struct TraceTable {
  std::string path;              // the file, as given to the reader
  std::vector<LengthPair> rows;  // in file order; never empty
  // Empty for length-only traces; else one entry per row: nanoseconds on the trace's own clock
  // (Azure: since 1970-01-01 of the naive wall-clock time), non-decreasing.
  std::vector<int64_t> timestamps_ns;
  bool has_timestamps() const { return !timestamps_ns.empty(); }
};

// Vidur/Etalon length CSV. Header: num_prefill_tokens, num_decode_tokens (required),
// num_total_tokens, pd_ratio (optional; num_total_tokens must equal the sum when present).
TraceTable read_length_csv(const std::string& path);

// Azure LLM inference trace. Header: TIMESTAMP, ContextTokens, GeneratedTokens. Timestamps like
// "2023-11-16 18:15:46.6805900" (1 to 9 fraction digits); rows must be in non-decreasing time order.
TraceTable read_azure_csv(const std::string& path);

enum class GenericFormat { kCsv, kJsonl };
struct GenericColumns {
  std::string prompt_tokens;             // column (CSV header name) or key (JSONL) of prompt tokens
  std::string output_tokens;             // ... of output tokens
  std::optional<std::string> arrival_s;  // ... of the arrival time in seconds (any origin); optional
};
// CSV with a header line (other columns are ignored; RFC 4180 quoting), or JSON lines (one object
// per line; other keys ignored; blank lines skipped). Arrival times must be non-decreasing.
TraceTable read_generic_trace(const std::string& path, GenericFormat format, const GenericColumns& columns);

// "YYYY-MM-DD HH:MM:SS[.fffffffff]" -> nanoseconds since 1970-01-01 00:00:00 (no time zone).
// Returns nullopt when the text does not have that form or a field is out of range.
std::optional<int64_t> parse_timestamp_ns(std::string_view text);

}  // namespace fdc::traces
