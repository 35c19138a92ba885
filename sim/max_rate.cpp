#include "sim/max_rate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "sim/simulator.h"

namespace fdc::sim {

namespace {

std::string num(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

bool positive_finite(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

MaxRateStatus max_rate_status_from(const std::string& s) {
  for (MaxRateStatus v : {MaxRateStatus::kFound, MaxRateStatus::kLowerBound, MaxRateStatus::kNoneMeets})
    if (s == to_string(v)) return v;
  FDC_CHECK(false, "unknown max-rate status \"" << s << "\"");
  return MaxRateStatus::kNoneMeets;
}

void check_max_rate_options(const MaxRateOptions& o) {
  FDC_INPUT_CHECK(
      std::isfinite(o.attainment) && o.attainment > 0 && o.attainment <= 1,
      "--attainment: expected a fraction in (0, 1] (0.9 = 90% of requests meet the SLO), found " << o.attainment);
  FDC_INPUT_CHECK(std::isfinite(o.tol) && o.tol > 0 && o.tol < 1,
                  "--tol: expected a relative tolerance in (0, 1) (0.02 = 2%), found " << o.tol);
  if (o.rate_lo)
    FDC_INPUT_CHECK(positive_finite(*o.rate_lo), "--rate-lo: expected a rate > 0 req/s, found " << *o.rate_lo);
  if (o.rate_hi)
    FDC_INPUT_CHECK(positive_finite(*o.rate_hi), "--rate-hi: expected a rate > 0 req/s, found " << *o.rate_hi);
  if (o.rate_lo && o.rate_hi)
    FDC_INPUT_CHECK(*o.rate_lo < *o.rate_hi, "--rate-lo " << *o.rate_lo << " must be below --rate-hi " << *o.rate_hi);
  FDC_INPUT_CHECK(o.max_doublings >= 0 && o.max_doublings <= 30,
                  "--max-doublings: expected 0 to 30, found " << o.max_doublings);
  FDC_INPUT_CHECK(o.max_probes >= 1, "max_probes: expected >= 1, found " << o.max_probes);
}

Json RateProbe::to_json() const {
  return Json{{"rate_per_s", rate_per_s},
              {"offered_per_s", offered_per_s},
              {"servers", servers},
              {"gpus", gpus},
              {"price_per_hour_usd", price_per_hour_usd},
              {"attainment", attainment},
              {"goodput_per_s", goodput_per_s},
              {"throughput_per_s", throughput_per_s},
              {"completed", completed},
              {"slo_met", slo_met},
              {"rejected", rejected},
              {"ttft_p90_ms", ttft_p90_ms},
              {"tpot_p90_ms", tpot_p90_ms},
              {"meets", meets}};
}

RateProbe RateProbe::from_json(const Json& j) {
  RateProbe p;
  p.rate_per_s = json_field<double>(j, "rate_per_s", "a probe");
  p.offered_per_s = json_field<double>(j, "offered_per_s", "a probe");
  p.servers = json_field<int64_t>(j, "servers", "a probe");
  p.gpus = json_field<int64_t>(j, "gpus", "a probe");
  p.price_per_hour_usd = json_field<double>(j, "price_per_hour_usd", "a probe");
  p.attainment = json_field<double>(j, "attainment", "a probe");
  p.goodput_per_s = json_field<double>(j, "goodput_per_s", "a probe");
  p.throughput_per_s = json_field<double>(j, "throughput_per_s", "a probe");
  p.completed = json_field<uint64_t>(j, "completed", "a probe");
  p.slo_met = json_field<uint64_t>(j, "slo_met", "a probe");
  p.rejected = json_field<uint64_t>(j, "rejected", "a probe");
  p.ttft_p90_ms = json_field<double>(j, "ttft_p90_ms", "a probe");
  p.tpot_p90_ms = json_field<double>(j, "tpot_p90_ms", "a probe");
  p.meets = json_field<bool>(j, "meets", "a probe");
  return p;
}

std::vector<RateProbe> probes_from_json(const Json& j, const char* what) {
  FDC_CHECK(j.is_object() && j.contains("probes") && j["probes"].is_array(), what << ": no \"probes\" array");
  std::vector<RateProbe> probes;
  for (const Json& p : j["probes"]) probes.push_back(RateProbe::from_json(p));
  return probes;
}

bool meets_target(const RateProbe& p, double attainment) {
  return p.completed > 0 && p.attainment >= attainment - 1e-12;
}

const char* to_string(MaxRateStatus s) {
  switch (s) {
    case MaxRateStatus::kFound:
      return "found";
    case MaxRateStatus::kLowerBound:
      return "lower_bound";
    case MaxRateStatus::kNoneMeets:
      return "none_meets";
  }
  return "?";
}

const RateProbe& MaxRateResult::at_rate() const {
  FDC_CHECK(!probes.empty(), "a max-rate result without probes");
  const auto it =
      std::find_if(probes.begin(), probes.end(), [&](const RateProbe& p) { return p.rate_per_s == rate_per_s; });
  FDC_CHECK(it != probes.end(), "no probe at the result's rate " << rate_per_s);
  return *it;
}

std::string MaxRateResult::message() const {
  const std::string target_pct = num(100 * target) + "%";
  switch (status) {
    case MaxRateStatus::kFound:
      return "highest rate meeting the SLO for " + target_pct + " of requests: " + num(rate_per_s) + " req/s (" +
             num(upper_rate_per_s) + " req/s fails)";
    case MaxRateStatus::kLowerBound:
      return "the SLO is still met for " + target_pct + " of requests at " + num(rate_per_s) +
             " req/s, the highest rate tried: a lower bound (raise --rate-hi or --max-doublings)";
    case MaxRateStatus::kNoneMeets:
      return "no rate meets the SLO down to " + num(rate_per_s) + " req/s (attainment " +
             num(100 * (probes.empty() ? 0.0 : at_rate().attainment)) + "% < " + target_pct + ")";
  }
  return "";
}

std::string MaxRateResult::warning() const {
  if (status == MaxRateStatus::kNoneMeets || probes.empty()) return "";
  const RateProbe& p = at_rate();
  if (p.throughput_per_s >= kSteadyThroughput * p.rate_per_s) return "";
  return "at " + num(p.rate_per_s) + " req/s the run completed only " + num(p.throughput_per_s) +
         " req/s over its makespan (" + num(100 * p.throughput_per_s / p.rate_per_s) +
         "%): it ended before reaching a steady state, so the SLO may be met only because the workload is short; "
         "raise workload.num_requests";
}

Json MaxRateResult::to_json() const {
  Json j{{"policy", policy},
         {"status", to_string(status)},
         {"target_attainment", target},
         {"rate_per_s", rate_per_s},
         {"message", message()}};
  if (status == MaxRateStatus::kFound) j["upper_rate_per_s"] = upper_rate_per_s;
  if (const std::string w = warning(); !w.empty()) j["warning"] = w;
  if (!probes.empty()) j["at_rate"] = at_rate().to_json();
  j["probes"] = Json::array();
  for (const auto& p : probes) j["probes"].push_back(p.to_json());
  return j;
}

MaxRateResult MaxRateResult::from_json(const Json& j) {
  MaxRateResult r;
  r.policy = json_field<std::string>(j, "policy", "a max-rate result");
  r.status = max_rate_status_from(json_field<std::string>(j, "status", "a max-rate result"));
  r.target = json_field<double>(j, "target_attainment", "a max-rate result");
  r.rate_per_s = json_field<double>(j, "rate_per_s", "a max-rate result");
  if (r.status == MaxRateStatus::kFound)
    r.upper_rate_per_s = json_field<double>(j, "upper_rate_per_s", "a max-rate result");
  r.probes = probes_from_json(j, "a max-rate result");
  return r;
}

MaxRateResult search_max_rate(const RateProbeFn& probe_fn, double start_rate, const MaxRateOptions& o,
                              const ProbeCallback& on_probe) {
  check_max_rate_options(o);
  FDC_INPUT_CHECK(positive_finite(start_rate), "the starting rate must be > 0 req/s, found " << start_rate);
  MaxRateResult res;
  res.target = o.attainment;
  double lo = 0, hi = 0;     // lo meets, hi fails; 0 = not known yet
  double hi_throughput = 0;  // of the run at hi
  auto probe = [&](double rate) {
    FDC_CHECK(static_cast<int>(res.probes.size()) < o.max_probes,
              "max-rate: more than " << o.max_probes << " probes without converging");
    RateProbe p = probe_fn(rate);
    p.rate_per_s = rate;
    p.meets = meets_target(p, o.attainment);
    if (p.meets) {
      lo = rate;
    } else {
      hi = rate;
      hi_throughput = p.throughput_per_s;
    }
    res.probes.push_back(p);
    if (on_probe) on_probe(p, lo, hi);
    return p.meets;
  };
  auto none_meets = [&](double rate) {
    res.status = MaxRateStatus::kNoneMeets;
    res.rate_per_s = rate;
    return res;
  };

  if (o.rate_lo && !probe(*o.rate_lo)) return none_meets(*o.rate_lo);
  if (o.rate_hi) probe(*o.rate_hi);
  if (!o.rate_lo && !o.rate_hi) probe(start_rate);

  // Up: double from the highest rate that met until one fails. (With both rates given and the
  // higher one meeting, lo is rate_hi.)
  for (int d = 0; hi == 0; ++d) {
    if (d == o.max_doublings) {
      res.status = MaxRateStatus::kLowerBound;
      res.rate_per_s = lo;
      return res;
    }
    probe(2 * lo);
  }
  // Down: 80% of the failing run's throughput first, then halving.
  if (lo == 0) {
    const double t = hi_throughput;
    double rate = (t > 0 && t < hi) ? 0.8 * t : 0.8 * hi;
    for (int h = 0; lo == 0; ++h) {
      if (h > o.max_doublings) return none_meets(hi);
      probe(rate);
      if (lo == 0) rate = hi / 2;
    }
  }
  // Bisection.
  while (hi - lo > o.tol * lo) probe(0.5 * (lo + hi));
  res.status = MaxRateStatus::kFound;
  res.rate_per_s = lo;
  res.upper_rate_per_s = hi;
  return res;
}

// --- simulation-backed ----------------------------------------------------------------------------

void check_explicit_slo(const ExperimentInput& in, const std::string& command) {
  const Json& cfg = in.config;
  for (const char* key : {"ttft_ms", "tpot_ms"}) {
    const bool present = cfg.is_object() && cfg.contains("slo") && cfg["slo"].is_object() && cfg["slo"].contains(key);
    FDC_INPUT_CHECK(present, in.source << ": /slo/" << key << ": " << command
                                       << " needs an explicit SLO; set it in the config's \"slo\" section "
                                          "or with --set slo."
                                       << key << "=MS (the summary's default would be used silently)");
  }
}

double max_rate_start(const ExperimentInput& in, std::string* policy) {
  check_explicit_slo(in, "max-rate");
  // Everything else (zero or negative SLO values, the workload, the model fitting) as any run reads it.
  Experiment e = load_experiment_json(in.config, in.source, in.base_dir);
  if (policy) *policy = e.policy.name;
  const Json& arrival = e.resolved["workload"]["arrival"];
  const std::string process = arrival.value("process", "");
  FDC_INPUT_CHECK(process == "poisson" || process == "gamma" || process == "fixed_rate",
                  in.source << ": /workload/arrival/process: max-rate searches workload.arrival.rate_per_s, which \""
                            << process
                            << "\" arrivals do not have; use a rate-driven process (poisson, gamma or fixed_rate), "
                               "e.g. --set 'workload.arrival={\"process\":\"poisson\",\"rate_per_s\":2}'");
  return arrival.at("rate_per_s").get<double>();
}

RateProbe simulate_at_rate(const ExperimentInput& in, double rate, const CostModelFactory& cost_factory) {
  ExperimentInput at = in;
  at.config["workload"]["arrival"]["rate_per_s"] = rate;
  RateProbe p = simulate_slo(at, cost_factory);
  p.rate_per_s = rate;
  return p;
}

RateProbe simulate_slo(const ExperimentInput& in, const CostModelFactory& cost_factory) {
  Experiment e = load_experiment_json(in.config, in.source, in.base_dir);
  auto cost = cost_factory ? cost_factory(e) : make_cost_model(e);
  Simulator sim(e, *cost, OutputStreams{});
  sim.run();
  const Json s = sim.summary();
  RateProbe p;
  const Json& arrival = e.resolved["workload"]["arrival"];
  if (arrival.contains("rate_per_s") && arrival["rate_per_s"].is_number())
    p.rate_per_s = arrival["rate_per_s"].get<double>();
  const SimulationTotals& t = sim.totals();
  if (t.arrived > 1 && t.last_arrival > t.first_arrival)
    p.offered_per_s = static_cast<double>(t.arrived - 1) / (t.last_arrival - t.first_arrival).seconds();
  p.servers = s["cluster"]["servers"].get<int64_t>();
  p.gpus = s["cluster"]["gpus"].get<int64_t>();
  p.price_per_hour_usd = s["cluster"].value("price_per_hour_usd", 0.0);
  p.attainment = s["slo"]["attainment"].get<double>();
  p.goodput_per_s = s["slo"]["goodput_requests_per_s"].get<double>();
  p.throughput_per_s = s["throughput"]["requests_per_s"].get<double>();
  p.completed = sim.totals().completed;
  p.slo_met = sim.totals().slo_met;
  p.rejected = sim.totals().rejected;
  p.ttft_p90_ms = s["latency"]["ttft"]["p90_ms"].get<double>();
  p.tpot_p90_ms = s["latency"]["tpot"]["p90_ms"].get<double>();
  return p;
}

MaxRateResult search_max_rate(const ExperimentInput& in, const MaxRateOptions& o, const ProbeCallback& on_probe,
                              const CostModelFactory& cost) {
  check_max_rate_options(o);
  std::string policy;
  const double start = max_rate_start(in, &policy);
  MaxRateResult r = search_max_rate([&](double rate) { return simulate_at_rate(in, rate, cost); }, start, o, on_probe);
  r.policy = policy;
  return r;
}

}  // namespace fdc::sim
