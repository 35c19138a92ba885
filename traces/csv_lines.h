// Line-by-line reading of text trace files with the line numbers that error messages need, and
// the field parsing shared by the trace readers.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fdc::traces::detail {

// Reads a text file line by line; strips a UTF-8 byte-order mark and '\r' line endings.
// Throws InputError when the file cannot be opened.
class LineReader {
 public:
  explicit LineReader(const std::string& path);
  // The next line (blank lines included), or false at the end of the file.
  bool next(std::string& line);
  int64_t line_number() const { return line_number_; }  // 1-based number of the last line read
  const std::string& path() const { return path_; }
  // "path:line: " for messages about the last line read.
  std::string here() const;

 private:
  std::string path_;
  std::ifstream in_;
  int64_t line_number_ = 0;
};

bool is_blank(std::string_view s);
std::string_view trim(std::string_view s);

// Splits one CSV line into fields (RFC 4180 quoting: "a,b" and "" escapes; no line breaks inside
// quotes). Fields are trimmed of surrounding spaces. Returns nullopt on an unterminated quote.
std::optional<std::vector<std::string>> split_csv(std::string_view line);

// Quoted, shortened text of a field for messages: "abc".
std::string quote_field(std::string_view s);

// A token count: a decimal integer in [1, 2^31 - 1]. Throws InputError
// "<where>column '<name>': expected an integer token count >= 1, found ..." otherwise.
int32_t parse_token_count(std::string_view field, const std::string& where, const std::string& column);

// A finite decimal number (for seconds); nullopt when the field is not one.
std::optional<double> parse_number(std::string_view field);

}  // namespace fdc::traces::detail
