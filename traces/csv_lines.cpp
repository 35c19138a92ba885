#include "traces/csv_lines.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace fdc::traces::detail {

LineReader::LineReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  FDC_INPUT_CHECK(in_.is_open(), path << ": cannot open the trace file for reading (missing file or no permission)");
}

bool LineReader::next(std::string& line) {
  if (!std::getline(in_, line)) return false;
  ++line_number_;
  if (line_number_ == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

std::string LineReader::here() const { return path_ + ":" + std::to_string(line_number_) + ": "; }

bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::optional<std::vector<std::string>> split_csv(std::string_view line) {
  std::vector<std::string> fields;
  size_t i = 0;
  while (true) {
    std::string field;
    // Skip spaces before a possible opening quote.
    size_t j = i;
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    if (j < line.size() && line[j] == '"') {
      ++j;
      bool closed = false;
      while (j < line.size()) {
        if (line[j] == '"') {
          if (j + 1 < line.size() && line[j + 1] == '"') {
            field += '"';
            j += 2;
          } else {
            closed = true;
            ++j;
            break;
          }
        } else {
          field += line[j++];
        }
      }
      if (!closed) return std::nullopt;
      while (j < line.size() && line[j] != ',') ++j;  // text after the closing quote is dropped
      i = j;
    } else {
      size_t comma = line.find(',', i);
      size_t end = comma == std::string_view::npos ? line.size() : comma;
      field = std::string(trim(line.substr(i, end - i)));
      i = end;
    }
    fields.push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;  // past the comma
    if (i == line.size()) {
      fields.emplace_back();  // trailing comma: one more, empty field
      break;
    }
  }
  return fields;
}

std::string quote_field(std::string_view s) {
  std::string out = "\"";
  out += s.size() > 40 ? std::string(s.substr(0, 37)) + "..." : std::string(s);
  return out + "\"";
}

int32_t parse_token_count(std::string_view field, const std::string& where, const std::string& column) {
  std::string_view t = trim(field);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  bool integer = !t.empty() && ec == std::errc() && ptr == t.data() + t.size();
  FDC_INPUT_CHECK(integer && v >= 1 && v <= std::numeric_limits<int32_t>::max(),
                  where << "column '" << column << "': expected an integer token count >= 1"
                        << (integer && v > 1 ? " and < 2^31" : "") << ", found "
                        << (t.empty() ? std::string("an empty field") : quote_field(t)));
  return static_cast<int32_t>(v);
}

std::optional<double> parse_number(std::string_view field) {
  std::string_view t = trim(field);
  double v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace fdc::traces::detail
