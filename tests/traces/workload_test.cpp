// make_request_source: config keys, the sources and processes they select, and config errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "tests/test_paths.h"
#include "tests/traces/input_error.h"
#include "tests/traces/temp_file.h"
#include "traces/workload.h"

using fdc::Json;
using fdc::test::contains;
using fdc::test::input_error_text;
using fdc::test::TempFile;
using namespace fdc::traces;

namespace {

// Builds a source from the JSON text of a "workload" object, as read from "cfg.json".
struct Built {
  Json config;
  Json resolved;
  std::unique_ptr<RequestSource> source;
};

std::unique_ptr<Built> build(const std::string& workload_json, uint64_t seed = 1, const std::string& base_dir = "") {
  auto b = std::make_unique<Built>();
  b->config = fdc::parse_json_text(workload_json, "cfg.json");
  fdc::ConfigNode node(b->config, "cfg.json", "/workload", b->resolved);
  b->source = make_request_source(node, seed, base_dir);
  return b;
}

std::vector<RequestSpec> drain(RequestSource& s) {
  std::vector<RequestSpec> out;
  while (auto r = s.next()) out.push_back(*r);
  CHECK_FALSE(s.next().has_value());  // stays exhausted
  return out;
}

std::string error_of(const std::string& workload_json, const std::string& base_dir = "") {
  return input_error_text([&] { build(workload_json, 1, base_dir); });
}

bool same(const std::vector<RequestSpec>& a, const std::vector<RequestSpec>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].arrival != b[i].arrival || a[i].prompt_tokens != b[i].prompt_tokens ||
        a[i].output_tokens != b[i].output_tokens)
      return false;
  }
  return true;
}

const std::string kShared = FDCSIM_SHARED_DIR "/data/traces";

}  // namespace

TEST_CASE("default lengths: the embedded ShareGPT table, poisson arrivals") {
  auto b = build(R"({"num_requests": 1000, "arrival": {"process": "poisson", "rate_per_s": 12.5}})");
  CHECK(b->source->describe() == "sharegpt (embedded quantiles), poisson 12.5 req/s, 1000 requests");
  auto reqs = drain(*b->source);
  REQUIRE(reqs.size() == 1000);
  for (size_t i = 0; i < reqs.size(); ++i) {
    CHECK(reqs[i].id == i);
    CHECK(reqs[i].prompt_tokens >= 1);
    CHECK(reqs[i].output_tokens >= 1);
    if (i) CHECK(reqs[i].arrival >= reqs[i - 1].arrival);
  }
  CHECK(reqs[0].arrival == fdc::Nanos::zero());
  // 999 gaps of mean 80 ms: about 80 s (standard deviation 2.5 s).
  CHECK(reqs.back().arrival.seconds() == doctest::Approx(79.9).epsilon(0.1));
  // Defaults are recorded in the resolved config.
  CHECK(b->resolved["lengths"]["source"] == "sharegpt_embedded");
  CHECK(b->resolved["num_requests"] == 1000);
}

TEST_CASE("same seed gives an identical sequence; another seed a different one") {
  const std::string cfg = R"({"num_requests": 2000, "arrival": {"process": "gamma", "rate_per_s": 4, "cv": 2}})";
  auto a = drain(*build(cfg, 42)->source);
  auto b = drain(*build(cfg, 42)->source);
  auto c = drain(*build(cfg, 43)->source);
  CHECK(same(a, b));
  CHECK_FALSE(same(a, c));
  // Arrival and length streams are independent: a different process leaves the lengths unchanged.
  auto d = drain(*build(R"({"num_requests": 2000, "arrival": {"process": "burst"}})", 42)->source);
  bool lengths_equal = true;
  for (size_t i = 0; i < a.size(); ++i)
    lengths_equal =
        lengths_equal && a[i].prompt_tokens == d[i].prompt_tokens && a[i].output_tokens == d[i].output_tokens;
  CHECK(lengths_equal);
  CHECK(d.back().arrival == fdc::Nanos::zero());
}

TEST_CASE("fixed lengths, fixed rate") {
  auto b = build(R"({"num_requests": 3, "lengths": {"source": "fixed", "prompt_tokens": 512, "output_tokens": 128},
                     "arrival": {"process": "fixed_rate", "rate_per_s": 4}})");
  auto r = drain(*b->source);
  REQUIRE(r.size() == 3);
  CHECK(r[2].arrival == fdc::Nanos(500'000'000));
  CHECK(r[1].prompt_tokens == 512);
  CHECK(r[1].output_tokens == 128);
  CHECK(b->source->describe() == "fixed 512 prompt / 128 output tokens, fixed rate 4 req/s, 3 requests");
}

TEST_CASE("length CSV: sequential wraps around, shuffle is a permutation per pass, sample draws rows") {
  TempFile f("lengths.csv", "num_prefill_tokens,num_decode_tokens\n1,10\n2,20\n3,30\n");
  const std::string base =
      R"({"num_requests": 7, "arrival": {"process": "burst"}, "lengths": {"source": "length_csv", "path": ")" +
      f.filename() + "\"";
  auto seq = drain(*build(base + "}}", 1, f.dir())->source);
  std::vector<int> prompts;
  for (auto& r : seq) prompts.push_back(r.prompt_tokens);
  CHECK(prompts == std::vector<int>{1, 2, 3, 1, 2, 3, 1});
  CHECK(seq[4].output_tokens == 20);

  auto shuf = drain(*build(base + R"(, "order": "shuffle"}})", 1, f.dir())->source);
  std::set<int> first_pass, second_pass;
  for (int i = 0; i < 3; ++i) first_pass.insert(shuf[static_cast<size_t>(i)].prompt_tokens);
  for (int i = 3; i < 6; ++i) second_pass.insert(shuf[static_cast<size_t>(i)].prompt_tokens);
  CHECK(first_pass == std::set<int>{1, 2, 3});
  CHECK(second_pass == std::set<int>{1, 2, 3});
  for (auto& r : shuf) CHECK(r.output_tokens == 10 * r.prompt_tokens);  // rows stay whole

  auto b = build(base + R"(, "order": "sample"}})", 1, f.dir());
  CHECK(contains(b->source->describe(),
                 "lengths from " + f.filename() + " (3 rows, sample), burst (all at t=0), 7 requests"));
  for (auto& r : drain(*b->source)) CHECK(r.output_tokens == 10 * r.prompt_tokens);

  // Without num_requests a table-backed source serves each row once.
  CHECK(drain(*build(R"({"arrival": {"process": "burst"}, "lengths": {"source": "length_csv", "path": ")" + f.path() +
                     "\"}}")
                   ->source)
            .size() == 3);
}

TEST_CASE("Azure trace replay, with time_scale and a num_requests cap") {
  const std::string path = kShared + "/AzureLLMInferenceTrace_conv_2023.csv";
  auto b = build(R"({"lengths": {"source": "azure_csv", "path": ")" + path + "\"}}");
  auto all = drain(*b->source);
  CHECK(all.size() == 19366);
  CHECK(b->resolved["arrival"]["process"] == "trace");
  CHECK(b->resolved["arrival"]["time_scale"] == 1.0);
  CHECK(all[0].arrival == fdc::Nanos(0));
  CHECK(all[1].arrival == fdc::Nanos(4'314'579'000));
  CHECK(all[2].arrival == fdc::Nanos(4'541'877'000));  // 18:15:51.2224670 - 18:15:46.6805900
  CHECK(all[1].prompt_tokens == 396);
  CHECK(all[1].output_tokens == 109);

  auto fast = build(R"({"num_requests": 3, "arrival": {"process": "trace", "time_scale": 0.5},
                        "lengths": {"source": "azure_csv", "path": ")" +
                    path + "\"}}");
  auto r = drain(*fast->source);
  REQUIRE(r.size() == 3);
  CHECK(r[1].arrival == fdc::Nanos(2'157'289'500));
  CHECK(r[2].arrival == fdc::Nanos(2'270'938'500));
  CHECK(contains(fast->source->describe(), "trace timestamps x0.5 time scale, 3 requests"));

  // A trace's lengths with generated arrivals.
  auto gen = build(R"({"num_requests": 20000, "arrival": {"process": "poisson", "rate_per_s": 2},
                       "lengths": {"source": "azure_csv", "path": ")" +
                   path + "\"}}");
  auto g = drain(*gen->source);
  CHECK(g.size() == 20000);
  CHECK(g[19366].prompt_tokens == 374);  // wrapped around to the first row
}

TEST_CASE("generic traces drive lengths and arrivals") {
  TempFile f("g.jsonl", "{\"in\": 10, \"out\": 1, \"t\": 100.0}\n{\"in\": 20, \"out\": 2, \"t\": 100.25}\n");
  auto b =
      build(R"({"lengths": {"source": "generic", "path": ")" + f.path() +
            R"(", "format": "jsonl", "columns": {"prompt_tokens": "in", "output_tokens": "out", "arrival_s": "t"}}})");
  auto r = drain(*b->source);
  REQUIRE(r.size() == 2);
  CHECK(r[1].arrival == fdc::Nanos(250'000'000));
  CHECK(r[1].prompt_tokens == 20);
}

TEST_CASE("quantile table file as lengths") {
  TempFile q("q.json", R"({"format": "fdcsim-length-quantiles-1", "provenance": {}, "rows": 2,
    "prompt_tokens": [100, 100], "output_tokens": [7, 7], "output_tokens_given_prompt_bin": [[7, 7]]})");
  auto b =
      build(R"({"num_requests": 5, "arrival": {"process": "burst"}, "lengths": {"source": "quantiles", "path": ")" +
                q.filename() + "\"}}",
            1, q.dir());
  for (auto& r : drain(*b->source)) {
    CHECK(r.prompt_tokens == 100);
    CHECK(r.output_tokens == 7);
  }
}

TEST_CASE("clipping caps lengths and counts the clipped requests") {
  const std::string common = R"("num_requests": 5000, "arrival": {"process": "burst"})";
  auto unclipped = drain(*build("{" + common + "}", 9)->source);
  auto b = build("{" + common + R"(, "max_prompt_tokens": 1000, "max_output_tokens": 300})", 9);
  auto r = drain(*b->source);
  REQUIRE(r.size() == unclipped.size());
  int64_t over_prompt = 0, over_output = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    over_prompt += unclipped[i].prompt_tokens > 1000;
    over_output += unclipped[i].output_tokens > 300;
    CHECK(r[i].prompt_tokens == std::min(unclipped[i].prompt_tokens, 1000));
    CHECK(r[i].output_tokens == std::min(unclipped[i].output_tokens, 300));
  }
  // ShareGPT: many prompts exceed 1000 tokens and many outputs 300.
  CHECK(over_prompt > 1000);
  CHECK(over_output > 1000);
  const std::string d = b->source->describe();
  CHECK(contains(d, "prompts clipped to 1000 (" + std::to_string(over_prompt) + " so far)"));
  CHECK(contains(d, "outputs clipped to 300 (" + std::to_string(over_output) + " so far)"));
}

TEST_CASE("config errors name the file, the JSON path, what was expected and what was found") {
  CHECK(contains(error_of(R"({"num_requests": 10, "arrival": {"process": "poisson", "rate_per_s": -3}})"),
                 "cfg.json: /workload/arrival/rate_per_s: expected a number > 0, found the number -3"));
  CHECK(contains(error_of(R"({"num_requests": 10, "arrival": {"process": "gamma", "rate_per_s": 3, "cv": 0}})"),
                 "cfg.json: /workload/arrival/cv: expected a number > 0, found the number 0"));
  CHECK(contains(error_of(R"({"num_requests": 10, "arrival": {"process": "fixed_rate"}})"),
                 "cfg.json: /workload/arrival/rate_per_s: expected a number > 0, found nothing"));
  CHECK(contains(error_of(R"({"num_requests": 0, "arrival": {"process": "burst"}})"),
                 "cfg.json: /workload/num_requests: expected an integer >= 1, found the number 0"));
  CHECK(contains(error_of(R"({"arrival": {"process": "burst"}})"),
                 "cfg.json: /workload/num_requests: expected an integer >= 1, found nothing"));
  CHECK(contains(error_of(R"({"num_requests": 10})"), "cfg.json: /workload/arrival/process: expected one of"));
  CHECK(contains(error_of(R"({"num_requests": 10, "arrival": {"process": "uniform"}})"),
                 "cfg.json: /workload/arrival/process: expected one of \"poisson\", \"gamma\", \"fixed_rate\", "
                 "\"trace\", \"burst\", found a string (\"uniform\")"));
  CHECK(contains(error_of(R"({"num_requests": 10, "arrival": {"process": "trace"}})"),
                 "cfg.json: /workload/arrival/process: \"trace\" replays the timestamps of a trace, but cfg.json: "
                 "/workload/lengths/source \"sharegpt_embedded\" has none"));
  CHECK(contains(error_of(R"({"num_requests": 10, "arrival": {"process": "burst", "rate": 3}})"),
                 "cfg.json: /workload/arrival/rate: unknown key"));
  CHECK(contains(error_of(R"({"num_requests": 10, "num_request": 3, "arrival": {"process": "burst"}})"),
                 "cfg.json: /workload/num_request: unknown key"));
  CHECK(contains(
      error_of(
          R"({"num_requests": 10, "arrival": {"process": "burst"}, "lengths": {"source": "fixed", "prompt_tokens": 5, "output_tokens": 0}})"),
      "cfg.json: /workload/lengths/output_tokens: expected an integer >= 1, found the number 0"));
  CHECK(contains(
      error_of(
          R"({"num_requests": 10, "arrival": {"process": "burst"}, "lengths": {"source": "fixed", "prompt_tokens": 5, "output_tokens": 5, "path": "x"}})"),
      "cfg.json: /workload/lengths/path: unknown key"));
  CHECK(contains(error_of(R"({"num_requests": 10, "max_prompt_tokens": 0, "arrival": {"process": "burst"}})"),
                 "cfg.json: /workload/max_prompt_tokens: expected an integer >= 1, found the number 0"));
  CHECK(contains(
      error_of(
          R"({"num_requests": 10, "arrival": {"process": "burst"}, "lengths": {"source": "length_csv", "path": "nope.csv"}})",
          "/nonexistent"),
      "cfg.json: /workload/lengths/path: expected an existing file, found no file at \"/nonexistent/nope.csv\""));
  CHECK(contains(
      error_of(
          R"({"num_requests": 10, "arrival": {"process": "burst"}, "lengths": {"source": "length_csv", "path": "x.csv", "order": "random"}})"),
      "cfg.json: /workload/lengths/order: expected one of \"sequential\", \"shuffle\", \"sample\""));
  CHECK(
      contains(error_of(R"({"num_requests": 10, "arrival": {"process": "burst"}, "lengths": {"source": "sharegpt"}})"),
               "cfg.json: /workload/lengths/source: expected one of \"sharegpt_embedded\""));

  TempFile lengths("l.csv", "num_prefill_tokens,num_decode_tokens\n1,10\n");
  CHECK(contains(error_of(R"({"arrival": {"process": "trace"}, "lengths": {"source": "length_csv", "path": ")" +
                          lengths.path() + "\"}}"),
                 "/workload/lengths/source \"length_csv\" has none"));
  TempFile bad("bad.csv", "num_prefill_tokens,num_decode_tokens\n1,10\n1,ten\n");
  CHECK(contains(error_of(R"({"arrival": {"process": "burst"}, "lengths": {"source": "length_csv", "path": ")" +
                          bad.path() + "\"}}"),
                 bad.path() + ":3: column 'num_decode_tokens'"));
  TempFile g("g.csv", "a,b\n1,2\n");
  CHECK(contains(
      error_of(R"({"arrival": {"process": "trace"}, "lengths": {"source": "generic", "format": "csv", "path": ")" +
               g.path() + R"(", "columns": {"prompt_tokens": "a", "output_tokens": "b"}}})"),
      "/workload/lengths/source \"generic\" has none"));
  CHECK(contains(
      error_of(R"({"arrival": {"process": "burst"}, "lengths": {"source": "generic", "format": "csv", "path": ")" +
               g.path() + R"(", "columns": {"prompt_tokens": "a", "output": "b"}}})"),
      "cfg.json: /workload/lengths/columns/output_tokens: expected a string, found nothing"));
  CHECK(contains(error_of(R"({"num_requests": 20000, "lengths": {"source": "azure_csv", "path": ")" + kShared +
                          "/AzureLLMInferenceTrace_code_2023.csv\"}}"),
                 "cfg.json: /workload/num_requests: expected at most the 8819 rows of"));
}
