#include "sim/experiment.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "configs/embedded_configs.h"
#include "core/error.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/scaled.h"
#include "traces/workload.h"

namespace fdc::sim {

const char* to_string(RouterKind r) {
  switch (r) {
    case RouterKind::kRoundRobin:
      return "round_robin";
    case RouterKind::kLeastOutstanding:
      return "least_outstanding";
    case RouterKind::kKvAware:
      return "kv_aware";
  }
  return "?";
}

namespace {

// A profile or hardware reference that names a file (a path, or a .json name) rather than an
// embedded config.
bool names_a_file(const std::string& s) {
  return s.find('/') != std::string::npos || (s.size() > 5 && s.substr(s.size() - 5) == ".json");
}

// A referenced config: loaded document plus where it came from.
struct Ref {
  std::shared_ptr<Json> doc;
  std::string source;
};

std::string embedded_names(std::string_view kind) {
  std::string out;
  for (const auto& c : configs::embedded_configs())
    if (c.kind == kind) out += (out.empty() ? "" : ", ") + std::string(c.name);
  return out;
}

Ref resolve_ref(const ConfigNode& root, const std::string& key, std::string_view kind, const std::string& base_dir) {
  const Json& v = root.raw(key);
  if (v.is_object()) return {std::make_shared<Json>(v), root.where(key)};
  if (!v.is_string())
    root.fail(key, "a name (" + embedded_names(kind) + "), a path to a .json file, or an inline object");
  const std::string s = v.get<std::string>();
  const bool is_path = s.find('/') != std::string::npos || (s.size() > 5 && s.substr(s.size() - 5) == ".json");
  if (is_path) {
    std::filesystem::path p(s);
    if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    return {std::make_shared<Json>(load_json_file(p.string())), p.string()};
  }
  const auto* c = configs::find_embedded_config(kind, s);
  if (!c) root.fail(key, "a known " + std::string(kind) + " name (" + embedded_names(kind) + ") or a .json path");
  return {std::make_shared<Json>(parse_json_text(std::string(c->text), std::string(c->path))), std::string(c->path)};
}

}  // namespace

Experiment load_experiment_json(Json input, const std::string& source, const std::string& base_dir) {
  Experiment e;
  e.source = source;
  e.resolved = Json::object();
  ConfigNode root(input, source, "", e.resolved);
  e.name = root.get_or<std::string>("name", "unnamed");
  root.get_or<std::string>("comment", "");
  e.seed = root.get_or<uint64_t>("seed", 42);

  // Referenced documents: parse each with its own source name, record the resolved object.
  Ref model_ref = resolve_ref(root, "model", "models", base_dir);
  Ref hw_ref = resolve_ref(root, "hardware", "hardware", base_dir);
  Ref policy_ref = resolve_ref(root, "policy", "policies", base_dir);
  e.resolved["model"] = Json::object();
  e.resolved["hardware"] = Json::object();
  e.resolved["policy"] = Json::object();
  e.model = costmodel::parse_model(ConfigNode(*model_ref.doc, model_ref.source, "", e.resolved["model"]));
  e.hardware = costmodel::parse_hardware(ConfigNode(*hw_ref.doc, hw_ref.source, "", e.resolved["hardware"]));
  e.policy = parse_policy(ConfigNode(*policy_ref.doc, policy_ref.source, "", e.resolved["policy"]));

  ConfigNode cluster = root.child_or_empty("cluster");
  e.servers = cluster.get_or<int>("servers", 1, Bounds::at_least(1));
  e.parallel.tp = cluster.get_or<int>("tp", 1, Bounds::at_least(1));
  e.parallel.sp = cluster.get_or<int>("sp", 1, Bounds::at_least(1));
  const std::string router =
      cluster.get_enum_or("router", "round_robin", {"round_robin", "least_outstanding", "kv_aware"});
  for (RouterKind k : {RouterKind::kRoundRobin, RouterKind::kLeastOutstanding, RouterKind::kKvAware})
    if (router == to_string(k)) e.router = k;
  cluster.finish();
  const int g = e.parallel.gpus();
  if (e.hardware.gpus_per_server % g != 0)
    cluster.fail("tp", "tp * sp dividing the server's " + std::to_string(e.hardware.gpus_per_server) + " GPUs (tp=" +
                           std::to_string(e.parallel.tp) + ", sp=" + std::to_string(e.parallel.sp) + ")");
  if (e.model.num_heads < g)
    cluster.fail("sp", "tp * sp <= the model's " + std::to_string(e.model.num_heads) + " attention heads");

  e.scheduler = parse_scheduler_config(root.child_or_empty("scheduler"));
  if (e.scheduler.max_model_len == 0) {
    e.scheduler.max_model_len = e.model.max_model_len;
    e.resolved["scheduler"]["max_model_len"] = e.model.max_model_len;
  }
  e.memory = parse_memory_config(root.child_or_empty("memory"));

  ConfigNode cm = root.child_or_empty("costmodel");
  e.cost_kind = cm.get_enum_or("kind", "roofline", {"roofline", "profile"}) == "profile" ? CostModelKind::kProfile
                                                                                         : CostModelKind::kRoofline;
  const std::string profile_name = cm.get_or<std::string>("profile", e.hardware.profile);
  std::string profile_config_value;
  if (cm.has("profile_info")) cm.raw("profile_info");  // informative: written by a run, ignored on input
  e.roofline = costmodel::parse_roofline_params(cm);
  e.time_scale = cm.get_or<double>("time_scale", 1.0, Bounds::positive());
  cm.finish();
  if (e.cost_kind == CostModelKind::kProfile) {
    if (profile_name.empty())
      cm.fail("kind", "\"roofline\", or a hardware config with a `profile` (hardware '" + e.hardware.name +
                          "' names none; or set costmodel.profile)");
    auto [prof, ref] = load_profile(profile_name, base_dir, cm.where("profile"));
    e.profile = std::make_shared<const fit::FittedProfile>(std::move(prof));
    e.profile_ref = ref;
    // The resolved config names the profile so that reading it again finds the same one (max-rate's
    // per-policy searches, config.resolved.json): the embedded name, or the file's absolute path.
    profile_config_value =
        names_a_file(profile_name) ? std::filesystem::absolute(ref.source).lexically_normal().string() : ref.name;
  }

  ConfigNode slo = root.child_or_empty("slo");
  e.slo.ttft_ms = slo.get_or<double>("ttft_ms", 2000.0, Bounds::positive());
  e.slo.tpot_ms = slo.get_or<double>("tpot_ms", 200.0, Bounds::positive());
  slo.finish();

  ConfigNode out = root.child_or_empty("outputs");
  e.outputs.per_request_csv = out.get_or<bool>("per_request_csv", true);
  e.outputs.kv_sample_interval_ms = out.get_or<double>("kv_sample_interval_ms", 1000.0, Bounds::positive());
  e.outputs.trace_max_iterations = out.get_or<int64_t>("trace_max_iterations", 200000, Bounds::at_least(1));
  out.finish();

  ConfigNode simc = root.child_or_empty("simulator");
  e.fast_forward = simc.get_or<bool>("fast_forward", true);
  simc.finish();

  e.workload = traces::make_request_source(root.child("workload"), e.seed, base_dir);
  root.finish();

  e.dims = resolve_policy(e.policy, e.model, e.scheduler.block_size);

  // Build the cost model once here, so a profile lacking an op is refused before any output.
  auto cost = make_cost_model(e);
  e.cost_info = {{"kind", e.cost_kind == CostModelKind::kProfile ? "profile" : "roofline"},
                 {"description", cost->describe()},
                 {"extrapolated", cost->extrapolated()}};
  if (e.time_scale != 1.0) e.cost_info["time_scale"] = e.time_scale;
  const costmodel::CostModel* unscaled = cost.get();
  if (const auto* s = dynamic_cast<const costmodel::ScaledCostModel*>(unscaled)) unscaled = &s->inner();
  if (const auto* fitted = dynamic_cast<const costmodel::FittedCostModel*>(unscaled)) {
    Json info = {{"name", e.profile_ref.name},
                 {"source", e.profile_ref.source},
                 {"gpu", e.profile->gpu},
                 {"extrapolated", fitted->extrapolated()},
                 {"derived", e.profile->extrapolated},
                 {"extrapolated_ops", fitted->extrapolated_ops()},
                 {"ops", fitted->used_ops()}};
    if (e.profile->derived.is_object() && e.profile->derived.contains("method"))
      info["derived_by"] = e.profile->derived["method"];
    e.cost_info["profile"] = info;
    e.resolved["costmodel"]["profile"] = profile_config_value;
    e.resolved["costmodel"]["profile_info"] = info;
  }
  return e;
}

std::pair<fit::FittedProfile, costmodel::ProfileRef> load_profile(const std::string& s, const std::string& base_dir,
                                                                  const std::string& where) {
  if (names_a_file(s)) {
    std::filesystem::path p(s);
    if (p.is_relative() && !base_dir.empty() && !std::filesystem::exists(p)) p = std::filesystem::path(base_dir) / p;
    return {fit::read_profile(p.string()), costmodel::ProfileRef{p.stem().string(), p.string()}};
  }
  const auto* c = configs::find_embedded_config("profiles", s);
  if (!c)
    throw InputError(where + ": no such cost profile '" + s + "' (embedded: " + embedded_names("profiles") +
                     "; or a path to a .json profile)");
  const std::string source = std::string(c->path) + " (embedded)";
  return {fit::profile_from_json(parse_json_text(std::string(c->text), source), source),
          costmodel::ProfileRef{s, std::string(c->path)}};
}

costmodel::HardwareSpec load_hardware(const std::string& s) {
  const bool is_path = names_a_file(s);
  Json doc, resolved = Json::object();
  std::string source;
  if (is_path) {
    doc = load_json_file(s), source = s;
  } else {
    const auto* c = configs::find_embedded_config("hardware", s);
    if (!c) throw InputError("no such hardware config '" + s + "' (embedded: " + embedded_names("hardware") + ")");
    source = std::string(c->path);
    doc = parse_json_text(std::string(c->text), source);
  }
  return costmodel::parse_hardware(ConfigNode(doc, source, "", resolved));
}

std::unique_ptr<costmodel::CostModel> make_cost_model(const Experiment& e) {
  return make_cost_model(e, e.model, e.dims);
}

std::unique_ptr<costmodel::CostModel> make_cost_model(const Experiment& e, const costmodel::ModelSpec& model,
                                                      const costmodel::ModelDims& dims) {
  std::unique_ptr<costmodel::CostModel> cost;
  if (e.cost_kind == CostModelKind::kProfile)
    cost = std::make_unique<costmodel::FittedCostModel>(model, dims, e.parallel, *e.profile, e.profile_ref);
  else
    cost = std::make_unique<costmodel::RooflineCostModel>(model, e.hardware, dims, e.parallel, e.roofline);
  return costmodel::scale_cost_model(std::move(cost), e.time_scale);
}

ExperimentInput read_experiment_input(const std::string& config_path, const std::vector<std::string>& overrides) {
  ExperimentInput in;
  const bool is_name = !config_path.empty() && config_path.find('/') == std::string::npos &&
                       !(config_path.size() > 5 && config_path.substr(config_path.size() - 5) == ".json");
  if (config_path.empty() || is_name) {
    const std::string name = config_path.empty() ? "default" : config_path;
    const auto* c = configs::find_embedded_config("experiments", name);
    if (!c)
      throw InputError("--config " + config_path + ": no such embedded experiment (known: " +
                       embedded_names("experiments") + "); give a path to a .json file for your own");
    in.source = std::string(c->path) + " (embedded)";
    in.config = parse_json_text(std::string(c->text), in.source);
  } else {
    in.source = config_path;
    in.config = load_json_file(config_path);
    in.base_dir = std::filesystem::path(config_path).parent_path().string();
  }
  for (const auto& o : overrides) apply_override(in.config, o);
  if (!overrides.empty()) in.source += " with --set overrides";
  return in;
}

Experiment load_experiment(const std::string& config_path, const std::vector<std::string>& overrides) {
  ExperimentInput in = read_experiment_input(config_path, overrides);
  return load_experiment_json(std::move(in.config), in.source, in.base_dir);
}

ExperimentInput on_one_server(ExperimentInput in, int gpus) {
  if (gpus <= 0) return in;
  Json cfg = load_experiment_json(in.config, in.source, in.base_dir).resolved;
  cfg["hardware"]["gpus_per_server"] = gpus;
  cfg["cluster"]["servers"] = 1;
  in.config = std::move(cfg);
  in.source += " (--gpus " + std::to_string(gpus) + ")";
  return in;
}

Experiment load_experiment(const std::string& config_path, const std::vector<std::string>& overrides, int gpus) {
  ExperimentInput in = on_one_server(read_experiment_input(config_path, overrides), gpus);
  return load_experiment_json(std::move(in.config), in.source, in.base_dir);
}

ExperimentInput with_time_scale(ExperimentInput in, double scale) {
  double base = 1.0;
  if (in.config.contains("costmodel") && in.config["costmodel"].is_object() &&
      in.config["costmodel"].contains("time_scale") && in.config["costmodel"]["time_scale"].is_number())
    base = in.config["costmodel"]["time_scale"].get<double>();
  in.config["costmodel"]["time_scale"] = base * scale;
  char note[48];
  std::snprintf(note, sizeof note, ", every iteration x %g", scale);
  in.source += note;
  return in;
}

std::vector<Variant> variants_of(const ExperimentInput& in, const std::vector<std::string>& vary,
                                 const std::vector<std::string>& policies) {
  // The dimensions: (key, value texts), in the order the keys first appear.
  std::vector<std::pair<std::string, std::vector<std::string>>> dims;
  auto add = [&](const std::string& key, const std::string& value) {
    auto it = std::find_if(dims.begin(), dims.end(), [&](const auto& d) { return d.first == key; });
    if (it == dims.end()) it = dims.insert(dims.end(), {key, {}});
    it->second.push_back(value);
  };
  for (const auto& v : vary) {
    const auto eq = v.find('=');
    FDC_INPUT_CHECK(eq != std::string::npos && eq > 0,
                    "--vary " << v << ": expected KEY=V1,V2,... (for example hardware=p4de,p5)");
    const std::string key = v.substr(0, eq), text = v.substr(eq + 1);
    if (!text.empty() &&
        (!override_value(text).is_string() || text.front() == '"')) {  // valid JSON as a whole: one value
      add(key, text);
      continue;
    }
    size_t start = 0;
    while (true) {
      const size_t comma = text.find(',', start);
      const std::string piece = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      FDC_INPUT_CHECK(!piece.empty(), "--vary " << v << ": an empty value");
      add(key, piece);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (!policies.empty()) {
    const auto it = std::find_if(dims.begin(), dims.end(), [](const auto& d) { return d.first == "policy"; });
    FDC_INPUT_CHECK(it == dims.end(), "--compare-policy and --vary policy=...: give the policies once");
  }
  for (const auto& name : policies) {
    FDC_INPUT_CHECK(!name.empty(), "--compare-policy: an empty policy name");
    add("policy", name);
  }
  std::vector<Variant> out{{in, "", Json::object()}};
  for (const auto& [key, values] : dims) {
    std::vector<Variant> next;
    for (const Variant& v : out)
      for (const std::string& text : values) {
        Variant w = v;
        apply_override(w.input.config, key + "=" + text);
        w.settings[key] = override_value(text);
        w.label += (w.label.empty() ? "" : ", ") + text;
        next.push_back(std::move(w));
      }
    out = std::move(next);
  }
  for (Variant& v : out) {
    if (v.settings.empty()) continue;
    std::string set;
    for (const auto& [key, value] : v.settings.items()) set += (set.empty() ? "" : ", ") + key + "=" + value.dump();
    v.input.source = in.source + " with " + set;
  }
  return out;
}

}  // namespace fdc::sim
