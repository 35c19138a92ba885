// Strict reading of JSON configs. Every value is read through a ConfigNode, which
//  - names the file and JSON path in every error, with what was expected and what was found;
//  - records each value it hands out (defaults included) into a "resolved" tree, which every run
//    writes next to its results;
//  - rejects keys nobody read (finish()), so a typo is an error, never a silent default.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fdc {

// std::map-backed: pointers to members stay valid as siblings are added (ConfigNode relies on it).
using Json = nlohmann::json;

// Inclusive/exclusive bounds for numeric values; unset sides are unbounded.
struct Bounds {
  std::optional<double> min;
  std::optional<double> max;
  bool min_exclusive = false;
  static Bounds positive() { return {0.0, std::nullopt, true}; }
  static Bounds non_negative() { return {0.0, std::nullopt, false}; }
  static Bounds at_least(double v) { return {v, std::nullopt, false}; }
  static Bounds range(double lo, double hi) { return {lo, hi, false}; }
  static Bounds fraction() { return {0.0, 1.0, false}; }
};

class ConfigNode {
 public:
  // value: the JSON object to read; source: file name (or "--set", "<embedded default>");
  // path: JSON pointer of value ("" for the root); resolved: where read values are recorded.
  ConfigNode(const Json& value, std::string source, std::string path, Json& resolved);

  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }
  // "file: /a/b" for messages about this node, "file: /a/b/key" with a key.
  std::string where(const std::string& key = "") const;

  bool has(const std::string& key) const;

  template <class T>
  T get(const std::string& key, Bounds bounds = {}) const;
  template <class T>
  T get_or(const std::string& key, const T& fallback, Bounds bounds = {}) const;
  // A string that must be one of `allowed`.
  std::string get_enum(const std::string& key, const std::vector<std::string>& allowed) const;
  std::string get_enum_or(const std::string& key, const std::string& fallback,
                          const std::vector<std::string>& allowed) const;

  ConfigNode child(const std::string& key) const;           // required object
  ConfigNode child_or_empty(const std::string& key) const;  // optional object ({} when absent)
  std::vector<ConfigNode> array_of_objects(const std::string& key) const;

  // Raw access for values with their own structure (recorded as given).
  const Json& raw(const std::string& key) const;
  // Throws InputError naming the first key that was present but never read.
  void finish() const;

  [[noreturn]] void fail(const std::string& key, const std::string& expected) const;

 private:
  const Json* lookup(const std::string& key) const;
  void record(const std::string& key, const Json& v) const;

  const Json* value_;
  std::string source_;
  std::string path_;
  Json* resolved_;
  std::shared_ptr<std::set<std::string>> used_;
  std::shared_ptr<Json> empty_;  // backs child_or_empty when the key is absent
};

// Short description of a JSON value for error messages: `a string ("abc")`, `the number -3`, ...
std::string describe_json(const Json& v);

// Parses a JSON file. Errors name the file and the line/column of a syntax error.
Json load_json_file(const std::string& path);
Json parse_json_text(const std::string& text, const std::string& source);

// Applies `--set a.b.c=value`: value is parsed as JSON when it is valid JSON, else taken as a
// string. Intermediate objects are created; an intermediate that is not an object is an error.
void apply_override(Json& root, const std::string& assignment);
// The value of such an assignment: JSON when `text` is valid JSON, else the string itself.
Json override_value(const std::string& text);

}  // namespace fdc
