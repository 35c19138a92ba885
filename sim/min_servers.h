// The fewest servers meeting an SLO: for the config's workload as given (its arrivals, whatever
// the process: Poisson, Gamma, fixed rate, a replayed trace), a search over cluster.servers for
// the smallest count at which the fraction of completed requests meeting the config's SLO
// (TTFT <= slo.ttft_ms and TPOT <= slo.tpot_ms, as in the run summary) is at least a target: the
// capacity planner's question "how many servers serve this load within the SLO?". Every probe is
// a full deterministic simulation with the config's seed.
//
// Method: from servers_lo (default 1) the count doubles until a run meets the target, then the
// integers between the highest count that failed and the lowest that met are bisected. This
// assumes more servers never serve the same load worse (true of the routers here: each replica
// gets a share of the requests). A count that meets at servers_lo > 1 is reported as an upper
// bound; no count up to max_servers meeting it as "none". A finite workload can meet an SLO with
// too few servers only because it ends before the queues build up, so the answer is run once more
// with twice workload.num_requests (not for replayed traces, whose load is the trace): a failure
// there is reported as a warning.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "sim/experiment.h"
#include "sim/max_rate.h"

namespace fdc::sim {

struct MinServersOptions {
  double attainment = 0.9;  // target fraction of completed requests meeting the SLO, in (0, 1]
  int servers_lo = 1;       // the first count tried, >= 1
  int max_servers = 4096;   // the most tried, >= servers_lo
};

// Throws InputError naming the option (--attainment, --servers-lo, --max-servers).
void check_min_servers_options(const MinServersOptions& o);

enum class MinServersStatus {
  kFound,       // `servers` meets, servers - 1 fails (or servers is 1)
  kUpperBound,  // servers_lo > 1 already meets: fewer were not tried
  kNoneMeets,   // even max_servers fails
};
const char* to_string(MinServersStatus s);

struct MinServersResult {
  std::string policy;  // the policy searched (set by the simulation-backed search)
  MinServersStatus status = MinServersStatus::kNoneMeets;
  double target = 0;              // the attainment target
  int64_t servers = 0;            // kFound, kUpperBound: fewest that met; kNoneMeets: the most tried
  std::vector<RateProbe> probes;  // in the order they ran; `servers` is each probe's count
  // The run at `servers` with twice the requests (the simulation-backed search, unless the
  // workload replays a trace or no count met), and its request count.
  std::optional<RateProbe> longer;
  int64_t longer_requests = 0;
  // The probe at `servers`.
  const RateProbe& at_servers() const;
  // One line: "fewest servers meeting the SLO for 90% of requests: 3 (24 GPUs, 2 fail)".
  std::string message() const;
  // Non-empty when the run with twice the requests misses the target at `servers`: the workload
  // ended before the queues reached a steady state, so the SLO holds only because the run is short.
  std::string warning() const;
  Json to_json() const;
  static MinServersResult from_json(const Json& j);  // the inverse of to_json, exact
};

// servers -> the run's SLO figures. `meets` is left for the search to set.
using ServersProbeFn = std::function<RateProbe(int64_t servers)>;
// Called after every probe with the probe and the bracket known so far (failed / met: 0 when unknown).
using ServersCallback = std::function<void(const RateProbe& p, int64_t failed, int64_t met)>;

// The search itself, over any probe function (tests use synthetic ones).
MinServersResult search_min_servers(const ServersProbeFn& probe, const MinServersOptions& o,
                                    const ServersCallback& on_probe = {});

// Checks that an experiment can be searched: the config must load and set slo.ttft_ms and
// slo.tpot_ms explicitly. Returns its policy name. Throws InputError naming the key otherwise.
std::string min_servers_check(const ExperimentInput& in);

// min_servers_check + search_min_servers over simulations with cluster.servers = n.
MinServersResult search_min_servers(const ExperimentInput& in, const MinServersOptions& o,
                                    const ServersCallback& on_probe = {}, const CostModelFactory& cost = {});

}  // namespace fdc::sim
