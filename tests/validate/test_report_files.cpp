// The files of a validation report besides validation.json: requests.csv and the request CDFs.
#include <doctest/doctest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "sim/timeline.h"
#include "validate/compare.h"
#include "validate/report_files.h"

using namespace fdc;

namespace {
constexpr int64_t kMs = 1000000;

// A completed request: arrival, then its tokens at the given times (ms).
sim::RequestRecord request(uint64_t id, int64_t arrival_ms, std::vector<int64_t> token_ms, int32_t preemptions = 0) {
  sim::RequestRecord r;
  r.id = id;
  r.completed = true;
  r.arrival_ns = arrival_ms * kMs;
  r.prompt = 100 + static_cast<int32_t>(id);
  r.output = static_cast<int32_t>(token_ms.size());
  r.first_scheduled_ns = r.arrival_ns;
  for (int64_t t : token_ms) r.token_ns.push_back(t * kMs);
  r.preemptions = preemptions;
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> cells_of(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("requests.csv: one row per request id of either run, empty cells where a run did not complete it") {
  sim::Timeline measured, predicted;
  measured.requests = {request(2, 0, {100, 150, 200}, 1), request(1, 10, {60})};
  sim::RequestRecord rejected;
  rejected.id = 3;
  rejected.reason = "prompt does not fit";
  rejected.prompt = 9000;
  rejected.output = 5;
  measured.requests.push_back(rejected);
  predicted.requests = {request(1, 10, {70}), request(2, 0, {110, 170, 230}), request(4, 30, {90, 95})};

  std::ostringstream os;
  validate::write_requests_csv(os, measured, predicted);
  const auto lines = lines_of(os.str());
  REQUIRE(lines.size() == 5);  // header and ids 1, 2, 3, 4
  const auto header = cells_of(lines[0]);
  REQUIRE(header.size() == 14);
  CHECK(header[0] == "id");
  CHECK(header[6] == "measured_ttft_ms");
  CHECK(header[13] == "predicted_preemptions");
  for (const auto& l : lines) CHECK(cells_of(l).size() == 14);

  const auto r1 = cells_of(lines[1]);
  CHECK(r1[0] == "1");
  CHECK(r1[1] == "101");
  CHECK(r1[2] == "1");
  CHECK(r1[6] == "50.000");  // TTFT: 60 - 10 ms
  CHECK(r1[7] == "60.000");
  CHECK(r1[8] == "0.000");  // one output token: TPOT 0, as the SLO counts it
  CHECK(r1[10] == "50.000");

  const auto r2 = cells_of(lines[2]);
  CHECK(r2[0] == "2");
  CHECK(r2[6] == "100.000");
  CHECK(r2[7] == "110.000");
  CHECK(r2[8] == "50.000");  // (200 - 100) / 2
  CHECK(r2[9] == "60.000");
  CHECK(r2[10] == "200.000");
  CHECK(r2[11] == "230.000");
  CHECK(r2[12] == "1");
  CHECK(r2[13] == "0");

  const auto r3 = cells_of(lines[3]);  // rejected in the measured run, absent from the prediction
  CHECK(r3[0] == "3");
  CHECK(r3[1] == "9000");
  CHECK(r3[4] == "0");
  CHECK(r3[5] == "0");
  for (size_t i = 6; i < 12; ++i) CHECK(r3[i].empty());
  CHECK(r3[12] == "0");
  CHECK(r3[13].empty());

  const auto r4 = cells_of(lines[4]);  // only in the prediction
  CHECK(r4[0] == "4");
  CHECK(r4[4] == "0");
  CHECK(r4[5] == "1");
  CHECK(r4[6].empty());
  CHECK(r4[7] == "60.000");
  CHECK(r4[12].empty());
}

TEST_CASE("request_cdfs.svg: three panels, measured and predicted curves, P50 and P99 in the titles") {
  sim::Timeline measured, predicted;
  for (uint64_t i = 0; i < 100; ++i) {
    const auto a = static_cast<int64_t>(i) * 10;
    measured.requests.push_back(request(i, a, {a + 100, a + 150, a + 200}));
    predicted.requests.push_back(request(i, a, {a + 110, a + 170, a + 230}));
  }
  std::ostringstream os;
  validate::write_request_cdfs_svg(os, validate::request_samples(measured), validate::request_samples(predicted));
  const std::string svg = os.str();
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.size() > 7);
  CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
  CHECK(count(svg, "<polyline") == 6);
  for (const char* title : {">TTFT<", ">TBT (every gap)<", ">JCT<"}) CHECK(count(svg, title) == 1);
  CHECK(count(svg, "100 measured, 100 predicted requests; P50 and P99: measured / predicted") == 1);
  // Every TTFT is 100 ms measured and 110 ms predicted; every JCT 200 and 230 ms.
  CHECK(count(svg, "P50 100.0 ms / 110.0 ms (+10.0%)") == 1);
  CHECK(count(svg, "P99 100.0 ms / 110.0 ms (+10.0%)") == 1);
  CHECK(count(svg, "P50 200.0 ms / 230.0 ms (+15.0%)") == 1);
  CHECK(count(svg, "no completed requests") == 0);
}

TEST_CASE("request_cdfs.svg: many samples are drawn at a bounded number of points; no samples say so") {
  sim::Timeline measured, predicted;
  std::vector<int64_t> tokens;
  for (int64_t t = 1; t <= 5000; ++t) tokens.push_back(100 + t * 3 + (t % 7));
  measured.requests.push_back(request(1, 0, tokens));
  std::ostringstream os;
  validate::write_request_cdfs_svg(os, validate::request_samples(measured), validate::request_samples(predicted));
  const std::string svg = os.str();
  // TTFT, TBT and JCT of the measured run; the prediction has no completed request.
  CHECK(count(svg, "<polyline") == 3);
  const size_t tbt = svg.find(">TBT (every gap)<");
  REQUIRE(tbt != std::string::npos);
  const size_t points = svg.find("points=\"", tbt);
  REQUIRE(points != std::string::npos);
  const std::string pts = svg.substr(points, svg.find('"', points + 8) - points);
  CHECK(count(pts, ",") <= 2000);  // 4999 gaps drawn as at most 1000 steps of two points
  CHECK(count(pts, ",") >= 1000);

  std::ostringstream empty;
  validate::write_request_cdfs_svg(empty, validate::request_samples(sim::Timeline{}),
                                   validate::request_samples(sim::Timeline{}));
  CHECK(count(empty.str(), "no completed requests") == 3);
  CHECK(count(empty.str(), "<polyline") == 0);
  CHECK(empty.str().substr(empty.str().size() - 7) == "</svg>\n");
}

TEST_CASE("iteration_times.svg and iterations.csv: one dot and one row per measured iteration") {
  validate::IterationErrors it;
  it.measured_s = {0.010, 0.020, 0.100};
  it.predicted_s = {0.011, 0.019, 0.100};
  it.kind = {"decode", "decode", "prefill"};
  it.seqs = {8, 9, 1};
  it.new_tokens = {8, 9, 2048};
  it.predicted_op_s.resize(3);
  it.predicted_op_s[0].fill(0.011 / costmodel::kNumOpKinds);
  it.predicted_op_s[1].fill(0.019 / costmodel::kNumOpKinds);
  it.predicted_op_s[2].fill(0.100 / costmodel::kNumOpKinds);
  it.all = validate::error_stats({0.1, -0.05, 0.0});

  std::ostringstream svg;
  validate::write_iteration_scatter_svg(svg, it);
  CHECK(count(svg.str(), "<circle") == 3);
  CHECK(count(svg.str(), "fill=\"#d62728\" fill-opacity") == 1);  // the prefill
  CHECK(count(svg.str(), "3 iterations; |error| median 5.00%, P90 9.00%") == 1);
  CHECK(count(svg.str(), ">20 ms<") == 2);  // a tick on each axis

  std::ostringstream csv;
  validate::write_iterations_csv(csv, it);
  const auto lines = lines_of(csv.str());
  REQUIRE(lines.size() == 4);
  CHECK(cells_of(lines[0]).size() == 7 + static_cast<size_t>(costmodel::kNumOpKinds));
  const auto last = cells_of(lines[3]);
  CHECK(last[1] == "prefill");
  CHECK(last[3] == "2048");
  CHECK(last[4] == "100.000000");
  CHECK(last[6] == "0.000000");
}
