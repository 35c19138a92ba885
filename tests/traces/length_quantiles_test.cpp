// The embedded ShareGPT quantile table: recomputed from the shared CSV it must equal the committed
// and embedded one, and sampling it must reproduce the CSV's length statistics.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/test_paths.h"
#include "tests/traces/input_error.h"
#include "traces/length_quantiles.h"

using fdc::Json;
using fdc::test::contains;
using fdc::test::input_error_text;
using namespace fdc::traces;

namespace {

const char* kShareGpt = "data/traces/sharegpt_8k_filtered_stats_llama2_tokenizer.csv";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Type-7 percentile of a sample (the same definition the table uses).
double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const size_t i = static_cast<size_t>(pos);
  if (i + 1 >= v.size()) return v.back();
  return v[i] + (v[i + 1] - v[i]) * (pos - static_cast<double>(i));
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

TEST_CASE("quantiles are exact type-7 interpolations rounded to 0.1 token") {
  const Json prov = Json::object();
  QuantileTableOptions o{5, 3, 1, 4};
  std::vector<LengthPair> rows = {{5, 2}, {1, 1}, {3, 10}, {2, 4}, {4, 1}};
  Json t = build_quantile_table(rows, o, prov);
  CHECK(t["prompt_tokens"] == Json::parse("[1, 2, 3, 4, 5]"));
  CHECK(t["output_tokens"] == Json::parse("[1, 2, 10]"));
  // One bin holding all outputs sorted: 1, 1, 2, 4, 10 at p = 0, 1/3, 2/3, 1: positions 0, 4/3, 8/3, 4.
  CHECK(t["output_tokens_given_prompt_bin"] == Json::parse("[[1, 1.3, 3.3, 10]]"));
  CHECK(t["rows"] == 5);

  // Bins split the rows sorted by (prompt, output) into equal counts: prompts 1,2 | 3,4,5.
  o.prompt_bins = 2;
  o.conditional_levels = 2;
  t = build_quantile_table(rows, o, prov);
  CHECK(t["output_tokens_given_prompt_bin"] == Json::parse("[[1, 4], [1, 10]]"));

  // Half-up rounding of x.x5: values 1, 2 at p = 0.25 -> 1.25 -> 1.3.
  t = build_quantile_table({{1, 1}, {2, 1}}, QuantileTableOptions{5, 2, 1, 2}, prov);
  CHECK(t["prompt_tokens"] == Json::parse("[1, 1.3, 1.5, 1.8, 2]"));
}

TEST_CASE("the embedded table is the committed file, recomputable from the shared ShareGPT CSV") {
  const std::string committed = read_text(fdc::test::source_path("configs/workloads/sharegpt_quantiles.json"));
  REQUIRE_FALSE(committed.empty());
  CHECK(std::string(embedded_sharegpt_quantiles_json()) == committed);

  const Json embedded = fdc::parse_json_text(committed, "sharegpt_quantiles.json");
  CHECK(embedded["provenance"]["source_file"] == "sharegpt_8k_filtered_stats_llama2_tokenizer.csv");
  CHECK(embedded["rows"] == 30731);
  CHECK(embedded["prompt_tokens"].size() == 1001);
  CHECK(embedded["output_tokens_given_prompt_bin"].size() == 10);
  CHECK(committed.size() < 100'000);

  // Recompute with the recorded provenance (it holds the creation date): identical bytes.
  const TraceTable csv = read_length_csv(fdc::test::shared_path(kShareGpt));
  const Json rebuilt = build_quantile_table(csv.rows, QuantileTableOptions{}, embedded["provenance"]);
  CHECK(rebuilt == embedded);
  CHECK(format_quantile_table(rebuilt) == committed);
}

TEST_CASE("200k samples of the embedded table match the ShareGPT CSV within 2%") {
  const TraceTable csv = read_length_csv(fdc::test::shared_path(kShareGpt));
  std::vector<double> csv_prompt, csv_output;
  for (const auto& r : csv.rows) {
    csv_prompt.push_back(r.prompt_tokens);
    csv_output.push_back(r.output_tokens);
  }
  const LengthQuantiles& table = embedded_sharegpt_quantiles();
  fdc::Rng rng = fdc::make_rng(2024, fdc::RngStream::kLengths);
  std::vector<double> prompt, output;
  for (int i = 0; i < 200'000; ++i) {
    LengthPair p = table.sample(rng);
    REQUIRE(p.prompt_tokens >= 1);
    REQUIRE(p.output_tokens >= 1);
    prompt.push_back(p.prompt_tokens);
    output.push_back(p.output_tokens);
  }
  CHECK(mean(prompt) == doctest::Approx(mean(csv_prompt)).epsilon(0.02));
  CHECK(mean(output) == doctest::Approx(mean(csv_output)).epsilon(0.02));
  for (double p : {0.5, 0.9, 0.99}) {
    CAPTURE(p);
    CHECK(percentile(prompt, p) == doctest::Approx(percentile(csv_prompt, p)).epsilon(0.02));
    CHECK(percentile(output, p) == doctest::Approx(percentile(csv_output, p)).epsilon(0.02));
  }
  // The joint shape: mean output of short prompts (below the CSV median) and of long ones.
  const double median = percentile(csv_prompt, 0.5);
  auto split_means = [&](const std::vector<double>& pr, const std::vector<double>& out) {
    double s[2] = {0, 0}, n[2] = {0, 0};
    for (size_t i = 0; i < pr.size(); ++i) {
      const int k = pr[i] <= median ? 0 : 1;
      s[k] += out[i];
      n[k] += 1;
    }
    return std::pair<double, double>{s[0] / n[0], s[1] / n[1]};
  };
  auto [csv_short, csv_long] = split_means(csv_prompt, csv_output);
  auto [smp_short, smp_long] = split_means(prompt, output);
  CHECK(smp_short == doctest::Approx(csv_short).epsilon(0.03));
  CHECK(smp_long == doctest::Approx(csv_long).epsilon(0.03));
}

TEST_CASE("inverse CDF interpolates linearly between levels") {
  const std::vector<double> q = {10, 20, 40};
  CHECK(interpolate_quantile(q, 0.0) == 10.0);
  CHECK(interpolate_quantile(q, 0.25) == 15.0);
  CHECK(interpolate_quantile(q, 0.75) == 30.0);
  CHECK(interpolate_quantile(q, 1.0) == 40.0);
}

TEST_CASE("quantile table files are validated") {
  Json good = Json::parse(R"({"format": "fdcsim-length-quantiles-1", "provenance": {}, "rows": 3,
    "prompt_tokens": [1, 5], "output_tokens": [2, 3], "output_tokens_given_prompt_bin": [[2, 3]]})");
  LengthQuantiles q = LengthQuantiles::from_json(good, "t.json");
  fdc::Rng rng(1);
  for (int i = 0; i < 100; ++i) {
    LengthPair p = q.sample(rng);
    CHECK(p.prompt_tokens >= 1);
    CHECK(p.prompt_tokens <= 5);
    CHECK(p.output_tokens >= 2);
    CHECK(p.output_tokens <= 3);
  }

  Json bad = good;
  bad["prompt_tokens"] = Json::parse("[1, 5, 4]");
  CHECK(contains(input_error_text([&] { LengthQuantiles::from_json(bad, "t.json"); }),
                 "t.json: /prompt_tokens/2: quantiles must be non-decreasing, found 4 after 5"));
  bad = good;
  bad["output_tokens_given_prompt_bin"] = Json::parse("[[2, -1]]");
  CHECK(contains(input_error_text([&] { LengthQuantiles::from_json(bad, "t.json"); }),
                 "t.json: /output_tokens_given_prompt_bin/0/1: expected a number >= 0, found the number -1"));
  bad = good;
  bad["format"] = "v2";
  CHECK(contains(input_error_text([&] { LengthQuantiles::from_json(bad, "t.json"); }),
                 "t.json: /format: expected \"fdcsim-length-quantiles-1\", found \"v2\""));
  bad = good;
  bad["prompt_quantiles"] = Json::array();
  CHECK(contains(input_error_text([&] { LengthQuantiles::from_json(bad, "t.json"); }),
                 "t.json: /prompt_quantiles: unknown key"));
  bad = good;
  bad["prompt_tokens"] = Json::parse("[7]");
  CHECK(contains(input_error_text([&] { LengthQuantiles::from_json(bad, "t.json"); }),
                 "t.json: /prompt_tokens: expected an array of at least 2 quantiles"));
}
