#include "validate/report_files.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace fdc::validate {

namespace {

const char* const kSans = "font-family=\"sans-serif\"";

// A time in seconds as a short label: "0.412 ms", "41.2 ms", "1.23 s".
std::string time_label(double s) {
  char b[32];
  if (s < 1e-3)
    std::snprintf(b, sizeof b, "%.3f ms", s * 1e3);
  else if (s < 1.0)
    std::snprintf(b, sizeof b, "%.1f ms", s * 1e3);
  else
    std::snprintf(b, sizeof b, "%.2f s", s);
  return b;
}

std::string percent_label(double measured, double predicted) {
  char b[32];
  if (measured > 0)
    std::snprintf(b, sizeof b, "%+.1f%%", 100 * (predicted / measured - 1));
  else
    std::snprintf(b, sizeof b, "n/a");
  return b;
}

// A log10 axis over [lo, hi] seconds (both > 0), mapped onto [x0, x1].
struct LogAxis {
  double l0 = 0, l1 = 1, x0 = 0, x1 = 1;
  LogAxis(double lo, double hi, double from, double to) : x0(from), x1(to) {
    l0 = std::log10(lo);
    l1 = std::log10(hi);
    if (!(l1 > l0)) l0 -= 0.5, l1 += 0.5;  // one value: a decade around it
    const double margin = 0.03 * (l1 - l0);
    l0 -= margin, l1 += margin;
  }
  double at(double v) const { return x0 + (std::log10(v) - l0) / (l1 - l0) * (x1 - x0); }
  // Ticks inside the axis at least min_gap apart: 1, 2 and 5 times the powers of ten, else the
  // powers of ten, else every second, third, ... power.
  std::vector<double> ticks(double min_gap) const {
    const double per_decade = std::abs(x1 - x0) / (l1 - l0);
    std::vector<double> mantissas = {1.0};
    if (per_decade * std::log10(2.5) >= min_gap) mantissas = {1.0, 2.0, 5.0};  // 2 -> 5, the closest pair
    const int every = std::max(1, static_cast<int>(std::ceil(min_gap / per_decade)));
    std::vector<double> t;
    for (int e = static_cast<int>(std::floor(l0)); e <= static_cast<int>(std::ceil(l1)); ++e) {
      if (e % every != 0) continue;
      for (double m : mantissas) {
        const double v = m * std::pow(10.0, e);
        if (std::log10(v) >= l0 && std::log10(v) <= l1) t.push_back(v);
      }
    }
    return t;
  }
};

// A tick's label: "20 ms", "500 ms", "2 s", "0.5 ms".
std::string tick_label(double s) {
  char b[32];
  if (s < 1.0)
    std::snprintf(b, sizeof b, "%g ms", s * 1e3);
  else
    std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

// The step CDF of sorted samples as polyline points, at most about 2 x kMaxSteps of them.
std::string cdf_points(const std::vector<double>& v, double floor_s, const LogAxis& x, double y0, double y1) {
  constexpr size_t kMaxSteps = 1000;
  const size_t n = v.size();
  const size_t steps = std::min(n, kMaxSteps);
  std::string pts;
  char b[64];
  double prev_y = y0;
  for (size_t k = 0; k < steps; ++k) {
    // The k-th drawn sample: evenly spaced ranks, the first and last always drawn.
    const size_t i = steps == 1 ? n - 1 : k * (n - 1) / (steps - 1);
    const double px = x.at(std::max(v[i], floor_s));
    const double py = y0 + (y1 - y0) * static_cast<double>(i + 1) / static_cast<double>(n);
    std::snprintf(b, sizeof b, "%.1f,%.1f %.1f,%.1f ", px, prev_y, px, py);
    pts += b;
    prev_y = py;
  }
  return pts;
}

void write_cdf_panel(std::ostream& os, const char* name, const std::vector<double>& m, const std::vector<double>& p,
                     double left, double width, double top, double height) {
  const double pad_l = 40, pad_r = 14, pad_t = 56, pad_b = 40;
  const double x0 = left + pad_l, x1 = left + width - pad_r, y_top = top + pad_t, y_bottom = top + height - pad_b;
  os << "<text x=\"" << left + width / 2 << "\" y=\"" << top + 18 << "\" text-anchor=\"middle\" " << kSans
     << " font-size=\"14\">" << name << "</text>\n";
  if (m.empty() && p.empty()) {
    os << "<text x=\"" << left + width / 2 << "\" y=\"" << top + height / 2 << "\" text-anchor=\"middle\" " << kSans
       << " font-size=\"12\">no completed requests</text>\n";
    return;
  }
  const double m50 = quantile_sorted(m, 0.5), p50 = quantile_sorted(p, 0.5);
  const double m99 = quantile_sorted(m, 0.99), p99 = quantile_sorted(p, 0.99);
  const std::pair<const char*, std::pair<double, double>> lines[] = {{"P50", {m50, p50}}, {"P99", {m99, p99}}};
  double line_y = top + 32;
  for (const auto& [q, v] : lines) {
    os << "<text x=\"" << left + width / 2 << "\" y=\"" << line_y << "\" text-anchor=\"middle\" " << kSans
       << " font-size=\"10\">" << q << " " << time_label(v.first) << " / " << time_label(v.second) << " ("
       << percent_label(v.first, v.second) << ")</text>\n";
    line_y += 12;
  }
  double lo = 0, hi = 0;
  for (const auto* v : {&m, &p})
    for (double s : *v)
      if (s > 0) lo = lo > 0 ? std::min(lo, s) : s, hi = std::max(hi, s);
  if (!(lo > 0)) lo = 1e-3, hi = 1.0;  // every sample zero: any decade shows them at its left edge
  const LogAxis x(lo, hi, x0, x1);
  os << "<rect x=\"" << x0 << "\" y=\"" << y_top << "\" width=\"" << x1 - x0 << "\" height=\"" << y_bottom - y_top
     << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double t : x.ticks(48)) {
    const double px = x.at(t);
    os << "<line x1=\"" << px << "\" y1=\"" << y_top << "\" x2=\"" << px << "\" y2=\"" << y_bottom
       << "\" stroke=\"#ddd\"/>\n"
       << "<text x=\"" << px << "\" y=\"" << y_bottom + 14 << "\" text-anchor=\"middle\" " << kSans
       << " font-size=\"9\">" << tick_label(t) << "</text>\n";
  }
  for (double q : {0.0, 0.25, 0.5, 0.75, 0.9, 1.0}) {
    const double py = y_bottom - (y_bottom - y_top) * q;
    os << "<line x1=\"" << x0 << "\" y1=\"" << py << "\" x2=\"" << x1 << "\" y2=\"" << py << "\" stroke=\"#eee\"/>\n"
       << "<text x=\"" << x0 - 4 << "\" y=\"" << py + 3 << "\" text-anchor=\"end\" " << kSans << " font-size=\"9\">"
       << q << "</text>\n";
  }
  os << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"" << y_bottom + 30 << "\" text-anchor=\"middle\" " << kSans
     << " font-size=\"10\">time (log)</text>\n";
  const std::pair<const std::vector<double>*, const char*> series[] = {
      {&m, "stroke=\"#000\""}, {&p, "stroke=\"#d62728\" stroke-dasharray=\"5 3\""}};
  for (const auto& [v, style] : series) {
    if (v->empty()) continue;
    os << "<polyline fill=\"none\" stroke-width=\"1.5\" " << style << " points=\""
       << cdf_points(*v, lo, x, y_bottom, y_top) << "\"/>\n";
  }
}

}  // namespace

void write_iterations_csv(std::ostream& os, const IterationErrors& it) {
  os << "index,kind,seqs,new_tokens,measured_ms,predicted_ms,error";
  for (int k = 0; k < costmodel::kNumOpKinds; ++k)
    os << ",pred_" << costmodel::op_name(static_cast<costmodel::OpKind>(k)) << "_ms";
  os << "\n";
  for (size_t i = 0; i < it.measured_s.size(); ++i) {
    char line[200];
    std::snprintf(line, sizeof line, "%zu,%s,%lld,%lld,%.6f,%.6f,%.6f", i, it.kind[i].c_str(),
                  static_cast<long long>(it.seqs[i]), static_cast<long long>(it.new_tokens[i]), it.measured_s[i] * 1e3,
                  it.predicted_s[i] * 1e3, it.predicted_s[i] / it.measured_s[i] - 1.0);
    os << line;
    for (double s : it.predicted_op_s[i]) {
      std::snprintf(line, sizeof line, ",%.6f", s * 1e3);
      os << line;
    }
    os << "\n";
  }
}

void write_requests_csv(std::ostream& os, const sim::Timeline& measured, const sim::Timeline& predicted) {
  std::map<uint64_t, std::pair<const sim::RequestRecord*, const sim::RequestRecord*>> by_id;
  for (const auto& r : measured.requests) by_id[r.id].first = &r;
  for (const auto& r : predicted.requests) by_id[r.id].second = &r;
  os << "id,prompt_tokens,output_tokens,arrival_s,measured_completed,predicted_completed,measured_ttft_ms,"
        "predicted_ttft_ms,measured_tpot_ms,predicted_tpot_ms,measured_jct_ms,predicted_jct_ms,measured_preemptions,"
        "predicted_preemptions\n";
  auto done = [](const sim::RequestRecord* r) { return r && r->completed && !r->token_ns.empty(); };
  auto ms = [](int64_t ns) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", static_cast<double>(ns) * 1e-6);
    return std::string(b);
  };
  for (const auto& [id, pair] : by_id) {
    const auto [m, p] = pair;
    const sim::RequestRecord& any = m ? *m : *p;
    char head[160];
    std::snprintf(head, sizeof head, "%llu,%d,%d,%.6f,%d,%d", static_cast<unsigned long long>(id), any.prompt,
                  any.output, static_cast<double>(any.arrival_ns) * 1e-9, done(m) ? 1 : 0, done(p) ? 1 : 0);
    os << head;
    auto cells = [&](auto value) {
      os << "," << (done(m) ? ms(value(*m)) : "") << "," << (done(p) ? ms(value(*p)) : "");
    };
    cells([](const sim::RequestRecord& r) { return r.token_ns.front() - r.arrival_ns; });
    cells([](const sim::RequestRecord& r) { return request_tpot_ns(r); });
    cells([](const sim::RequestRecord& r) { return r.token_ns.back() - r.arrival_ns; });
    os << "," << (m ? std::to_string(m->preemptions) : "") << "," << (p ? std::to_string(p->preemptions) : "") << "\n";
  }
}

void write_iteration_scatter_svg(std::ostream& os, const IterationErrors& it) {
  const double w = 640, h = 640, pad = 70;
  double lo = 0, hi = 0;
  for (size_t i = 0; i < it.measured_s.size(); ++i)
    for (double v : {it.measured_s[i], it.predicted_s[i]})
      if (v > 0) lo = lo > 0 ? std::min(lo, v) : v, hi = std::max(hi, v);
  if (!(lo > 0)) lo = 1e-4, hi = 1.0;
  const LogAxis x(lo, hi, pad, w - pad), y(lo, hi, h - pad, pad);
  char line[160];
  std::snprintf(line, sizeof line, "%zu iterations; |error| median %.2f%%, P90 %.2f%%", it.all.count,
                100 * it.all.median_abs, 100 * it.all.p90_abs);
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << w / 2 << "\" y=\"24\" text-anchor=\"middle\" " << kSans << " font-size=\"16\">"
     << "Iteration time: predicted vs measured (log-log)</text>\n"
     << "<text x=\"" << w / 2 << "\" y=\"42\" text-anchor=\"middle\" " << kSans << " font-size=\"11\">" << line
     << "</text>\n"
     << "<rect x=\"" << pad << "\" y=\"" << pad << "\" width=\"" << w - 2 * pad << "\" height=\"" << h - 2 * pad
     << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (double t : x.ticks(48)) {
    os << "<line x1=\"" << x.at(t) << "\" y1=\"" << pad << "\" x2=\"" << x.at(t) << "\" y2=\"" << h - pad
       << "\" stroke=\"#eee\"/>\n"
       << "<text x=\"" << x.at(t) << "\" y=\"" << h - pad + 14 << "\" text-anchor=\"middle\" " << kSans
       << " font-size=\"9\">" << tick_label(t) << "</text>\n"
       << "<line x1=\"" << pad << "\" y1=\"" << y.at(t) << "\" x2=\"" << w - pad << "\" y2=\"" << y.at(t)
       << "\" stroke=\"#eee\"/>\n"
       << "<text x=\"" << pad - 4 << "\" y=\"" << y.at(t) + 3 << "\" text-anchor=\"end\" " << kSans
       << " font-size=\"9\">" << tick_label(t) << "</text>\n";
  }
  // The diagonal (predicted = measured) across the frame.
  const double d0 = std::pow(10.0, x.l0), d1 = std::pow(10.0, x.l1);
  os << "<line x1=\"" << x.at(d0) << "\" y1=\"" << y.at(d0) << "\" x2=\"" << x.at(d1) << "\" y2=\"" << y.at(d1)
     << "\" stroke=\"#888\" stroke-dasharray=\"4\"/>\n"
     << "<text x=\"" << w / 2 << "\" y=\"" << h - pad + 34 << "\" text-anchor=\"middle\" " << kSans
     << " font-size=\"12\">measured</text>\n"
     << "<text x=\"18\" y=\"" << h / 2 << "\" transform=\"rotate(-90 18 " << h / 2 << ")\" text-anchor=\"middle\" "
     << kSans << " font-size=\"12\">predicted</text>\n";
  for (size_t i = 0; i < it.measured_s.size(); ++i) {
    const char* colour = it.kind[i] == "decode" ? "#1f77b4" : (it.kind[i] == "prefill" ? "#d62728" : "#2ca02c");
    os << "<circle cx=\"" << x.at(std::max(it.measured_s[i], lo)) << "\" cy=\"" << y.at(std::max(it.predicted_s[i], lo))
       << "\" r=\"2\" fill=\"" << colour << "\" fill-opacity=\"0.6\"/>\n";
  }
  os << "<text x=\"" << pad + 8 << "\" y=\"" << pad + 16 << "\" " << kSans
     << " font-size=\"12\" fill=\"#1f77b4\">decode</text>"
     << "<text x=\"" << pad + 68 << "\" y=\"" << pad + 16 << "\" " << kSans
     << " font-size=\"12\" fill=\"#d62728\">prefill</text>"
     << "<text x=\"" << pad + 128 << "\" y=\"" << pad + 16 << "\" " << kSans
     << " font-size=\"12\" fill=\"#2ca02c\">mixed</text>\n"
     << "</svg>\n";
}

void write_request_cdfs_svg(std::ostream& os, const RequestSamples& measured, const RequestSamples& predicted) {
  const double panel_w = 330, panel_h = 330, top = 50;
  const double w = 3 * panel_w, h = top + panel_h;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << w / 2 << "\" y=\"22\" text-anchor=\"middle\" " << kSans << " font-size=\"14\">"
     << "Request metrics, share of samples at or below a time (" << measured.completed << " measured, "
     << predicted.completed << " predicted requests; P50 and P99: measured / predicted)</text>\n"
     << "<line x1=\"" << w / 2 - 150 << "\" y1=\"38\" x2=\"" << w / 2 - 120
     << "\" y2=\"38\" stroke=\"#000\" stroke-width=\"1.5\"/>"
     << "<text x=\"" << w / 2 - 115 << "\" y=\"42\" " << kSans << " font-size=\"12\">measured</text>"
     << "<line x1=\"" << w / 2 + 20 << "\" y1=\"38\" x2=\"" << w / 2 + 50
     << "\" y2=\"38\" stroke=\"#d62728\" stroke-dasharray=\"5 3\" stroke-width=\"1.5\"/>"
     << "<text x=\"" << w / 2 + 55 << "\" y=\"42\" " << kSans << " font-size=\"12\">predicted</text>\n";
  write_cdf_panel(os, "TTFT", measured.ttft, predicted.ttft, 0, panel_w, top, panel_h);
  write_cdf_panel(os, "TBT (every gap)", measured.tbt, predicted.tbt, panel_w, panel_w, top, panel_h);
  write_cdf_panel(os, "JCT", measured.jct, predicted.jct, 2 * panel_w, panel_w, top, panel_h);
  os << "</svg>\n";
}

}  // namespace fdc::validate
