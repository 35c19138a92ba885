// Trace readers on the real traces in ../shared/data/traces and on small broken files.
#include <doctest/doctest.h>

#include "tests/test_paths.h"
#include "tests/traces/input_error.h"
#include "tests/traces/temp_file.h"
#include "traces/trace_table.h"

using fdc::test::contains;
using fdc::test::input_error_text;
using fdc::test::shared_path;
using fdc::test::TempFile;
using namespace fdc::traces;

namespace {
int64_t sum_prompt(const TraceTable& t) {
  int64_t s = 0;
  for (const auto& r : t.rows) s += r.prompt_tokens;
  return s;
}
}  // namespace

TEST_CASE("length CSV readers read every row of the shared Vidur/Etalon traces") {
  struct Case {
    const char* file;
    size_t rows;
    int32_t first_prompt, first_output, last_prompt, last_output;
  };
  const Case cases[] = {
      {"sharegpt_8k_filtered_stats_llama2_tokenizer.csv", 30731, 74, 918, 2285, 363},
      {"arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", 28257, 3772, 54, 3178, 313},
      {"bwb_stats_llama2_tokenizer_filtered_v2.csv", 33768, 1047, 1368, 622, 959},
  };
  for (const auto& c : cases) {
    CAPTURE(c.file);
    TraceTable t = read_length_csv(shared_path(std::string("data/traces/") + c.file));
    CHECK(t.rows.size() == c.rows);
    CHECK_FALSE(t.has_timestamps());
    CHECK(t.rows.front().prompt_tokens == c.first_prompt);
    CHECK(t.rows.front().output_tokens == c.first_output);
    CHECK(t.rows.back().prompt_tokens == c.last_prompt);
    CHECK(t.rows.back().output_tokens == c.last_output);
  }
}

TEST_CASE("Azure readers read every row and timestamp of the shared traces") {
  // The files have CRLF line ends and no final newline: conv 19,367 lines = header + 19,366 rows.
  TraceTable conv = read_azure_csv(shared_path("data/traces/AzureLLMInferenceTrace_conv_2023.csv"));
  CHECK(conv.rows.size() == 19366);
  REQUIRE(conv.timestamps_ns.size() == 19366);
  CHECK(conv.rows.front().prompt_tokens == 374);
  CHECK(conv.rows.front().output_tokens == 44);
  CHECK(conv.rows.back().prompt_tokens == 197);
  CHECK(conv.rows.back().output_tokens == 183);
  // 2023-11-16 18:15:46.6805900 -> 18:15:50.9951690: 4.314579 s.
  CHECK(conv.timestamps_ns[1] - conv.timestamps_ns[0] == 4'314'579'000);

  TraceTable code = read_azure_csv(shared_path("data/traces/AzureLLMInferenceTrace_code_2023.csv"));
  CHECK(code.rows.size() == 8819);
  CHECK(code.rows.front().prompt_tokens == 4808);
  CHECK(code.rows.front().output_tokens == 10);
  CHECK(code.rows.back().prompt_tokens == 549);
  CHECK(code.rows.back().output_tokens == 173);
  CHECK(code.timestamps_ns[1] - code.timestamps_ns[0] == 52'000'000);  // 03.9799600 -> 04.0319600
  // About an hour of trace.
  const double span_s = static_cast<double>(code.timestamps_ns.back() - code.timestamps_ns.front()) * 1e-9;
  CHECK(span_s > 3000.0);
  CHECK(span_s < 3700.0);
  CHECK(sum_prompt(code) > 0);
}

TEST_CASE("timestamps parse to exact nanoseconds") {
  CHECK(parse_timestamp_ns("1970-01-01 00:00:00") == 0);
  CHECK(parse_timestamp_ns("1970-01-01 00:00:01.5") == 1'500'000'000);
  CHECK(parse_timestamp_ns("1970-01-02 00:00:00.000000001") == 86'400'000'000'001);
  CHECK(parse_timestamp_ns("2023-11-16 18:15:46.6805900") == 1'700'158'546'680'590'000);
  CHECK(parse_timestamp_ns("2024-02-29T12:00:00") == 1'709'208'000'000'000'000);
  CHECK_FALSE(parse_timestamp_ns("2023-02-29 00:00:00").has_value());  // not a leap year
  CHECK_FALSE(parse_timestamp_ns("2023-13-01 00:00:00").has_value());
  CHECK_FALSE(parse_timestamp_ns("2023-11-16 24:00:00").has_value());
  CHECK_FALSE(parse_timestamp_ns("2023-11-16 18:15:46.").has_value());
  CHECK_FALSE(parse_timestamp_ns("2023-11-16 18:15:46.1234567890").has_value());
  CHECK_FALSE(parse_timestamp_ns("2023/11/16 18:15:46").has_value());
  CHECK_FALSE(parse_timestamp_ns("1700158546").has_value());
  CHECK_FALSE(parse_timestamp_ns("").has_value());
}

TEST_CASE("length CSV: optional columns, CRLF, blank lines, quoting") {
  TempFile f("ok.csv", "num_decode_tokens,num_prefill_tokens\r\n5,10\r\n\r\n\"7\", 3\r\n");
  TraceTable t = read_length_csv(f.path());
  REQUIRE(t.rows.size() == 2);
  CHECK(t.rows[0].prompt_tokens == 10);
  CHECK(t.rows[0].output_tokens == 5);
  CHECK(t.rows[1].prompt_tokens == 3);
  CHECK(t.rows[1].output_tokens == 7);
}

TEST_CASE("length CSV errors name the file, the line, what was expected and what was found") {
  const std::string header = "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n";
  SUBCASE("missing file") {
    std::string e = input_error_text([] { read_length_csv("/nonexistent/dir/lengths.csv"); });
    CHECK(contains(e, "/nonexistent/dir/lengths.csv: cannot open"));
  }
  SUBCASE("empty file") {
    TempFile f("empty.csv", "");
    std::string e = input_error_text([&] { read_length_csv(f.path()); });
    CHECK(contains(e, f.path() + ": the file is empty"));
  }
  SUBCASE("header only") {
    TempFile f("header.csv", header);
    CHECK(contains(input_error_text([&] { read_length_csv(f.path()); }), f.path() + ": no data rows"));
  }
  SUBCASE("unknown column") {
    TempFile f("unknown.csv", "num_prefill_tokens,num_decode_tokens,foo\n1,2,3\n");
    std::string e = input_error_text([&] { read_length_csv(f.path()); });
    CHECK(contains(e, f.path() + ":1: header: unknown column 'foo'"));
  }
  SUBCASE("missing column") {
    TempFile f("missing.csv", "num_prefill_tokens,num_total_tokens\n1,2\n");
    std::string e = input_error_text([&] { read_length_csv(f.path()); });
    CHECK(contains(e, f.path() + ":1: header: missing column 'num_decode_tokens'"));
  }
  SUBCASE("non-integer tokens") {
    TempFile f("nonint.csv", header + "10,20,30,0.5\n10,2x,12,5\n");
    std::string e = input_error_text([&] { read_length_csv(f.path()); });
    CHECK(contains(e, f.path() + ":3: column 'num_decode_tokens': expected an integer token count >= 1, found \"2x\""));
  }
  SUBCASE("zero tokens") {
    TempFile f("zero.csv", header + "0,20,20,0\n");
    std::string e = input_error_text([&] { read_length_csv(f.path()); });
    CHECK(contains(e, f.path() + ":2: column 'num_prefill_tokens': expected an integer token count >= 1, found \"0\""));
  }
  SUBCASE("negative tokens") {
    TempFile f("neg.csv", header + "10,-4,6,1\n");
    CHECK(contains(input_error_text([&] { read_length_csv(f.path()); }), ":2: column 'num_decode_tokens'"));
  }
  SUBCASE("too large") {
    TempFile f("big.csv", "num_prefill_tokens,num_decode_tokens\n3000000000,1\n");
    CHECK(contains(input_error_text([&] { read_length_csv(f.path()); }), "found \"3000000000\""));
  }
  SUBCASE("empty field") {
    TempFile f("emptyfield.csv", header + "10,,10,1\n");
    CHECK(contains(input_error_text([&] { read_length_csv(f.path()); }),
                   ":2: column 'num_decode_tokens': expected an integer token count >= 1, found an empty field"));
  }
  SUBCASE("wrong column count") {
    TempFile f("count.csv", header + "10,20,30,0.5\n10,20,30\n");
    std::string e = input_error_text([&] { read_length_csv(f.path()); });
    CHECK(contains(e, f.path() + ":3: expected 4 comma-separated fields"));
    CHECK(contains(e, "found 3"));
  }
  SUBCASE("inconsistent total") {
    TempFile f("total.csv", header + "10,20,31,0.5\n");
    CHECK(contains(input_error_text([&] { read_length_csv(f.path()); }),
                   ":2: column 'num_total_tokens': expected 10 + 20 = 30, found 31"));
  }
  SUBCASE("unterminated quote") {
    TempFile f("quote.csv", header + "\"10,20,30,1\n");
    CHECK(contains(input_error_text([&] { read_length_csv(f.path()); }), ":2: unterminated quote"));
  }
}

TEST_CASE("Azure CSV errors") {
  const std::string header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  SUBCASE("bad timestamp") {
    TempFile f("ts.csv", header + "2023-11-16 18:15:46.6805900,10,20\n2023-11-16 25:00:00,10,20\n");
    std::string e = input_error_text([&] { read_azure_csv(f.path()); });
    CHECK(contains(e, f.path() + ":3: column 'TIMESTAMP': expected a time like \"2023-11-16 18:15:46.6805900\", found "
                                 "\"2023-11-16 25:00:00\""));
  }
  SUBCASE("timestamps out of order are rejected") {
    TempFile f("order.csv",
               header + "2023-11-16 18:15:46.5,10,20\n2023-11-16 18:15:46.5,1,2\n2023-11-16 18:15:46.4,10,20\n");
    std::string e = input_error_text([&] { read_azure_csv(f.path()); });
    CHECK(contains(e, f.path() + ":4: timestamps must be non-decreasing"));
    CHECK(contains(e, "\"2023-11-16 18:15:46.4\", earlier than \"2023-11-16 18:15:46.5\" on line 3"));
  }
  SUBCASE("length-CSV header given to the Azure reader") {
    TempFile f("wrong.csv", "num_prefill_tokens,num_decode_tokens\n1,2\n");
    CHECK(contains(input_error_text([&] { read_azure_csv(f.path()); }),
                   ":1: header: unknown column 'num_prefill_tokens'"));
  }
  SUBCASE("zero generated tokens") {
    TempFile f("zero.csv", header + "2023-11-16 18:15:46.5,10,0\n");
    CHECK(contains(input_error_text([&] { read_azure_csv(f.path()); }), ":2: column 'GeneratedTokens'"));
  }
  SUBCASE("equal timestamps are fine") {
    TempFile f("eq.csv", header + "2023-11-16 18:15:46.5,10,20\n2023-11-16 18:15:46.5,11,21");
    TraceTable t = read_azure_csv(f.path());
    REQUIRE(t.rows.size() == 2);
    CHECK(t.timestamps_ns[0] == t.timestamps_ns[1]);
    CHECK(t.rows[1].output_tokens == 21);
  }
}

TEST_CASE("generic CSV with a column mapping") {
  TempFile f("generic.csv",
             "user,t,input_len,output_len\n"
             "\"a, b\",0.25,100,7\n"
             "c,0.5,200,8\n"
             "d,1.75,300,9\n");
  GenericColumns cols{"input_len", "output_len", std::string("t")};
  TraceTable t = read_generic_trace(f.path(), GenericFormat::kCsv, cols);
  REQUIRE(t.rows.size() == 3);
  CHECK(t.rows[2].prompt_tokens == 300);
  CHECK(t.rows[2].output_tokens == 9);
  REQUIRE(t.timestamps_ns.size() == 3);
  CHECK(t.timestamps_ns[0] == 250'000'000);
  CHECK(t.timestamps_ns[2] == 1'750'000'000);

  TraceTable no_time = read_generic_trace(f.path(), GenericFormat::kCsv, {"input_len", "output_len", std::nullopt});
  CHECK_FALSE(no_time.has_timestamps());

  std::string e = input_error_text([&] {
    read_generic_trace(f.path(), GenericFormat::kCsv, {"prompt", "output_len", std::nullopt});
  });
  CHECK(contains(e, f.path() + ":1: header: missing column 'prompt' named in the column mapping"));

  TempFile bad("generic_bad.csv", "t,p,o\n0.1,1,1\nsoon,1,1\n");
  e = input_error_text([&] { read_generic_trace(bad.path(), GenericFormat::kCsv, {"p", "o", std::string("t")}); });
  CHECK(contains(e, bad.path() + ":3: column 't': expected an arrival time in seconds (a number), found \"soon\""));

  TempFile backwards("generic_back.csv", "t,p,o\n2,1,1\n1,1,1\n");
  e = input_error_text([&] {
    read_generic_trace(backwards.path(), GenericFormat::kCsv, {"p", "o", std::string("t")});
  });
  CHECK(contains(e, backwards.path() + ":3: timestamps must be non-decreasing"));
}

TEST_CASE("generic JSON lines with a column mapping") {
  TempFile f("generic.jsonl",
             "{\"prompt\": 12, \"completion\": 3, \"ts\": 10.0, \"extra\": [1, 2]}\n"
             "\n"
             "{\"prompt\": 40, \"completion\": 5.0, \"ts\": 10.5}\n");
  GenericColumns cols{"prompt", "completion", std::string("ts")};
  TraceTable t = read_generic_trace(f.path(), GenericFormat::kJsonl, cols);
  REQUIRE(t.rows.size() == 2);
  CHECK(t.rows[1].prompt_tokens == 40);
  CHECK(t.rows[1].output_tokens == 5);
  CHECK(t.timestamps_ns[1] - t.timestamps_ns[0] == 500'000'000);

  SUBCASE("missing key") {
    TempFile g("missing.jsonl", "{\"prompt\": 12, \"completion\": 3, \"ts\": 1}\n{\"prompt\": 12, \"ts\": 2}\n");
    CHECK(contains(input_error_text([&] { read_generic_trace(g.path(), GenericFormat::kJsonl, cols); }),
                   g.path() + ":2: key 'completion' (named in the column mapping) is missing"));
  }
  SUBCASE("not JSON") {
    TempFile g("notjson.jsonl", "{\"prompt\": 12, \"completion\": 3, \"ts\": 1}\nprompt=12\n");
    CHECK(contains(input_error_text([&] { read_generic_trace(g.path(), GenericFormat::kJsonl, cols); }),
                   g.path() + ":2: expected one JSON object per line, found text that is not JSON"));
  }
  SUBCASE("not an object") {
    TempFile g("array.jsonl", "[12, 3, 1]\n");
    CHECK(contains(input_error_text([&] { read_generic_trace(g.path(), GenericFormat::kJsonl, cols); }),
                   g.path() + ":1: expected one JSON object per line, found [12,3,1]"));
  }
  SUBCASE("fractional and string tokens") {
    TempFile g("frac.jsonl", "{\"prompt\": 12.5, \"completion\": 3, \"ts\": 1}\n");
    CHECK(contains(input_error_text([&] { read_generic_trace(g.path(), GenericFormat::kJsonl, cols); }),
                   g.path() + ":1: key 'prompt': expected an integer token count >= 1, found the number 12.5"));
    TempFile h("str.jsonl", "{\"prompt\": \"12\", \"completion\": 3, \"ts\": 1}\n");
    CHECK(contains(input_error_text([&] { read_generic_trace(h.path(), GenericFormat::kJsonl, cols); }),
                   "found the string \"12\""));
  }
  SUBCASE("empty file") {
    TempFile g("empty.jsonl", "");
    CHECK(contains(input_error_text([&] { read_generic_trace(g.path(), GenericFormat::kJsonl, cols); }),
                   g.path() + ": the file is empty"));
  }
}
