#include <doctest/doctest.h>

#include "core/config.h"
#include "core/error.h"
#include "tests/input_error.h"

using namespace fdc;
using test::input_error_of;

TEST_CASE("ConfigNode reads typed values, records defaults and rejects unknown keys") {
  Json in = {{"a", 3}, {"b", 0.5}, {"s", "x"}, {"child", {{"k", true}}}};
  Json resolved;
  ConfigNode n(in, "cfg.json", "", resolved);
  CHECK(n.get<int>("a") == 3);
  CHECK(n.get<double>("b", Bounds::fraction()) == 0.5);
  CHECK(n.get_or<int>("missing", 7) == 7);
  CHECK(n.get<std::string>("s") == "x");
  ConfigNode c = n.child("child");
  CHECK(c.get<bool>("k"));
  c.finish();
  n.finish();
  CHECK(resolved["missing"] == 7);
  CHECK(resolved["child"]["k"] == true);

  Json extra = {{"a", 1}, {"typo", 2}};
  Json r2;
  ConfigNode m(extra, "cfg.json", "/x", r2);
  m.get<int>("a");
  std::string msg = input_error_of([&] { m.finish(); });
  CHECK(msg.find("cfg.json: /x/typo: unknown key") != std::string::npos);
}

TEST_CASE("ConfigNode errors name file, path, expectation and what was found") {
  Json in = {{"rate", -3}, {"name", 5}, {"n", 2.5}};
  Json r;
  ConfigNode n(in, "exp.json", "/workload", r);
  CHECK(input_error_of([&] { n.get<double>("rate", Bounds::positive()); }) ==
        "exp.json: /workload/rate: expected a number > 0, found the number -3");
  CHECK(input_error_of([&] { n.get<std::string>("name"); }) ==
        "exp.json: /workload/name: expected a string, found the number 5");
  CHECK(input_error_of([&] { n.get<int>("n"); }) == "exp.json: /workload/n: expected an integer, found the number 2.5");
  CHECK(input_error_of([&] { n.get<int>("absent"); }).find("the key is missing") != std::string::npos);
  CHECK(input_error_of([&] { n.get<uint64_t>("rate"); }).find("expected an integer") != std::string::npos);
}

TEST_CASE("--set overrides create paths, parse JSON values and reject bad forms") {
  Json root = {{"scheduler", {{"max_num_seqs", 4}}}, {"name", "x"}};
  apply_override(root, "scheduler.max_num_seqs=128");
  apply_override(root, "scheduler.chunked_prefill=true");
  apply_override(root, "workload.arrival.process=poisson");
  CHECK(root["scheduler"]["max_num_seqs"] == 128);
  CHECK(root["scheduler"]["chunked_prefill"] == true);
  CHECK(root["workload"]["arrival"]["process"] == "poisson");
  CHECK(input_error_of([&] { apply_override(root, "novalue"); }).find("expected key=value") != std::string::npos);
  CHECK(input_error_of([&] { apply_override(root, "name.x=1"); }).find("not an object") != std::string::npos);
}

TEST_CASE("JSON syntax errors give file:line:column") {
  std::string msg = input_error_of([] { parse_json_text("{\n  \"a\": 1,\n  \"b\": ]\n}", "bad.json"); });
  CHECK(msg.rfind("bad.json:3:", 0) == 0);
  CHECK(input_error_of([] { load_json_file("/nonexistent/x.json"); }) ==
        "/nonexistent/x.json: cannot open file for reading");
}
