#include "apps/fdcsim/layer_check_command.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "apps/fdcsim/run_guarded.h"
#include "core/config.h"
#include "core/error.h"
#include "core/wall_clock.h"
#include "sim/experiment.h"
#if FDCSIM_HAVE_CUDA
#include "kernels/attention/attention.h"
#include "validate/engine/layer_timing.h"
#endif

#ifndef FDCSIM_GIT_COMMIT
#define FDCSIM_GIT_COMMIT "unknown"
#endif

namespace fdc::cli {

void add_layer_check_command(CLI::App& app, LayerCheckOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "layer-check",
      "Time one transformer layer on this machine's GPU with the engine's kernels (the model built with two "
      "layer counts, the difference per layer) and compare with the sum of the ops the config's cost model "
      "predicts for it, per batch (docs/fit.md, \"Layer-level check\"). Needs a CUDA build; --measured "
      "re-predicts a saved report on any build.");
  CLI::Option* config = sub->add_option("--config,-c", o.config,
                                        "Experiment: an embedded name or a .json path (docs/config.md); its "
                                        "model, policy, hardware and costmodel are used, its workload is not");
  CLI::Option* measured = sub->add_option(
      "--measured,-m", o.measured,
      "A report written by --out: re-predict its measured batches with the cost model of its config (after "
      "--set), print the table and write the report again; no GPU, any build");
  measured->excludes(config);
  sub->add_option("--set", o.overrides,
                  "Override one config value, KEY=VALUE (dotted keys); repeatable. With --measured: of the report's "
                  "config, for the prediction (e.g. costmodel.profile=PATH or costmodel.kind=roofline)");
  sub->add_option("--gpus", o.gpus,
                  "As for `fdcsim engine`: one server of N GPUs (hardware.gpus_per_server=N, cluster.servers=1); "
                  "the check itself times one GPU, so tp and sp must be 1")
      ->check(CLI::PositiveNumber);
  sub->add_option("--batches", o.batches,
                  "Comma-separated batches; a batch is parts joined by '+': prefill:BxN (B prompts of N tokens), "
                  "prefill:BxN@C (chunks of N tokens after C cached ones), decode:BxC (B decode steps after C "
                  "cached tokens); e.g. prefill:1x512+decode:32x1024. Default: " +
                      std::string(validate::kDefaultLayerBatches));
  sub->add_option("--layers", o.layers,
                  "S,L: layer counts of the short and the long model (default 2,6); the per-layer time is "
                  "(t(L) - t(S)) / (L - S), the mean of policy layers first+S .. first+L-1");
  sub->add_option("--first-layer", o.first_layer,
                  "First policy layer of both models (default 0); with per-layer rank tables, run several to cover "
                  "the model")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--repeats", o.repeats,
                  "Timed forwards of each model per batch (default 20); median and P90 reported")
      ->check(CLI::PositiveNumber);
  sub->add_option("--warmup", o.warmup, "Untimed forwards of each model per batch before timing (default 3)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--device", o.device, "CUDA device (default 0)")->check(CLI::NonNegativeNumber);
  sub->add_flag("--per-op", o.per_op,
                "Also measure every op of the layer: each repeat also runs a pair of forwards that record a CUDA "
                "event after every op of every layer (about a microsecond each), whose intervals give the per-op "
                "times; the layer's total still comes from the pair without events; off by default");
  sub->add_option("--out,-o", o.out, "Also write the report as JSON to this file (with provenance)");
  sub->add_flag("--quiet,-q", o.quiet, "No table on stdout and no progress on stderr (errors still go to stderr)");
  // What describes a run on the GPU is the report's own with --measured.
  for (const char* name :
       {"--gpus", "--batches", "--layers", "--first-layer", "--repeats", "--warmup", "--device", "--per-op"})
    measured->excludes(sub->get_option(name));
}

namespace {

Json provenance(const LayerCheckOptions& o, const sim::Experiment& exp) {
  Json j;
  j["date_utc"] = fdc::utc_now();
  j["git_commit"] = FDCSIM_GIT_COMMIT;
  j["fdcsim_version"] = FDCSIM_VERSION;
  j["command_line"] = o.command_line;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) j["hostname"] = host;
  j["cost_model_info"] = exp.cost_info;
  j["config"] = exp.resolved;
  return j;
}

void write_report(const LayerCheckOptions& o, const validate::LayerCheckContext& ctx,
                  const std::vector<validate::LayerCheckRow>& rows, const Json& prov) {
  if (!o.quiet) validate::print_layer_table(std::cout, ctx, rows);
  if (o.out.empty()) return;
  const std::filesystem::path path(o.out);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path);
  out << validate::layer_check_json(ctx, rows, prov).dump(2) << "\n";
  out.close();
  if (!out)
    throw std::filesystem::filesystem_error("cannot write the report", path, std::make_error_code(std::errc::io_error));
  if (!o.quiet) std::cout << "  report: " << o.out << "\n";
}

// --measured: the report's batches and measured times, the prediction of its config (with --set).
int repredict(const LayerCheckOptions& o) {
  const validate::SavedLayerCheck saved = validate::read_layer_check_report(o.measured);
  Json config = saved.config;
  for (const auto& s : o.overrides) apply_override(config, s);
  std::string source = o.measured + " (report config)";
  if (!o.overrides.empty()) source += " with --set overrides";
  const sim::Experiment exp =
      sim::load_experiment_json(config, source, std::filesystem::path(o.measured).parent_path().string());
  const std::vector<validate::LayerCheckRow> rows = validate::repredict_layer_check(exp, saved);
  validate::LayerCheckContext ctx = saved.context;
  ctx.experiment = exp.name + " (" + exp.source + ")";
  ctx.model = exp.model.name;
  ctx.policy = exp.policy.name;
  ctx.cost_model = sim::make_cost_model(exp)->describe();
  Json prov = provenance(o, exp);
  std::string labels;
  for (const auto& b : saved.batches) labels += (labels.empty() ? "" : ",") + b.label;
  prov["batches"] = labels;
  if (saved.provenance.contains("repeats")) prov["repeats"] = saved.provenance["repeats"];
  // The measurement's own provenance, kept through any number of re-predictions.
  prov["measured_provenance"] =
      saved.provenance.contains("measured_provenance") ? saved.provenance["measured_provenance"] : saved.provenance;
  write_report(o, ctx, rows, prov);
  return 0;
}

}  // namespace

int run_layer_check(const LayerCheckOptions& o) {
  return run_guarded([&]() -> int {
    if (!o.measured.empty()) {
      if (!o.config.empty())
        throw InputError(
            "layer-check: --config EXPERIMENT measures on this machine's GPU, --measured REPORT "
            "re-predicts a saved report; give one of them");
      return repredict(o);
    }
    if (o.config.empty())
      throw InputError(
          "layer-check: give --config EXPERIMENT (measure one layer on this machine's GPU) or "
          "--measured REPORT (re-predict a report written by --out)");
    // Everything that can be refused is checked before any GPU work, on any build.
    const std::vector<validate::LayerBatch> batches = validate::parse_layer_batches(o.batches);
    const sim::Experiment exp = sim::load_experiment(o.config, o.overrides, o.gpus);
    const validate::LayerWindow window = validate::parse_layer_window(o.layers, o.first_layer, exp.model.num_layers);
    validate::check_layer_batches(exp, batches);
    std::vector<validate::LayerPrediction> predicted;
    for (const auto& b : batches) predicted.push_back(validate::predict_layer(exp, window, b));
#if FDCSIM_HAVE_CUDA
    if (!o.out.empty()) {
      const std::filesystem::path path(o.out);
      if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
      // Fails early, before any GPU work, when the path is not writable; appends nothing and leaves
      // no empty file behind, so that a run that fails later keeps an earlier report whole.
      const bool existed = std::filesystem::exists(path);
      {
        std::ofstream probe(path, std::ios::app);
        if (!probe)
          throw std::filesystem::filesystem_error("cannot write the report", path,
                                                  std::make_error_code(std::errc::io_error));
      }
      if (!existed) std::filesystem::remove(path);
    }
    engine::LayerTimingOptions to;
    to.repeats = o.repeats;
    to.warmup = o.warmup;
    to.device = o.device;
    to.per_op = o.per_op;
    if (!o.quiet) to.progress = [](const std::string& line) { std::cerr << "layer-check: " << line << std::endl; };
    const engine::LayerTimings timings = engine::time_layers(exp, window, batches, to);
    std::vector<validate::LayerCheckRow> rows;
    for (size_t i = 0; i < batches.size(); ++i)
      rows.push_back(validate::compare_layer(batches[i], window, timings.batches[i], predicted[i]));
    validate::LayerCheckContext ctx;
    ctx.device = timings.device;
    ctx.experiment = exp.name + " (" + exp.source + ")";
    ctx.model = exp.model.name;
    ctx.policy = exp.policy.name;
    ctx.cost_model = sim::make_cost_model(exp)->describe();
    ctx.window = window;
    ctx.warmup = o.warmup;
    Json prov = provenance(o, exp);
    prov["batches"] = o.batches;
    prov["repeats"] = o.repeats;
    prov["per_op"] = o.per_op;
    prov["gemm_planning"] = timings.gemm_planning;
    prov["decode_slot_index"] = kernels::attn::to_string(kernels::attn::decode_uneven_slot_index());
    write_report(o, ctx, rows, prov);
    return 0;
#else
    (void)predicted;
    throw InputError(
        "this fdcsim was built without CUDA: layer-check times the layer on a GPU and needs a CUDA build (nvcc "
        "found at configure time, or -DFDCSIM_CUDA=ON); the batches, the config and its cost model are valid");
#endif
  });
}

}  // namespace fdc::cli
