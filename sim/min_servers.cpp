#include "sim/min_servers.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace fdc::sim {

namespace {

std::string num(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

void check_min_servers_options(const MinServersOptions& o) {
  FDC_INPUT_CHECK(
      std::isfinite(o.attainment) && o.attainment > 0 && o.attainment <= 1,
      "--attainment: expected a fraction in (0, 1] (0.9 = 90% of requests meet the SLO), found " << o.attainment);
  FDC_INPUT_CHECK(o.servers_lo >= 1, "--servers-lo: expected a server count >= 1, found " << o.servers_lo);
  FDC_INPUT_CHECK(o.max_servers >= o.servers_lo,
                  "--max-servers: expected at least --servers-lo (" << o.servers_lo << "), found " << o.max_servers);
}

const char* to_string(MinServersStatus s) {
  switch (s) {
    case MinServersStatus::kFound:
      return "found";
    case MinServersStatus::kUpperBound:
      return "upper_bound";
    case MinServersStatus::kNoneMeets:
      return "none_meets";
  }
  return "?";
}

const RateProbe& MinServersResult::at_servers() const {
  FDC_CHECK(!probes.empty(), "a min-servers result without probes");
  const auto it = std::find_if(probes.begin(), probes.end(), [&](const RateProbe& p) { return p.servers == servers; });
  FDC_CHECK(it != probes.end(), "no probe at the result's server count " << servers);
  return *it;
}

std::string MinServersResult::message() const {
  const std::string target_pct = num(100 * target) + "%";
  const std::string gpus = probes.empty() ? "" : " (" + std::to_string(at_servers().gpus) + " GPUs)";
  switch (status) {
    case MinServersStatus::kFound:
      return "fewest servers meeting the SLO for " + target_pct + " of requests: " + std::to_string(servers) + gpus +
             (servers > 1 ? "; " + std::to_string(servers - 1) + " fail" : "");
    case MinServersStatus::kUpperBound:
      return "the SLO is met for " + target_pct + " of requests with " + std::to_string(servers) + " servers" + gpus +
             ", the fewest tried: an upper bound (lower --servers-lo)";
    case MinServersStatus::kNoneMeets:
      return "no server count up to " + std::to_string(servers) + " meets the SLO for " + target_pct +
             " of requests (attainment there " + num(100 * (probes.empty() ? 0.0 : at_servers().attainment)) +
             "%; raise --max-servers)";
  }
  return "";
}

std::string MinServersResult::warning() const {
  if (!longer || longer->meets) return "";
  return "with twice the requests (" + std::to_string(longer_requests) + ") " + std::to_string(servers) +
         " servers meet the SLO for only " + num(100 * longer->attainment) + "% of requests (target " +
         num(100 * target) + "%): the workload ends before the queues reach a steady state, so the count is too " +
         "low; raise workload.num_requests until the answer stops moving";
}

MinServersResult MinServersResult::from_json(const Json& j) {
  MinServersResult r;
  r.policy = json_field<std::string>(j, "policy", "a min-servers result");
  const std::string status = json_field<std::string>(j, "status", "a min-servers result");
  bool known = false;
  for (MinServersStatus s : {MinServersStatus::kFound, MinServersStatus::kUpperBound, MinServersStatus::kNoneMeets})
    if (status == to_string(s)) r.status = s, known = true;
  FDC_CHECK(known, "unknown min-servers status \"" << status << "\"");
  r.target = json_field<double>(j, "target_attainment", "a min-servers result");
  r.servers = json_field<int64_t>(j, "servers", "a min-servers result");
  r.probes = probes_from_json(j, "a min-servers result");
  if (j.contains("longer_workload")) {
    const Json& l = j["longer_workload"];
    r.longer_requests = json_field<int64_t>(l, "num_requests", "a min-servers result's longer_workload");
    FDC_CHECK(l.contains("run"), "a min-servers result's longer_workload: no \"run\"");
    r.longer = RateProbe::from_json(l["run"]);
  }
  return r;
}

Json MinServersResult::to_json() const {
  Json j{{"policy", policy},
         {"status", to_string(status)},
         {"target_attainment", target},
         {"servers", servers},
         {"message", message()}};
  if (const std::string w = warning(); !w.empty()) j["warning"] = w;
  if (!probes.empty()) j["at_servers"] = at_servers().to_json();
  if (longer) j["longer_workload"] = {{"num_requests", longer_requests}, {"run", longer->to_json()}};
  j["probes"] = Json::array();
  for (const auto& p : probes) j["probes"].push_back(p.to_json());
  return j;
}

MinServersResult search_min_servers(const ServersProbeFn& probe_fn, const MinServersOptions& o,
                                    const ServersCallback& on_probe) {
  check_min_servers_options(o);
  MinServersResult res;
  res.target = o.attainment;
  int64_t failed = 0, met = 0;  // the highest count that failed, the lowest that met; 0 = not known
  auto probe = [&](int64_t servers) {
    RateProbe p = probe_fn(servers);
    p.servers = servers;
    p.meets = meets_target(p, o.attainment);
    if (p.meets)
      met = servers;
    else
      failed = servers;
    res.probes.push_back(p);
    if (on_probe) on_probe(p, failed, met);
    return p.meets;
  };
  // Up: double from servers_lo until a count meets.
  for (int64_t s = o.servers_lo; !probe(s);) {
    if (s == o.max_servers) {
      res.status = MinServersStatus::kNoneMeets;
      res.servers = s;
      return res;
    }
    s = std::min<int64_t>(2 * s, o.max_servers);
  }
  if (failed == 0 && met > 1) {
    res.status = MinServersStatus::kUpperBound;
    res.servers = met;
    return res;
  }
  // Bisection over the integers between them.
  while (failed > 0 && met - failed > 1) probe(failed + (met - failed) / 2);
  res.status = MinServersStatus::kFound;
  res.servers = met;
  return res;
}

std::string min_servers_check(const ExperimentInput& in) {
  check_explicit_slo(in, "min-servers");
  // Everything else (zero or negative SLO values, the workload, the model fitting) as any run reads it.
  return load_experiment_json(in.config, in.source, in.base_dir).policy.name;
}

MinServersResult search_min_servers(const ExperimentInput& in, const MinServersOptions& o,
                                    const ServersCallback& on_probe, const CostModelFactory& cost) {
  check_min_servers_options(o);
  const Experiment e = load_experiment_json(in.config, in.source, in.base_dir);
  check_explicit_slo(in, "min-servers");
  auto run = [&](int64_t servers, std::optional<int64_t> requests) {
    ExperimentInput at = in;
    at.config["cluster"]["servers"] = servers;
    if (requests) at.config["workload"]["num_requests"] = *requests;
    return simulate_slo(at, cost);
  };
  MinServersResult r = search_min_servers([&](int64_t servers) { return run(servers, std::nullopt); }, o, on_probe);
  r.policy = e.policy.name;
  const Json& workload = e.resolved["workload"];
  if (r.status != MinServersStatus::kNoneMeets && workload["arrival"].value("process", "") != "trace" &&
      workload.contains("num_requests")) {
    r.longer_requests = 2 * workload.at("num_requests").get<int64_t>();
    r.longer = run(r.servers, r.longer_requests);
    r.longer->servers = r.servers;
    r.longer->meets = meets_target(*r.longer, o.attainment);
  }
  return r;
}

}  // namespace fdc::sim
