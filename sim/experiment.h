// One simulation's full configuration, read strictly from JSON (keys in docs/config.md) with
// `--set` overrides applied first. Model, hardware and policy may be given by name (an embedded
// config from configs/), by path (a .json file, relative to the config's folder) or inline.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/attention_dims.h"
#include "costmodel/cost_model.h"
#include "costmodel/fit/profile_fit.h"
#include "costmodel/fitted.h"
#include "costmodel/hardware_spec.h"
#include "costmodel/model_spec.h"
#include "costmodel/roofline.h"
#include "sim/kv_memory.h"
#include "sim/policy.h"
#include "sim/scheduler.h"
#include "traces/request.h"

namespace fdc::sim {

enum class RouterKind { kRoundRobin, kLeastOutstanding, kKvAware };
const char* to_string(RouterKind r);
enum class CostModelKind { kRoofline, kProfile };

struct SloConfig {
  double ttft_ms = 0;  // a request meets the SLO when TTFT <= ttft_ms and TPOT <= tpot_ms
  double tpot_ms = 0;  // TPOT: mean gap between output tokens ((JCT - TTFT) / (output - 1))
};

struct OutputConfig {
  bool per_request_csv = true;
  double kv_sample_interval_ms = 1000;    // KV utilisation time series sampling period
  int64_t trace_max_iterations = 200000;  // cap on iterations written by --trace-out
};

struct Experiment {
  std::string name;
  std::string source;  // config file, or "<embedded default>"
  uint64_t seed = 0;
  costmodel::ModelSpec model;
  costmodel::HardwareSpec hardware;
  PolicySpec policy;
  costmodel::ModelDims dims;  // the policy resolved for the model
  costmodel::ParallelConfig parallel;
  int servers = 1;
  RouterKind router = RouterKind::kRoundRobin;
  SchedulerConfig scheduler;
  MemoryConfig memory;
  costmodel::RooflineParams roofline;
  CostModelKind cost_kind = CostModelKind::kRoofline;
  // costmodel.time_scale: every iteration's time x this (1: as the model says; a what-if for GPUs
  // or an engine a few percent slower or faster, and the ends of a prediction band).
  double time_scale = 1.0;
  // costmodel.kind "profile": the fitted profile (the hardware's `profile`, or costmodel.profile).
  std::shared_ptr<const fit::FittedProfile> profile;
  costmodel::ProfileRef profile_ref;
  Json cost_info;  // kind, and the profile's name, source, GPU and extrapolation (every output records it)
  SloConfig slo;
  OutputConfig outputs;
  bool fast_forward = true;  // simulator.fast_forward: skip steady decode stretches (exact)
  std::unique_ptr<traces::RequestSource> workload;
  Json resolved;  // every value used, defaults included

  int replicas_per_server() const { return hardware.gpus_per_server / parallel.gpus(); }
  int num_replicas() const { return servers * replicas_per_server(); }
};

// The cost model the experiment names (costmodel.kind: the roofline or a fitted profile), built for
// its model, hardware, policy dims and parallelism, its times x costmodel.time_scale.
std::unique_ptr<costmodel::CostModel> make_cost_model(const Experiment& e);
// The same cost model for another model shape and policy dims (e.g. a few of the experiment's
// layers: `fdcsim layer-check` prices the layers it times).
std::unique_ptr<costmodel::CostModel> make_cost_model(const Experiment& e, const costmodel::ModelSpec& model,
                                                      const costmodel::ModelDims& dims);

// A fitted profile by embedded name (configs/profiles/<name>.json) or path (relative to base_dir).
// Throws InputError naming `where` when it cannot be found or read.
std::pair<fit::FittedProfile, costmodel::ProfileRef> load_profile(const std::string& name_or_path,
                                                                  const std::string& base_dir,
                                                                  const std::string& where);
// A hardware config by embedded name or path.
costmodel::HardwareSpec load_hardware(const std::string& name_or_path);

// An experiment's JSON before reading: the config file (or embedded experiment) with the `--set`
// overrides applied, where it came from, and the folder its relative paths resolve against.
struct ExperimentInput {
  Json config;
  std::string source;
  std::string base_dir;
};
// config_path "" = the embedded default experiment. Throws InputError on an unknown name, an
// unreadable file or a bad override; the config itself is read by load_experiment_json.
ExperimentInput read_experiment_input(const std::string& config_path, const std::vector<std::string>& overrides);

// config_path "" = the embedded default experiment. Throws InputError on any bad input.
Experiment load_experiment(const std::string& config_path, const std::vector<std::string>& overrides);
// Same from an in-memory JSON (tests); base_dir resolves relative paths.
Experiment load_experiment_json(Json input, const std::string& source, const std::string& base_dir);

// `--gpus N` of simulate, max-rate, engine and validate: the input's resolved config on one server
// of N GPUs (hardware.gpus_per_server = N, cluster.servers = 1); the source notes the change.
// gpus <= 0 returns the input unchanged.
ExperimentInput on_one_server(ExperimentInput in, int gpus);
// load_experiment of that input.
Experiment load_experiment(const std::string& config_path, const std::vector<std::string>& overrides, int gpus);

// The input with every iteration `scale` times as long as its cost model says, on top of any
// costmodel.time_scale it sets (the ends of a search's --band); the source notes it.
ExperimentInput with_time_scale(ExperimentInput in, double scale);

// One configuration of a comparison (max-rate, min-servers): the input with some keys set.
struct Variant {
  ExperimentInput input;  // its source notes the settings
  std::string label;      // the values set, ", "-joined ("p5, fdc-uniform-50"); "" for the input alone
  Json settings;          // key -> value (an object; empty for the input alone)
};
// `--vary KEY=V1,V2,...` (repeatable; a key given again adds values) and `--compare-policy NAME...`:
// the cross product of their values, the --vary keys outermost in the order first given, the
// policies innermost; the input alone when there are none. A value text that is valid JSON as a
// whole is one value ({"process": "burst"}); otherwise it is split at commas, and each piece is
// read as --set reads a value (JSON when valid, else a string). Throws InputError naming the
// option on an empty key or value.
std::vector<Variant> variants_of(const ExperimentInput& in, const std::vector<std::string>& vary,
                                 const std::vector<std::string>& policies);

}  // namespace fdc::sim
