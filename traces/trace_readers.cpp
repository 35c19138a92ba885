// Readers of the trace formats: Vidur/Etalon length CSV, Azure CSV, generic CSV / JSON lines.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "traces/csv_lines.h"
#include "traces/trace_table.h"

namespace fdc::traces {

using detail::LineReader;

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Reads the header line of a CSV file and maps column names to field indices.
struct CsvHeader {
  std::vector<std::string> names;
  std::map<std::string, size_t> index;
};

CsvHeader read_header(LineReader& reader, const std::string& expected_text) {
  std::string line;
  FDC_INPUT_CHECK(reader.next(line), reader.path()
                                         << ": the file is empty (expected a header line: " << expected_text << ")");
  FDC_INPUT_CHECK(!detail::is_blank(line),
                  reader.here() << "expected a header line (" << expected_text << "), found a blank line");
  auto fields = detail::split_csv(line);
  FDC_INPUT_CHECK(fields.has_value(), reader.here() << "header: unterminated quote");
  CsvHeader h;
  h.names = *fields;
  for (size_t i = 0; i < h.names.size(); ++i) {
    FDC_INPUT_CHECK(!h.names[i].empty(), reader.here() << "header: column " << (i + 1) << " has an empty name");
    FDC_INPUT_CHECK(h.index.emplace(h.names[i], i).second,
                    reader.here() << "header: column '" << h.names[i] << "' appears twice");
  }
  return h;
}

// Strict headers: every column known, every required column present.
void check_header(const LineReader& reader, const CsvHeader& h, const std::vector<std::string>& required,
                  const std::vector<std::string>& optional) {
  std::vector<std::string> known = required;
  known.insert(known.end(), optional.begin(), optional.end());
  for (const auto& n : h.names) {
    FDC_INPUT_CHECK(
        std::find(known.begin(), known.end(), n) != known.end(),
        reader.path() << ":1: header: unknown column '" << n << "' (expected the columns " << join(known) << ")");
  }
  for (const auto& r : required) {
    FDC_INPUT_CHECK(h.index.count(r), reader.path() << ":1: header: missing column '" << r << "' (found the columns "
                                                    << join(h.names) << ")");
  }
}

// Calls row(fields) for each non-blank data line, after checking its field count.
void for_each_csv_row(LineReader& reader, const CsvHeader& h,
                      const std::function<void(const std::vector<std::string>&)>& row) {
  std::string line;
  while (reader.next(line)) {
    if (detail::is_blank(line)) continue;
    auto fields = detail::split_csv(line);
    FDC_INPUT_CHECK(fields.has_value(), reader.here() << "unterminated quote in " << detail::quote_field(line));
    FDC_INPUT_CHECK(fields->size() == h.names.size(),
                    reader.here() << "expected " << h.names.size() << " comma-separated fields (" << join(h.names)
                                  << "), found " << fields->size() << " in " << detail::quote_field(line));
    row(*fields);
  }
}

void check_not_empty(const LineReader& reader, const TraceTable& t) {
  FDC_INPUT_CHECK(!t.rows.empty(), reader.path() << ": no data rows after the header (the trace is empty)");
}

// Timestamps must not go backwards: a trace out of order is more likely corrupt than intended.
void check_monotone(const LineReader& reader, const TraceTable& t, int64_t prev_line, const std::string& shown,
                    const std::string& prev_shown) {
  size_t n = t.timestamps_ns.size();
  FDC_INPUT_CHECK(n < 2 || t.timestamps_ns[n - 1] >= t.timestamps_ns[n - 2],
                  reader.here() << "timestamps must be non-decreasing: found " << shown << ", earlier than "
                                << prev_shown << " on line " << prev_line);
}

}  // namespace

TraceTable read_length_csv(const std::string& path) {
  LineReader reader(path);
  const std::vector<std::string> required = {"num_prefill_tokens", "num_decode_tokens"};
  const std::vector<std::string> optional = {"num_total_tokens", "pd_ratio"};
  CsvHeader h = read_header(reader, "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio");
  check_header(reader, h, required, optional);
  TraceTable t;
  t.path = path;
  const size_t ip = h.index.at("num_prefill_tokens"), id = h.index.at("num_decode_tokens");
  const auto it_total = h.index.find("num_total_tokens");
  for_each_csv_row(reader, h, [&](const std::vector<std::string>& f) {
    std::string here = reader.here();
    LengthPair p{detail::parse_token_count(f[ip], here, "num_prefill_tokens"),
                 detail::parse_token_count(f[id], here, "num_decode_tokens")};
    if (it_total != h.index.end()) {
      int32_t total = detail::parse_token_count(f[it_total->second], here, "num_total_tokens");
      FDC_INPUT_CHECK(static_cast<int64_t>(total) == static_cast<int64_t>(p.prompt_tokens) + p.output_tokens,
                      here << "column 'num_total_tokens': expected " << p.prompt_tokens << " + " << p.output_tokens
                           << " = " << (static_cast<int64_t>(p.prompt_tokens) + p.output_tokens) << ", found "
                           << total);
    }
    t.rows.push_back(p);
  });
  check_not_empty(reader, t);
  return t;
}

TraceTable read_azure_csv(const std::string& path) {
  LineReader reader(path);
  const std::vector<std::string> required = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"};
  CsvHeader h = read_header(reader, "TIMESTAMP,ContextTokens,GeneratedTokens");
  check_header(reader, h, required, {});
  TraceTable t;
  t.path = path;
  const size_t its = h.index.at("TIMESTAMP"), ic = h.index.at("ContextTokens"), ig = h.index.at("GeneratedTokens");
  int64_t prev_line = 0;
  std::string prev_text;
  for_each_csv_row(reader, h, [&](const std::vector<std::string>& f) {
    std::string here = reader.here();
    auto ts = parse_timestamp_ns(f[its]);
    FDC_INPUT_CHECK(ts.has_value(),
                    here << "column 'TIMESTAMP': expected a time like \"2023-11-16 18:15:46.6805900\", found "
                         << detail::quote_field(f[its]));
    t.rows.push_back({detail::parse_token_count(f[ic], here, "ContextTokens"),
                      detail::parse_token_count(f[ig], here, "GeneratedTokens")});
    t.timestamps_ns.push_back(*ts);
    check_monotone(reader, t, prev_line, detail::quote_field(f[its]), prev_text);
    prev_line = reader.line_number();
    prev_text = detail::quote_field(f[its]);
  });
  check_not_empty(reader, t);
  return t;
}

namespace {

int64_t seconds_to_ns(double s, const std::string& here, const std::string& column, const std::string& shown) {
  FDC_INPUT_CHECK(std::fabs(s) < 9.0e9,
                  here << "column '" << column << "': expected seconds with |t| < 9e9, found " << shown);
  return static_cast<int64_t>(std::llround(s * 1e9));
}

TraceTable read_generic_csv(const std::string& path, const GenericColumns& cols) {
  LineReader reader(path);
  std::vector<std::string> wanted = {cols.prompt_tokens, cols.output_tokens};
  if (cols.arrival_s) wanted.push_back(*cols.arrival_s);
  CsvHeader h = read_header(reader, "with the columns " + join(wanted));
  for (const auto& w : wanted) {
    FDC_INPUT_CHECK(h.index.count(w), reader.path() << ":1: header: missing column '" << w
                                                    << "' named in the column mapping (found the columns "
                                                    << join(h.names) << ")");
  }
  TraceTable t;
  t.path = path;
  const size_t ip = h.index.at(cols.prompt_tokens), io = h.index.at(cols.output_tokens);
  const size_t ia = cols.arrival_s ? h.index.at(*cols.arrival_s) : 0;
  int64_t prev_line = 0;
  std::string prev_text;
  for_each_csv_row(reader, h, [&](const std::vector<std::string>& f) {
    std::string here = reader.here();
    t.rows.push_back({detail::parse_token_count(f[ip], here, cols.prompt_tokens),
                      detail::parse_token_count(f[io], here, cols.output_tokens)});
    if (cols.arrival_s) {
      auto s = detail::parse_number(f[ia]);
      std::string shown = detail::quote_field(f[ia]);
      FDC_INPUT_CHECK(s.has_value(), here << "column '" << *cols.arrival_s
                                          << "': expected an arrival time in seconds (a number), found " << shown);
      t.timestamps_ns.push_back(seconds_to_ns(*s, here, *cols.arrival_s, shown));
      check_monotone(reader, t, prev_line, shown, prev_text);
      prev_line = reader.line_number();
      prev_text = shown;
    }
  });
  check_not_empty(reader, t);
  return t;
}

std::string describe_value(const nlohmann::json& v) {
  std::string d = v.dump();
  if (d.size() > 40) d = d.substr(0, 37) + "...";
  return v.is_string() ? "the string " + d : v.is_number() ? "the number " + d : d;
}

int32_t json_token_count(const nlohmann::json& obj, const std::string& key, const std::string& here) {
  auto it = obj.find(key);
  FDC_INPUT_CHECK(it != obj.end(), here << "key '" << key << "' (named in the column mapping) is missing");
  const auto& v = *it;
  bool ok = false;
  int64_t x = 0;
  if (v.is_number_integer() || v.is_number_unsigned()) {
    ok = !v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
    if (ok) x = v.get<int64_t>();
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    ok = std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 3e9;
    if (ok) x = static_cast<int64_t>(d);
  }
  FDC_INPUT_CHECK(ok && x >= 1 && x <= std::numeric_limits<int32_t>::max(),
                  here << "key '" << key << "': expected an integer token count >= 1, found " << describe_value(v));
  return static_cast<int32_t>(x);
}

TraceTable read_generic_jsonl(const std::string& path, const GenericColumns& cols) {
  LineReader reader(path);
  TraceTable t;
  t.path = path;
  std::string line;
  int64_t prev_line = 0;
  std::string prev_text;
  bool any_line = false;
  while (reader.next(line)) {
    any_line = true;
    if (detail::is_blank(line)) continue;
    std::string here = reader.here();
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      std::string msg = e.what();
      auto pos = msg.find("syntax error");
      throw InputError(here + "expected one JSON object per line, found text that is not JSON (" +
                       (pos == std::string::npos ? msg : msg.substr(pos)) + ")");
    }
    FDC_INPUT_CHECK(obj.is_object(), here << "expected one JSON object per line, found " << describe_value(obj));
    t.rows.push_back(
        {json_token_count(obj, cols.prompt_tokens, here), json_token_count(obj, cols.output_tokens, here)});
    if (cols.arrival_s) {
      auto it = obj.find(*cols.arrival_s);
      FDC_INPUT_CHECK(it != obj.end(),
                      here << "key '" << *cols.arrival_s << "' (named in the column mapping) is missing");
      std::string shown = describe_value(*it);
      FDC_INPUT_CHECK(
          it->is_number() && std::isfinite(it->get<double>()),
          here << "key '" << *cols.arrival_s << "': expected an arrival time in seconds (a number), found " << shown);
      t.timestamps_ns.push_back(seconds_to_ns(it->get<double>(), here, *cols.arrival_s, shown));
      check_monotone(reader, t, prev_line, shown, prev_text);
      prev_line = reader.line_number();
      prev_text = shown;
    }
  }
  FDC_INPUT_CHECK(any_line, path << ": the file is empty (expected JSON lines with the keys " << cols.prompt_tokens
                                 << ", " << cols.output_tokens << ")");
  FDC_INPUT_CHECK(!t.rows.empty(), path << ": no data rows (only blank lines)");
  return t;
}

}  // namespace

TraceTable read_generic_trace(const std::string& path, GenericFormat format, const GenericColumns& columns) {
  return format == GenericFormat::kCsv ? read_generic_csv(path, columns) : read_generic_jsonl(path, columns);
}

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Reads exactly `n` digits at s[pos...]; false when not all digits.
bool digits(std::string_view s, size_t pos, size_t n, int64_t& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

}  // namespace

std::optional<int64_t> parse_timestamp_ns(std::string_view text) {
  std::string_view s = detail::trim(text);
  int64_t y, mo, d, h, mi, sec;
  if (s.size() < 19 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != ' ' && s[10] != 'T') || !digits(s, 11, 2, h) || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec))
    return std::nullopt;
  if (y < 1900 || y > 2200) return std::nullopt;  // keeps nanoseconds since 1970 inside int64
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1) return std::nullopt;
  if (d > kDays[mo - 1] + (mo == 2 && is_leap(y) ? 1 : 0)) return std::nullopt;
  if (h > 23 || mi > 59 || sec > 60) return std::nullopt;  // 60: a leap second, as written by some loggers
  int64_t frac_ns = 0;
  if (s.size() > 19) {
    if (s[19] != '.') return std::nullopt;
    size_t n = s.size() - 20;
    if (n < 1 || n > 9 || !digits(s, 20, n, frac_ns)) return std::nullopt;
    for (size_t i = n; i < 9; ++i) frac_ns *= 10;
  }
  int64_t seconds = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  return seconds * 1'000'000'000 + frac_ns;
}

}  // namespace fdc::traces
