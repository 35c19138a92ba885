// A layer-check report as `fdcsim layer-check --out` writes it, from synthetic measurements, in a
// temporary file: the input of the tests of `--measured`.
#pragma once

#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "sim/experiment.h"
#include "validate/layer_check.h"

namespace fdc::test {

// A file in the system temp directory holding `j`, removed with the object.
struct SavedReport {
  std::string path;
  explicit SavedReport(const Json& j) {
    static int n = 0;  // one process runs the tests in one thread
    path = (std::filesystem::temp_directory_path() /
            ("fdcsim_layer_check_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + ".json"))
               .string();
    std::ofstream(path) << j.dump(2);
  }
  ~SavedReport() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

// Three timed pairs per batch (long - short about 4.2 ms), predicted by `e`; provenance holds the
// config as a run stores it. per_op: each forward also split by op as `layer-check --per-op`
// measures it (norm 10%, attention 30%, mlp_up 50%, outside the layers 10%; the attention's share
// goes to the op `attention`); evented: the split comes from forwards 5% slower with their events,
// whose totals are kept (as since 2026-12-05, afternoon), else from the timed forwards themselves.
inline Json synthetic_report(const sim::Experiment& e, const std::vector<validate::LayerBatch>& batches,
                             const validate::LayerWindow& w, bool per_op = false,
                             costmodel::OpKind attention = costmodel::OpKind::kAttnDecode, bool evented = false) {
  std::vector<validate::LayerCheckRow> rows;
  for (size_t i = 0; i < batches.size(); ++i) {
    const double base = 1.0 + static_cast<double>(i);
    validate::LayerMeasurement m;
    m.short_ms = {base, base + 0.1, base - 0.05};
    m.long_ms = {base + 4.2, base + 4.5, base + 3.9};
    m.short_host_ms = {0.2, 0.21, 0.19};
    m.long_host_ms = {0.3, 0.31, 0.29};
    if (per_op) {
      auto split = [attention](double ms) {
        std::array<double, costmodel::kNumOpKinds> op{};
        op[static_cast<size_t>(costmodel::OpKind::kNorm)] = 0.1 * ms;
        op[static_cast<size_t>(attention)] = 0.3 * ms;
        op[static_cast<size_t>(costmodel::OpKind::kMlpUp)] = 0.5 * ms;
        return op;
      };
      const double f = evented ? 1.05 : 1.0;
      for (double ms : m.short_ms) {
        m.short_op_ms.push_back(split(f * ms));
        m.short_outside_ms.push_back(0.1 * f * ms);
        if (evented) m.short_evented_ms.push_back(f * ms);
      }
      for (double ms : m.long_ms) {
        m.long_op_ms.push_back(split(f * ms));
        m.long_outside_ms.push_back(0.1 * f * ms);
        if (evented) m.long_evented_ms.push_back(f * ms);
      }
    }
    rows.push_back(validate::compare_layer(batches[i], w, m, validate::predict_layer(e, w, batches[i])));
  }
  validate::LayerCheckContext c;
  c.device = "NVIDIA H100 80GB HBM3";
  c.experiment = e.name + " (" + e.source + ")";
  c.model = e.model.name;
  c.policy = e.policy.name;
  c.cost_model = sim::make_cost_model(e)->describe();
  c.window = w;
  c.warmup = 3;
  return validate::layer_check_json(c, rows, Json{{"config", e.resolved}, {"repeats", 3}});
}

}  // namespace fdc::test
