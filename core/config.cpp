#include "core/config.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "core/text_file.h"

namespace fdc {

std::string describe_json(const Json& v) {
  std::string dumped = v.dump();
  if (dumped.size() > 60) dumped = dumped.substr(0, 57) + "...";
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "the boolean " + dumped;
    case Json::value_t::string:
      return "a string (" + dumped + ")";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      return "the number " + dumped;
    case Json::value_t::object:
      return "an object (" + dumped + ")";
    case Json::value_t::array:
      return "an array (" + dumped + ")";
    default:
      return dumped;
  }
}

ConfigNode::ConfigNode(const Json& value, std::string source, std::string path, Json& resolved)
    : value_(&value),
      source_(std::move(source)),
      path_(std::move(path)),
      resolved_(&resolved),
      used_(std::make_shared<std::set<std::string>>()) {
  if (!value_->is_object()) {
    throw InputError(source_ + ": " + (path_.empty() ? "/" : path_) + ": expected an object, found " +
                     describe_json(*value_));
  }
  if (!resolved_->is_object()) *resolved_ = Json::object();
}

std::string ConfigNode::where(const std::string& key) const {
  std::string p = key.empty() ? (path_.empty() ? "/" : path_) : path_ + "/" + key;
  return source_ + ": " + p;
}

bool ConfigNode::has(const std::string& key) const { return value_->contains(key); }

const Json* ConfigNode::lookup(const std::string& key) const {
  used_->insert(key);
  auto it = value_->find(key);
  return it == value_->end() ? nullptr : &*it;
}

void ConfigNode::record(const std::string& key, const Json& v) const { (*resolved_)[key] = v; }

void ConfigNode::fail(const std::string& key, const std::string& expected) const {
  const Json* v = value_->contains(key) ? &value_->at(key) : nullptr;
  throw InputError(where(key) + ": expected " + expected + ", found " +
                   (v ? describe_json(*v) : std::string("nothing (the key is missing)")));
}

namespace {

std::string bounds_text(const Bounds& b) {
  std::ostringstream os;
  if (b.min && b.max) {
    os << " in " << (b.min_exclusive ? "(" : "[") << *b.min << ", " << *b.max << "]";
  } else if (b.min) {
    os << (b.min_exclusive ? " > " : " >= ") << *b.min;
  } else if (b.max) {
    os << " <= " << *b.max;
  }
  return os.str();
}

bool within(double x, const Bounds& b) {
  if (!std::isfinite(x)) return false;
  if (b.min && (b.min_exclusive ? !(x > *b.min) : !(x >= *b.min))) return false;
  if (b.max && !(x <= *b.max)) return false;
  return true;
}

template <class T>
constexpr const char* type_name() {
  if constexpr (std::is_same_v<T, bool>)
    return "a boolean";
  else if constexpr (std::is_same_v<T, std::string>)
    return "a string";
  else if constexpr (std::is_integral_v<T>)
    return "an integer";
  else if constexpr (std::is_floating_point_v<T>)
    return "a number";
  else if constexpr (std::is_same_v<T, std::vector<double>>)
    return "an array of numbers";
  else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<int>>)
    return "an array of integers";
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return "an array of strings";
  else
    return "a value";
}

// Converts one JSON value to T; returns false when the type does not fit.
template <class T>
bool convert(const Json& v, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return false;
    out = v.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) return false;
    out = v.get<std::string>();
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    if (v.is_number_unsigned()) {
      const uint64_t x = v.get<uint64_t>();
      if (x > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(x);
    } else if (v.is_number_integer()) {
      const int64_t x = v.get<int64_t>();
      if (x < 0 || static_cast<uint64_t>(x) > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      out = static_cast<T>(x);
    } else if (v.is_number_float()) {
      double d = v.get<double>();
      if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > 9.0e15) return false;
      out = static_cast<T>(d);
    } else {
      return false;
    }
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_integer() || v.is_number_unsigned()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
      int64_t x = v.get<int64_t>();
      if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
          x > static_cast<int64_t>(std::numeric_limits<T>::max()))
        return false;
      out = static_cast<T>(x);
    } else if (v.is_number_float()) {
      double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return false;
      out = static_cast<T>(d);
    } else {
      return false;
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return false;
    out = v.get<T>();
  } else {  // vectors
    if (!v.is_array()) return false;
    out.clear();
    for (const auto& e : v) {
      typename T::value_type x{};
      if (!convert(e, x)) return false;
      out.push_back(x);
    }
  }
  return true;
}

template <class T>
bool check_bounds(const T& x, const Bounds& b) {
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    return within(static_cast<double>(x), b);
  } else if constexpr (std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<int64_t>> ||
                       std::is_same_v<T, std::vector<int>>) {
    for (auto e : x)
      if (!within(static_cast<double>(e), b)) return false;
    return true;
  } else {
    (void)x;
    (void)b;
    return true;
  }
}

}  // namespace

template <class T>
T ConfigNode::get(const std::string& key, Bounds bounds) const {
  const Json* v = lookup(key);
  std::string expected = std::string(type_name<T>()) + bounds_text(bounds);
  if (!v) fail(key, expected);
  T out{};
  if (!convert(*v, out) || !check_bounds(out, bounds)) fail(key, expected);
  record(key, *v);
  return out;
}

template <class T>
T ConfigNode::get_or(const std::string& key, const T& fallback, Bounds bounds) const {
  if (!value_->contains(key)) {
    used_->insert(key);
    record(key, Json(fallback));
    return fallback;
  }
  return get<T>(key, bounds);
}

#define FDC_INSTANTIATE_GET(T)                                     \
  template T ConfigNode::get<T>(const std::string&, Bounds) const; \
  template T ConfigNode::get_or<T>(const std::string&, const T&, Bounds) const;
FDC_INSTANTIATE_GET(bool)
FDC_INSTANTIATE_GET(int)
FDC_INSTANTIATE_GET(int64_t)
FDC_INSTANTIATE_GET(uint64_t)
FDC_INSTANTIATE_GET(double)
FDC_INSTANTIATE_GET(std::string)
FDC_INSTANTIATE_GET(std::vector<double>)
FDC_INSTANTIATE_GET(std::vector<int>)
FDC_INSTANTIATE_GET(std::vector<int64_t>)
FDC_INSTANTIATE_GET(std::vector<std::string>)
#undef FDC_INSTANTIATE_GET

std::string ConfigNode::get_enum(const std::string& key, const std::vector<std::string>& allowed) const {
  const Json* v = lookup(key);
  std::string expected = "one of";
  for (size_t i = 0; i < allowed.size(); ++i) expected += (i ? ", \"" : " \"") + allowed[i] + "\"";
  if (!v || !v->is_string()) fail(key, expected);
  std::string s = v->get<std::string>();
  for (const auto& a : allowed)
    if (a == s) {
      record(key, *v);
      return s;
    }
  fail(key, expected);
}

std::string ConfigNode::get_enum_or(const std::string& key, const std::string& fallback,
                                    const std::vector<std::string>& allowed) const {
  if (!value_->contains(key)) {
    used_->insert(key);
    record(key, Json(fallback));
    return fallback;
  }
  return get_enum(key, allowed);
}

ConfigNode ConfigNode::child(const std::string& key) const {
  const Json* v = lookup(key);
  if (!v || !v->is_object()) fail(key, "an object");
  Json& r = (*resolved_)[key];
  if (!r.is_object()) r = Json::object();
  return ConfigNode(*v, source_, path_ + "/" + key, r);
}

ConfigNode ConfigNode::child_or_empty(const std::string& key) const {
  if (!value_->contains(key)) {
    used_->insert(key);
    auto empty = std::make_shared<Json>(Json::object());
    Json& r = (*resolved_)[key];
    if (!r.is_object()) r = Json::object();
    ConfigNode node(*empty, source_, path_ + "/" + key, r);
    node.empty_ = empty;
    return node;
  }
  return child(key);
}

std::vector<ConfigNode> ConfigNode::array_of_objects(const std::string& key) const {
  const Json* v = lookup(key);
  if (!v || !v->is_array()) fail(key, "an array of objects");
  Json& r = (*resolved_)[key];
  r = Json::array();
  std::vector<ConfigNode> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) r.push_back(Json::object());
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    std::string p = path_ + "/" + key + "/" + std::to_string(i);
    if (!e.is_object()) throw InputError(source_ + ": " + p + ": expected an object, found " + describe_json(e));
    out.emplace_back(e, source_, p, r[i]);
  }
  return out;
}

const Json& ConfigNode::raw(const std::string& key) const {
  const Json* v = lookup(key);
  if (!v) fail(key, "a value");
  record(key, *v);
  return *v;
}

void ConfigNode::finish() const {
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    if (!used_->count(it.key())) {
      std::string known;
      for (const auto& k : *used_) known += (known.empty() ? "" : ", ") + k;
      throw InputError(where(it.key()) + ": unknown key (known keys here: " + known + ")");
    }
  }
}

Json parse_json_text(const std::string& text, const std::string& source) {
  try {
    return Json::parse(text, nullptr, true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::parse_error& e) {
    // Translate the byte offset into line:column for the message.
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string msg = e.what();
    auto pos = msg.find("syntax error");
    throw InputError(source + ":" + std::to_string(line) + ":" + std::to_string(col) +
                     ": not valid JSON: " + (pos == std::string::npos ? msg : msg.substr(pos)));
  }
}

Json load_json_file(const std::string& path) {
  const std::string text = read_text_file(path);  // plain or gzip
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw InputError(path + ": file is empty");
  return parse_json_text(text, path);
}

Json override_value(const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
    return text;  // a bare word is a string
  }
}

void apply_override(Json& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--set " + assignment + ": expected key=value (for example scheduler.max_num_seqs=128)");
  std::string key = assignment.substr(0, eq);
  const Json value = override_value(assignment.substr(eq + 1));
  Json* node = &root;
  std::string walked;
  size_t start = 0;
  while (true) {
    auto dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (part.empty()) throw InputError("--set " + assignment + ": empty key component in '" + key + "'");
    walked += (walked.empty() ? "" : ".") + part;
    if (!node->is_object())
      throw InputError("--set " + assignment + ": '" + walked + "' is inside a value that is not an object");
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    Json& next = (*node)[part];
    if (next.is_null()) next = Json::object();
    if (!next.is_object())
      throw InputError("--set " + assignment + ": '" + walked + "' is " + describe_json(next) +
                       ", not an object, so it has no key '" + key.substr(dot + 1) + "'");
    node = &next;
    start = dot + 1;
  }
}

}  // namespace fdc
