// The highest request rate meeting an SLO: a search over the arrival rate
// (workload.arrival.rate_per_s) for the highest rate at which the fraction of completed requests
// meeting the config's SLO (TTFT <= slo.ttft_ms and TPOT <= slo.tpot_ms, as in the run summary) is
// at least a target. Every probe is a full deterministic simulation with the config's seed.
//
// Method: a bracket [lo, hi] with lo meeting the target and hi not, then bisection until
// (hi - lo) <= tol * lo. The bracket starts from --rate-lo / --rate-hi when given; otherwise from
// the config's own rate: when it meets, the rate doubles until one fails; when it fails, the next
// guess is 80% of the throughput that run achieved (an overloaded run completes at about its
// capacity), then the rate halves until one meets. Each direction stops after max_doublings steps:
// a rate that still meets is reported as a lower bound, one that still fails as "no rate meets the
// SLO down to X req/s".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"
#include "costmodel/cost_model.h"
#include "sim/experiment.h"

namespace fdc::sim {

struct MaxRateOptions {
  double attainment = 0.9;                 // target fraction of completed requests meeting the SLO, in (0, 1]
  double tol = 0.02;                       // relative width of the final bracket: (hi - lo) <= tol * lo
  std::optional<double> rate_lo, rate_hi;  // req/s; a given rate_lo must meet the target
  int max_doublings = 8;                   // steps up (doubling) or down (halving) from the start, <= 30
  int max_probes = 200;                    // a guard; bisection to 2% needs far fewer
};

// Throws InputError naming the option (--attainment, --tol, --rate-lo, --rate-hi, --max-doublings).
void check_max_rate_options(const MaxRateOptions& o);

// One simulation at one rate.
struct RateProbe {
  double rate_per_s = 0;
  double attainment = 0;        // slo.attainment of the run: met / completed
  double goodput_per_s = 0;     // requests meeting the SLO per second of makespan
  double throughput_per_s = 0;  // completed requests per second of makespan
  double offered_per_s = 0;     // arrivals per second between the first and the last (0 with one arrival)
  int64_t servers = 0, gpus = 0;  // the cluster simulated
  double price_per_hour_usd = 0;  // the cluster's, from the hardware config (0 when it has no price)
  uint64_t completed = 0, slo_met = 0, rejected = 0;
  double ttft_p90_ms = 0, tpot_p90_ms = 0;
  bool meets = false;  // attainment >= the target (set by the search)
  Json to_json() const;
  // The inverse of to_json, exact (doubles round-trip): how the searches of an MPI launch send
  // their results to rank 0. Throws InternalError on a malformed object.
  static RateProbe from_json(const Json& j);
};

// Whether a run meets an attainment target: it completed requests and its attainment is at least
// the target, with a small allowance so that 180 of 200 meets 0.9 whatever the rounding (max-rate
// and min-servers alike).
bool meets_target(const RateProbe& p, double attainment);

enum class MaxRateStatus {
  kFound,       // lo meets, hi fails, hi - lo <= tol * lo
  kLowerBound,  // still met after max_doublings doublings: the true maximum is higher
  kNoneMeets,   // even the lowest rate tried fails
};
const char* to_string(MaxRateStatus s);
MaxRateStatus max_rate_status_from(const std::string& s);  // the inverse; InternalError for others

struct MaxRateResult {
  std::string policy;  // the policy searched (set by the simulation-backed search)
  MaxRateStatus status = MaxRateStatus::kNoneMeets;
  double target = 0;              // the attainment target
  double rate_per_s = 0;          // kFound, kLowerBound: highest rate that met; kNoneMeets: lowest rate tried
  double upper_rate_per_s = 0;    // kFound: lowest rate that failed; 0 otherwise
  std::vector<RateProbe> probes;  // in the order they ran
  // The probe at rate_per_s (the best rate, or for kNoneMeets the lowest one tried).
  const RateProbe& at_rate() const;
  // One line: "max rate 2.31 req/s (2.36 fails)", "at least 512 req/s (...)", "no rate meets ...".
  std::string message() const;
  // Non-empty when the run at the best rate completed under kSteadyThroughput of that rate per
  // second of makespan: the workload ended before the queues reached a steady state (too few
  // requests for the rate), so the SLO may hold only because the run was short.
  std::string warning() const;
  static constexpr double kSteadyThroughput = 0.9;
  Json to_json() const;
  static MaxRateResult from_json(const Json& j);  // the inverse of to_json, exact
};

// The probes of a result's JSON ("probes": [...]); `what` names the object in errors.
std::vector<RateProbe> probes_from_json(const Json& j, const char* what);

// j[key] as a T; InternalError naming `what` and the key when it is missing or of another type
// (for JSON that fdcsim wrote itself).
template <class T>
T json_field(const Json& j, const char* key, const char* what) {
  FDC_CHECK(j.is_object() && j.contains(key), what << ": no \"" << key << "\"");
  try {
    return j[key].get<T>();
  } catch (const Json::exception& e) {
    FDC_CHECK(false, what << ": \"" << key << "\" has another type: " << e.what());
  }
  return T{};
}

// rate (req/s) -> the run's SLO figures. `meets` is left for the search to set.
using RateProbeFn = std::function<RateProbe(double rate_per_s)>;
// Called after every probe with the probe and the bracket known so far (lo / hi: 0 when unknown).
using ProbeCallback = std::function<void(const RateProbe& p, double lo, double hi)>;

// The search itself, over any probe function (tests use synthetic ones). start_rate: the first
// probe when neither rate_lo nor rate_hi is given.
MaxRateResult search_max_rate(const RateProbeFn& probe, double start_rate, const MaxRateOptions& o,
                              const ProbeCallback& on_probe = {});

// --- simulation-backed ----------------------------------------------------------------------------

using CostModelFactory = std::function<std::unique_ptr<costmodel::CostModel>(const Experiment&)>;

// Checks that an experiment can be searched and returns its configured rate: the config must load,
// set slo.ttft_ms and slo.tpot_ms explicitly (> 0), and have a rate-driven arrival process
// (poisson, gamma or fixed_rate). Throws InputError naming the key otherwise.
// policy: when given, set to the experiment's policy name.
double max_rate_start(const ExperimentInput& in, std::string* policy = nullptr);

// Throws InputError unless the config sets slo.ttft_ms and slo.tpot_ms itself (a search on the
// summary's defaults would answer a question nobody asked); `command` names the search.
void check_explicit_slo(const ExperimentInput& in, const std::string& command);

// Simulates the experiment as given and returns its SLO figures (rate_per_s: the config's arrival
// rate, 0 for processes without one). cost: null = the config's own cost model (make_cost_model).
RateProbe simulate_slo(const ExperimentInput& in, const CostModelFactory& cost = {});

// simulate_slo with workload.arrival.rate_per_s = rate.
RateProbe simulate_at_rate(const ExperimentInput& in, double rate_per_s, const CostModelFactory& cost = {});

// max_rate_start + search_max_rate over simulate_at_rate; result.policy is the experiment's policy.
MaxRateResult search_max_rate(const ExperimentInput& in, const MaxRateOptions& o, const ProbeCallback& on_probe = {},
                              const CostModelFactory& cost = {});

}  // namespace fdc::sim
