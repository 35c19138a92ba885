#include "validate/compare.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

#include "core/error.h"
#include "core/time.h"

namespace fdc::validate {

double quantile_sorted(const std::vector<double>& v, double q) {
  if (v.empty()) return 0.0;
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

ErrorStats error_stats(std::vector<double> errors) {
  ErrorStats s;
  s.count = errors.size();
  if (errors.empty()) return s;
  double sum = 0;
  for (double e : errors) sum += e;
  s.mean = sum / static_cast<double>(errors.size());
  for (double& e : errors) e = std::fabs(e);
  std::sort(errors.begin(), errors.end());
  s.median_abs = quantile_sorted(errors, 0.5);
  s.p90_abs = quantile_sorted(errors, 0.9);
  s.worst_abs = errors.back();
  return s;
}

IterationErrors compare_iterations(const sim::Timeline& measured, const costmodel::CostModel& cost) {
  IterationErrors out;
  std::vector<double> all, prefill, decode, mixed;
  for (const auto& it : measured.iterations) {
    const double m = static_cast<double>(it.duration_ns) * 1e-9;
    costmodel::OpBreakdown bd;  // the same time as iteration_time(batch), by op
    const double p = cost.iteration_time(it.batch, bd).seconds();
    const double e = p / m - 1.0;
    const auto& t = it.batch.totals;
    out.predicted_op_s.push_back(bd.seconds);
    out.seqs.push_back(t.num_seqs);
    out.new_tokens.push_back(t.new_tokens);
    const char* kind = t.prefill_seqs == 0 ? "decode" : (t.decode_seqs == 0 ? "prefill" : "mixed");
    out.measured_s.push_back(m);
    out.predicted_s.push_back(p);
    out.kind.emplace_back(kind);
    all.push_back(e);
    (t.prefill_seqs == 0 ? decode : (t.decode_seqs == 0 ? prefill : mixed)).push_back(e);
  }
  out.all = error_stats(all);
  out.prefill = error_stats(prefill);
  out.decode = error_stats(decode);
  out.mixed = error_stats(mixed);
  return out;
}

namespace {
// The iterations of `kind` binned by floor(log2 size).
std::vector<SizeBin> by_size(const IterationErrors& it, const char* kind, const std::vector<int64_t>& size) {
  struct Acc {
    double measured = 0, predicted = 0;
    std::vector<double> abs_errors;
  };
  if (size.size() != it.kind.size() || it.measured_s.size() != it.kind.size() ||
      it.predicted_s.size() != it.kind.size())
    throw std::invalid_argument("by_size: the iterations' vectors differ in length");
  std::map<int, Acc> bins;  // floor(log2 size) -> its iterations
  for (size_t i = 0; i < it.kind.size(); ++i) {
    if (it.kind[i] != kind || size[i] < 1) continue;
    int b = 0;
    while ((int64_t{2} << b) <= size[i]) ++b;
    Acc& a = bins[b];
    a.measured += it.measured_s[i];
    a.predicted += it.predicted_s[i];
    a.abs_errors.push_back(std::fabs(it.predicted_s[i] / it.measured_s[i] - 1.0));
  }
  std::vector<SizeBin> out;
  for (auto& [b, a] : bins) {
    std::sort(a.abs_errors.begin(), a.abs_errors.end());
    out.push_back({int64_t{1} << b, (int64_t{2} << b) - 1, a.abs_errors.size(), a.predicted / a.measured - 1.0,
                   quantile_sorted(a.abs_errors, 0.5)});
  }
  return out;
}
}  // namespace

std::vector<SizeBin> decode_by_sequences(const IterationErrors& it) { return by_size(it, "decode", it.seqs); }
std::vector<SizeBin> prefill_by_tokens(const IterationErrors& it) { return by_size(it, "prefill", it.new_tokens); }

RequestSamples request_samples(const sim::Timeline& t) {
  RequestSamples s;
  bool any = false;
  for (const auto& r : t.requests) {
    if (!r.completed || r.token_ns.empty()) continue;
    ++s.completed;
    const double arrival = static_cast<double>(r.arrival_ns) * 1e-9;
    s.ttft.push_back(static_cast<double>(r.token_ns.front() - r.arrival_ns) * 1e-9);
    s.jct.push_back(static_cast<double>(r.token_ns.back() - r.arrival_ns) * 1e-9);
    for (size_t i = 1; i < r.token_ns.size(); ++i)
      s.tbt.push_back(static_cast<double>(r.token_ns[i] - r.token_ns[i - 1]) * 1e-9);
    const double finish = static_cast<double>(r.token_ns.back()) * 1e-9;
    s.first_arrival = any ? std::min(s.first_arrival, arrival) : arrival;
    s.last_finish = any ? std::max(s.last_finish, finish) : finish;
    any = true;
  }
  for (auto* v : {&s.ttft, &s.tbt, &s.jct}) std::sort(v->begin(), v->end());
  return s;
}

double sustained_throughput(const sim::Timeline& t) {
  int64_t first_arrival = 0, last_scheduled = 0, completed = 0, tokens = 0;
  for (const auto& r : t.requests) {
    if (!r.completed || r.token_ns.empty()) continue;
    first_arrival = completed ? std::min(first_arrival, r.arrival_ns) : r.arrival_ns;
    last_scheduled = completed ? std::max(last_scheduled, r.first_scheduled_ns) : r.first_scheduled_ns;
    ++completed;
    tokens += static_cast<int64_t>(r.token_ns.size());
  }
  if (completed == 0 || last_scheduled <= first_arrival) return 0.0;
  // Output tokens emitted in the window, in requests of the run's mean output length: tokens flow
  // at the steady rate from the start, while whole requests finish late in a burst's first wave.
  int64_t in_window = 0;
  for (const auto& r : t.requests) {
    if (!r.completed) continue;
    for (int64_t ns : r.token_ns) in_window += ns <= last_scheduled;
  }
  const double mean_output = static_cast<double>(tokens) / static_cast<double>(completed);
  return static_cast<double>(in_window) / mean_output / (static_cast<double>(last_scheduled - first_arrival) * 1e-9);
}

RequestErrors compare_requests(const sim::Timeline& measured, const sim::Timeline& predicted) {
  RequestErrors out;
  const RequestSamples m = request_samples(measured), p = request_samples(predicted);
  const std::array<double, 3> qs = {0.5, 0.9, 0.99};
  // The share of the sorted samples a below v, ties counted half.
  auto quantile_of = [](const std::vector<double>& a, double v) {
    if (a.empty()) return -1.0;
    const auto lo = std::lower_bound(a.begin(), a.end(), v), hi = std::upper_bound(a.begin(), a.end(), v);
    return (static_cast<double>(lo - a.begin()) + 0.5 * static_cast<double>(hi - lo)) / static_cast<double>(a.size());
  };
  auto fill = [&](const std::string& name, const std::vector<double>& a, const std::vector<double>& b) {
    auto& arr = out.percentiles[name];
    for (size_t i = 0; i < qs.size(); ++i) {
      arr[i] = {quantile_sorted(a, qs[i]), quantile_sorted(b, qs[i])};
      arr[i].measured_quantile = quantile_of(a, arr[i].predicted);
    }
  };
  fill("ttft", m.ttft, p.ttft);
  fill("tbt", m.tbt, p.tbt);
  fill("jct", m.jct, p.jct);
  auto rps = [](const RequestSamples& s) {
    const double span = s.last_finish - s.first_arrival;
    return span > 0 ? static_cast<double>(s.completed) / span : 0.0;
  };
  out.throughput_rps = {rps(m), rps(p)};
  out.sustained_rps = {sustained_throughput(measured), sustained_throughput(predicted)};
  out.measured_completed = m.completed;
  out.predicted_completed = p.completed;
  return out;
}

SloFigures slo_figures(const sim::Timeline& t, const sim::SloConfig& slo) {
  SloFigures f;
  int64_t first_arrival = 0, last_finish = 0;
  for (const auto& r : t.requests) {
    if (!r.completed || r.token_ns.empty()) continue;
    first_arrival = f.completed ? std::min(first_arrival, r.arrival_ns) : r.arrival_ns;
    last_finish = f.completed ? std::max(last_finish, r.token_ns.back()) : r.token_ns.back();
    ++f.completed;
    const Nanos ttft(r.token_ns.front() - r.arrival_ns);
    const Nanos tpot(request_tpot_ns(r));
    const bool ttft_ok = ttft.ms() <= slo.ttft_ms, tpot_ok = tpot.ms() <= slo.tpot_ms;
    f.ttft_met += ttft_ok;
    f.tpot_met += tpot_ok;
    f.met += ttft_ok && tpot_ok;
  }
  if (f.completed > 0) f.attainment = static_cast<double>(f.met) / static_cast<double>(f.completed);
  const double span = static_cast<double>(last_finish - first_arrival) * 1e-9;
  if (span > 0) f.goodput_rps = static_cast<double>(f.met) / span;
  return f;
}

int64_t request_tpot_ns(const sim::RequestRecord& r) {
  return r.output > 1 && !r.token_ns.empty() ? (r.token_ns.back() - r.token_ns.front()) / (r.output - 1) : 0;
}

SloComparison compare_slo(const sim::Timeline& measured, const sim::Timeline& predicted, const sim::SloConfig& slo) {
  return SloComparison{slo, slo_figures(measured, slo), slo_figures(predicted, slo)};
}

Report compare(const sim::Timeline& measured, const sim::Timeline& predicted, const costmodel::CostModel& cost,
               const std::optional<sim::SloConfig>& slo) {
  Report r;
  if (slo) r.slo = compare_slo(measured, predicted, *slo);
  r.iterations = compare_iterations(measured, cost);
  r.requests = compare_requests(measured, predicted);
  r.measured_blocks = measured.header.kv_blocks_per_replica;
  r.predicted_blocks = predicted.header.kv_blocks_per_replica;
  return r;
}

PredictionBand prediction_band(double fraction, const std::vector<RequestErrors>& predictions,
                               const std::vector<SloComparison>& slo) {
  if (predictions.empty()) throw std::invalid_argument("prediction_band: no predictions");
  if (!slo.empty() && slo.size() != predictions.size())
    throw std::invalid_argument("prediction_band: one SLO comparison per prediction, or none");
  PredictionBand b;
  b.fraction = fraction;
  auto widen = [](MetricBand& m, const PercentilePair& p, bool first) {
    m.measured = p.measured;
    m.lo = first ? p.predicted : std::min(m.lo, p.predicted);
    m.hi = first ? p.predicted : std::max(m.hi, p.predicted);
  };
  for (size_t k = 0; k < predictions.size(); ++k) {
    const RequestErrors& r = predictions[k];
    for (const auto& [metric, arr] : r.percentiles)
      for (size_t i = 0; i < arr.size(); ++i) widen(b.percentiles[metric][i], arr[i], k == 0);
    widen(b.throughput_rps, r.throughput_rps, k == 0);
    widen(b.sustained_rps, r.sustained_rps, k == 0);
    if (!slo.empty()) {
      if (!b.slo_attainment) b.slo_attainment.emplace();
      widen(*b.slo_attainment, {slo[k].measured.attainment, slo[k].predicted.attainment}, k == 0);
    }
  }
  return b;
}

int PredictionBand::target_metrics_inside() const {
  int n = 0;
  for (const auto& [metric, arr] : percentiles) n += arr[0].inside() + arr[2].inside();
  return n;
}

Json PredictionBand::to_json() const {
  auto band = [](const MetricBand& m, double unit) {
    return Json{{"lo", m.lo * unit}, {"hi", m.hi * unit}, {"measured", m.measured * unit}, {"inside", m.inside()}};
  };
  Json j{{"iteration_time_fraction", fraction}, {"requests", Json::object()}};
  const char* names[] = {"p50", "p90", "p99"};
  for (const auto& [metric, arr] : percentiles)
    for (size_t i = 0; i < arr.size(); ++i) j["requests"][metric][std::string(names[i]) + "_ms"] = band(arr[i], 1e3);
  j["throughput_requests_per_s"] = band(throughput_rps, 1);
  j["sustained_throughput_requests_per_s"] = band(sustained_rps, 1);
  if (slo_attainment) j["slo_attainment"] = band(*slo_attainment, 1);
  int count = 0;
  for (const auto& kv : percentiles) count += 2 * static_cast<int>(!kv.second.empty());
  j["target_metrics_inside"] = target_metrics_inside();
  j["target_metrics"] = count;
  return j;
}

bool Report::iteration_target_met() const {
  return iterations.all.count > 0 && iterations.all.median_abs <= targets.iteration_median &&
         iterations.all.p90_abs <= targets.iteration_p90;
}

bool Report::request_target_met() const {
  for (const auto& [name, arr] : requests.percentiles) {
    if (std::fabs(arr[0].error()) > targets.request_percentile) return false;  // P50
    if (std::fabs(arr[2].error()) > targets.request_percentile) return false;  // P99
  }
  return !requests.percentiles.empty();
}

Json Report::to_json() const {
  auto stats = [](const ErrorStats& s) {
    return Json{{"count", s.count},
                {"median_abs_error", s.median_abs},
                {"p90_abs_error", s.p90_abs},
                {"worst_abs_error", s.worst_abs},
                {"mean_error", s.mean}};
  };
  Json j;
  j["iterations"] = {{"all", stats(iterations.all)},
                     {"prefill", stats(iterations.prefill)},
                     {"decode", stats(iterations.decode)},
                     {"mixed", stats(iterations.mixed)}};
  auto bins = [](const std::vector<SizeBin>& v, const char* size) {
    Json a = Json::array();
    for (const SizeBin& b : v)
      a.push_back({{size, {b.lo, b.hi}},
                   {"count", b.count},
                   {"summed_error", b.summed_error},
                   {"median_abs_error", b.median_abs}});
    return a;
  };
  j["iterations"]["decode_by_sequences"] = bins(decode_by_sequences(iterations), "sequences");
  j["iterations"]["prefill_by_tokens"] = bins(prefill_by_tokens(iterations), "tokens");
  Json req = Json::object();
  const char* names[] = {"p50", "p90", "p99"};
  for (const auto& [metric, arr] : requests.percentiles) {
    for (size_t i = 0; i < 3; ++i)
      req[metric][names[i]] = {{"measured_ms", arr[i].measured * 1e3},
                               {"predicted_ms", arr[i].predicted * 1e3},
                               {"error", arr[i].error()},
                               {"predicted_as_measured_quantile", arr[i].measured_quantile}};
  }
  j["requests"] = req;
  j["throughput_requests_per_s"] = {{"measured", requests.throughput_rps.measured},
                                    {"predicted", requests.throughput_rps.predicted},
                                    {"error", requests.throughput_rps.error()}};
  j["sustained_throughput_requests_per_s"] = {{"measured", requests.sustained_rps.measured},
                                              {"predicted", requests.sustained_rps.predicted},
                                              {"error", requests.sustained_rps.error()},
                                              {"loaded", requests.sustained_loaded()}};
  j["completed"] = {{"measured", requests.measured_completed}, {"predicted", requests.predicted_completed}};
  if (slo) {
    auto side = [](const SloFigures& f) {
      return Json{{"completed", f.completed},   {"met", f.met},
                  {"ttft_met", f.ttft_met},     {"tpot_met", f.tpot_met},
                  {"attainment", f.attainment}, {"goodput_requests_per_s", f.goodput_rps}};
    };
    j["slo"] = {{"ttft_ms", slo->slo.ttft_ms},
                {"tpot_ms", slo->slo.tpot_ms},
                {"measured", side(slo->measured)},
                {"predicted", side(slo->predicted)},
                {"attainment_difference", slo->attainment_difference()},
                {"goodput_error", slo->goodput().error()}};
  }
  j["kv_blocks_per_replica"] = {
      {"measured", measured_blocks}, {"predicted", predicted_blocks}, {"equal", blocks_equal()}};
  j["targets"] = {{"iteration_median_abs_error", targets.iteration_median},
                  {"iteration_p90_abs_error", targets.iteration_p90},
                  {"request_p50_p99_abs_error", targets.request_percentile},
                  {"iteration_met", iteration_target_met()},
                  {"request_met", request_target_met()}};
  return j;
}

}  // namespace fdc::validate
