#include "traces/length_quantiles.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/random/uniform_01.hpp>

#include "core/error.h"

namespace fdc::traces {

namespace {

constexpr int64_t kScale = 10;  // values are stored in tenths of a token

// Type-7 quantiles of sorted integers at p = i/(levels-1), in tenths, rounded half-up. Exact:
// position i*(n-1)/(levels-1) is split into an integer part and a remainder, all in int64.
std::vector<int64_t> quantiles_tenths(const std::vector<int32_t>& sorted, int levels) {
  FDC_CHECK(!sorted.empty() && levels >= 2, "quantiles of " << sorted.size() << " values at " << levels << " levels");
  const int64_t n = static_cast<int64_t>(sorted.size());
  const int64_t den = levels - 1;
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(levels));
  for (int64_t i = 0; i <= den; ++i) {
    const int64_t num = i * (n - 1);
    const int64_t lo = num / den, rem = num % den;
    const int64_t x_lo = sorted[static_cast<size_t>(lo)];
    const int64_t dx = rem == 0 ? 0 : sorted[static_cast<size_t>(lo + 1)] - x_lo;
    const int64_t a = (x_lo * den + dx * rem) * kScale;  // value * den * kScale, >= 0
    out.push_back((2 * a + den) / (2 * den));
  }
  return out;
}

Json tenths_to_json(const std::vector<int64_t>& tenths) {
  Json arr = Json::array();
  for (int64_t t : tenths) {
    if (t % kScale == 0) {
      arr.push_back(t / kScale);
    } else {
      arr.push_back(static_cast<double>(t) / static_cast<double>(kScale));
    }
  }
  return arr;
}

std::vector<double> read_quantile_array(const Json& v, const std::string& where) {
  FDC_INPUT_CHECK(v.is_array() && v.size() >= 2,
                  where << ": expected an array of at least 2 quantiles, found " << describe_json(v));
  std::vector<double> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& e = v[i];
    FDC_INPUT_CHECK(e.is_number() && std::isfinite(e.get<double>()) && e.get<double>() >= 0.0,
                    where << "/" << i << ": expected a number >= 0, found " << describe_json(e));
    double x = e.get<double>();
    FDC_INPUT_CHECK(out.empty() || x >= out.back(),
                    where << "/" << i << ": quantiles must be non-decreasing, found " << x << " after " << out.back());
    out.push_back(x);
  }
  return out;
}

int32_t to_token_count(double x) {
  double r = std::round(x);
  if (!(r >= 1.0)) return 1;
  if (r > static_cast<double>(std::numeric_limits<int32_t>::max())) return std::numeric_limits<int32_t>::max();
  return static_cast<int32_t>(r);
}

}  // namespace

Json build_quantile_table(const std::vector<LengthPair>& rows, const QuantileTableOptions& o, const Json& provenance) {
  FDC_INPUT_CHECK(!rows.empty(), "cannot build a quantile table from an empty trace");
  FDC_INPUT_CHECK(o.prompt_levels >= 2 && o.output_levels >= 2 && o.conditional_levels >= 2,
                  "quantile levels must be >= 2");
  FDC_INPUT_CHECK(o.prompt_bins >= 1 && static_cast<size_t>(o.prompt_bins) <= rows.size(),
                  "prompt bins must be in [1, number of rows = " << rows.size() << "], found " << o.prompt_bins);
  std::vector<LengthPair> by_prompt = rows;
  std::sort(by_prompt.begin(), by_prompt.end(), [](const LengthPair& a, const LengthPair& b) {
    return a.prompt_tokens != b.prompt_tokens ? a.prompt_tokens < b.prompt_tokens : a.output_tokens < b.output_tokens;
  });
  std::vector<int32_t> prompts, outputs;
  for (const auto& r : by_prompt) prompts.push_back(r.prompt_tokens);
  for (const auto& r : by_prompt) outputs.push_back(r.output_tokens);
  std::vector<int32_t> outputs_sorted = outputs;
  std::sort(outputs_sorted.begin(), outputs_sorted.end());

  Json bins = Json::array();
  const size_t n = by_prompt.size(), b_count = static_cast<size_t>(o.prompt_bins);
  for (size_t b = 0; b < b_count; ++b) {
    const size_t lo = b * n / b_count, hi = (b + 1) * n / b_count;  // ranks [lo, hi)
    std::vector<int32_t> bin(outputs.begin() + static_cast<std::ptrdiff_t>(lo),
                             outputs.begin() + static_cast<std::ptrdiff_t>(hi));
    std::sort(bin.begin(), bin.end());
    bins.push_back(tenths_to_json(quantiles_tenths(bin, o.conditional_levels)));
  }

  Json t = Json::object();
  t["format"] = kQuantileTableFormat;
  t["provenance"] = provenance;
  t["rows"] = n;
  t["method"] = "prompt_tokens: " + std::to_string(o.prompt_levels) +
                " quantiles at p=i/(L-1), linear interpolation between order statistics; "
                "output_tokens_given_prompt_bin: rows sorted by (prompt, output) and split into " +
                std::to_string(o.prompt_bins) + " equal-count bins, " + std::to_string(o.conditional_levels) +
                " output quantiles per bin; output_tokens: marginal output quantiles (reference); values rounded "
                "half-up to 0.1 token";
  t["prompt_tokens"] = tenths_to_json(quantiles_tenths(prompts, o.prompt_levels));
  t["output_tokens"] = tenths_to_json(quantiles_tenths(outputs_sorted, o.output_levels));
  t["output_tokens_given_prompt_bin"] = bins;
  return t;
}

namespace {

// Objects with their keys sorted, so the text does not depend on the map type behind fdc::Json.
std::string dump_sorted(const Json& v) {
  if (!v.is_object()) return v.dump();
  std::vector<std::string> keys;
  for (auto it = v.begin(); it != v.end(); ++it) keys.push_back(it.key());
  std::sort(keys.begin(), keys.end());
  std::string out = "{";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i) out += ',';
    out += Json(keys[i]).dump();
    out += ':';
    out += dump_sorted(v.at(keys[i]));
  }
  return out + "}";
}

}  // namespace

std::string format_quantile_table(const Json& table) {
  // Known keys first in a fixed order, then any others sorted.
  std::vector<std::string> keys = {
      "format", "provenance", "rows", "method", "prompt_tokens", "output_tokens", "output_tokens_given_prompt_bin"};
  std::vector<std::string> others;
  for (auto it = table.begin(); it != table.end(); ++it)
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) others.push_back(it.key());
  std::sort(others.begin(), others.end());
  keys.insert(keys.end(), others.begin(), others.end());

  std::string out = "{\n";
  bool first = true;
  for (const auto& key : keys) {
    if (!table.contains(key)) continue;
    out += first ? "" : ",\n";
    first = false;
    out += "  " + Json(key).dump() + ": ";
    const Json& v = table.at(key);
    if (v.is_array() && !v.empty() && v[0].is_array()) {
      out += "[\n";
      for (size_t i = 0; i < v.size(); ++i) out += "    " + v[i].dump() + (i + 1 < v.size() ? ",\n" : "\n");
      out += "  ]";
    } else {
      out += dump_sorted(v);
    }
  }
  return out + "\n}\n";
}

LengthQuantiles LengthQuantiles::from_json(const Json& table, const std::string& source) {
  Json resolved;
  ConfigNode node(table, source, "", resolved);
  const std::string format = node.get<std::string>("format");
  FDC_INPUT_CHECK(format == kQuantileTableFormat,
                  node.where("format") << ": expected \"" << kQuantileTableFormat << "\", found \"" << format << "\"");
  LengthQuantiles q;
  q.provenance_ = node.raw("provenance");
  (void)node.get_or<std::string>("method", "");
  (void)node.get<int64_t>("rows", Bounds::at_least(1));
  q.prompt_ = read_quantile_array(node.raw("prompt_tokens"), node.where("prompt_tokens"));
  (void)read_quantile_array(node.raw("output_tokens"), node.where("output_tokens"));
  const Json& bins = node.raw("output_tokens_given_prompt_bin");
  const std::string bins_where = node.where("output_tokens_given_prompt_bin");
  FDC_INPUT_CHECK(bins.is_array() && !bins.empty(),
                  bins_where << ": expected an array of per-bin quantile arrays, found " << describe_json(bins));
  for (size_t b = 0; b < bins.size(); ++b) {
    q.output_given_bin_.push_back(read_quantile_array(bins[b], bins_where + "/" + std::to_string(b)));
  }
  node.finish();
  return q;
}

double interpolate_quantile(const std::vector<double>& q, double u) {
  FDC_CHECK(q.size() >= 2, "a quantile array needs at least 2 levels");
  const double pos = std::clamp(u, 0.0, 1.0) * static_cast<double>(q.size() - 1);
  size_t i = static_cast<size_t>(pos);
  if (i >= q.size() - 1) return q.back();
  return q[i] + (q[i + 1] - q[i]) * (pos - static_cast<double>(i));
}

LengthPair LengthQuantiles::sample(Rng& rng) const {
  boost::random::uniform_01<double> uniform;
  const double u_prompt = uniform(rng);
  const double u_output = uniform(rng);
  const size_t bins = output_given_bin_.size();
  const size_t bin = std::min(bins - 1, static_cast<size_t>(u_prompt * static_cast<double>(bins)));
  return {to_token_count(interpolate_quantile(prompt_, u_prompt)),
          to_token_count(interpolate_quantile(output_given_bin_[bin], u_output))};
}

const LengthQuantiles& embedded_sharegpt_quantiles() {
  // Parsed once; immutable afterwards, so simulations in one process cannot interfere.
  static const LengthQuantiles table = LengthQuantiles::from_json(
      parse_json_text(std::string(embedded_sharegpt_quantiles_json()), "<embedded sharegpt_quantiles.json>"),
      "<embedded sharegpt_quantiles.json>");
  return table;
}

}  // namespace fdc::traces
