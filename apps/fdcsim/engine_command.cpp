#include "apps/fdcsim/engine_command.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "apps/fdcsim/run_guarded.h"
#include "core/error.h"
#include "sim/experiment.h"
#if FDCSIM_HAVE_CUDA
#include "validate/engine/engine.h"
#endif

namespace fdc::cli {

void add_engine_options(CLI::App* sub, EngineCommandOptions& o, bool config_required) {
  auto* c = sub->add_option("--config,-c", o.config, "Experiment: an embedded name or a .json path (docs/config.md)");
  if (config_required) c->required();
  sub->add_option("--set", o.overrides, "Override one config value, KEY=VALUE (dotted keys); repeatable");
  sub->add_option("--gpus", o.gpus,
                  "Run one server of N GPUs: sets hardware.gpus_per_server=N and cluster.servers=1 (the engine "
                  "runs one replica, so N must equal tp x sp)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--weights", o.weights,
                  "Weights in safetensors format with Hugging Face Llama/OPT tensor names (default: random weights "
                  "with the model's shapes; timing does not depend on values)");
  sub->add_option("--device", o.device, "First CUDA device to use (default 0; sp ranks use the next ones)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--timeout-s", o.timeout_s,
                  "With sp > 1: stop every rank after this many seconds (default 3600); a failed rank stops the "
                  "others at once")
      ->check(CLI::PositiveNumber);
  const std::map<std::string, kernels::attn::DecodePath> kernels{{"auto", kernels::attn::DecodePath::kAuto},
                                                                 {"cuda-cores", kernels::attn::DecodePath::kCudaCores},
                                                                 {"tensor-cores", kernels::attn::DecodePath::kMma}};
  sub->add_option("--decode-kernel", o.decode_path,
                  "Decode attention kernel of every layer: auto (default: the CUDA-core kernel in layers with token "
                  "classes or where every KV head has r_qk = r_v = 64 or 128, the tensor-core kernel elsewhere; "
                  "docs/kernels.md), cuda-cores or tensor-cores")
      ->transform(CLI::CheckedTransformer(kernels, CLI::ignore_case));
  sub->add_flag("--quiet,-q", o.quiet, "Print nothing on stdout");
}

void add_engine_command(CLI::App& app, EngineCommandOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "engine",
      "Serve an experiment's workload on this machine's GPUs with the validation engine (the simulator's own "
      "scheduler driving real FDC kernels) and write the measured timeline. Needs a CUDA build.");
  add_engine_options(sub, o, true);
  sub->add_option("--timeline-out", o.timeline_out,
                  "Measured timeline, JSON lines (default results/engine-<experiment>/timeline.jsonl)");
}

#if FDCSIM_HAVE_CUDA

std::string run_engine_to_timeline(const EngineCommandOptions& o) {
  sim::Experiment exp = sim::load_experiment(o.config, o.overrides, o.gpus);
  if (o.gpus > 0) {
    if (!o.quiet)
      std::cout << "fdcsim engine: one server of " << o.gpus << " GPU(s) (hardware.gpus_per_server=" << o.gpus
                << ", cluster.servers=1)\n";
  }
  const std::filesystem::path path = o.timeline_out.empty()
                                         ? std::filesystem::path("results") / ("engine-" + exp.name) / "timeline.jsonl"
                                         : std::filesystem::path(o.timeline_out);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path);  // fails early, before any GPU work, when the path is not writable
  if (!out) throw std::filesystem::filesystem_error("cannot write the timeline", path, std::make_error_code(std::errc::io_error));
  out.close();
  engine::EngineOptions eo;
  eo.weights = o.weights;
  eo.device = o.device;
  eo.timeout_s = o.timeout_s;
  eo.quiet = o.quiet;
  eo.decode_path = o.decode_path;
  if (!o.quiet)
    std::cout << "fdcsim engine: " << exp.name << ": " << exp.model.name << ", policy " << exp.policy.name << ", sp="
              << exp.parallel.sp << ", " << exp.workload->describe() << std::endl;
  engine::run_engine(exp, eo, path.string());
  return path.string();
}

#else

std::string run_engine_to_timeline(const EngineCommandOptions&) {
  throw InputError(
      "this fdcsim was built without CUDA: the validation engine needs a CUDA build (nvcc found at configure time, "
      "or -DFDCSIM_CUDA=ON); `fdcsim validate --measured TIMELINE` compares a timeline measured elsewhere");
}

#endif

int run_engine_command(const EngineCommandOptions& o) {
  return run_guarded([&] {
    run_engine_to_timeline(o);
    return 0;
  });
}

}  // namespace fdc::cli
