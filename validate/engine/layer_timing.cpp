#include "validate/engine/layer_timing.h"

#include <algorithm>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "validate/engine/gpu_model.h"

namespace fdc::engine {

LayerTimings time_layers(const sim::Experiment& exp, const validate::LayerWindow& window,
                         const std::vector<validate::LayerBatch>& batches, const LayerTimingOptions& opt) {
  FDC_CHECK(opt.repeats >= 1 && opt.warmup >= 0, "repeats " << opt.repeats << ", warm-up " << opt.warmup);
  const int bs = exp.scheduler.block_size;
  // One KV cache per model, sized for the largest batch: every batch reuses the same block ids.
  int64_t num_blocks = 1;
  int max_tokens = 1, max_seqs = 1;
  for (const auto& b : batches) {
    num_blocks = std::max(num_blocks, validate::blocks_needed(b, bs));
    max_tokens = std::max<int>(max_tokens, static_cast<int>(b.new_tokens()));
    max_seqs = std::max<int>(max_seqs, static_cast<int>(b.seqs()));
  }
  auto report = [&](const std::string& line) {
    if (opt.progress) opt.progress(line);
  };
  auto build = [&](int layers) {
    const validate::LayerSlice slice = validate::slice_layers(exp.model, exp.dims, window.first, layers);
    GpuModelConfig mc;
    mc.model = slice.model;
    mc.dims = slice.dims;
    mc.block_size = bs;
    mc.num_blocks = num_blocks;
    mc.max_tokens = max_tokens;
    mc.max_seqs = max_seqs;
    mc.seed = exp.seed;
    mc.device = opt.device;
    mc.op_times = opt.per_op;
    mc.plans_before_start = true;  // the layers' GPU time, not the host's planning
    std::ostringstream name;
    name << exp.source << " (" << layers << " of " << exp.model.name << "'s layers, " << num_blocks
         << " KV blocks for the largest batch)";
    mc.config_name = name.str();
    std::ostringstream line;
    line << "building the " << layers << "-layer model (policy layers " << window.first << ".."
         << window.first + layers - 1 << ", " << num_blocks << " KV blocks, " << max_tokens << " tokens, " << max_seqs
         << " sequences)";
    report(line.str());
    return std::make_unique<GpuModel>(mc);
  };
  // Both models stay on the GPU so that every timed pair runs them back to back.
  const auto short_model = build(window.short_layers);
  const auto long_model = build(window.long_layers);

  LayerTimings out;
  out.device = short_model->device_name();
  out.gemm_planning = long_model->gemm_planning();
  std::vector<int32_t> next;
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    const validate::LayerBatch& b = batches[bi];
    std::ostringstream line;
    line << "[" << bi + 1 << "/" << batches.size() << "] " << b.label << ": " << opt.warmup << " warm-up + "
         << opt.repeats << " timed forwards of each model";
    report(line.str());
    const costmodel::Batch batch = b.batch();
    const auto tables = validate::make_block_tables(b, bs, num_blocks, exp.seed ^ (0x9e3779b97f4a7c15ULL * (bi + 1)));
    // Token ids: any valid ids (timing does not depend on them), enough for the longest chunk.
    int32_t longest = 1;
    for (const auto& s : batch.seqs) longest = std::max(longest, s.new_tokens);
    std::vector<int32_t> ids(static_cast<size_t>(longest));
    for (size_t i = 0; i < ids.size(); ++i)
      ids[i] = static_cast<int32_t>((i * 7919 + 1) % static_cast<size_t>(exp.model.vocab));
    std::vector<SeqStep> steps;
    for (size_t j = 0; j < batch.seqs.size(); ++j) {
      const auto& s = batch.seqs[j];
      steps.push_back(SeqStep{s.new_tokens, s.context_before, false, ids.data(), tables[j].data(),
                              static_cast<int32_t>(tables[j].size())});
    }
    for (int i = 0; i < opt.warmup; ++i) {
      short_model->forward(steps, next);
      long_model->forward(steps, next);
    }
    validate::LayerMeasurement m;
    // Which model runs first alternates, so that neither always follows the other.
    auto pair = [&](int r, StepTimes& ts, StepTimes& tl) {
      if (r % 2 == 0) {
        short_model->forward(steps, next, &ts);
        long_model->forward(steps, next, &tl);
      } else {
        long_model->forward(steps, next, &tl);
        short_model->forward(steps, next, &ts);
      }
    };
    for (int r = 0; r < opt.repeats; ++r) {
      // Per op: the totals from a pair without the per-op events, then the split from a pair with
      // them (whose totals are kept apart: the events cost about a microsecond each).
      StepTimes ts, tl;
      if (opt.per_op) {
        short_model->set_op_events(false);
        long_model->set_op_events(false);
      }
      pair(r, ts, tl);
      m.short_ms.push_back(ts.gpu_ms);
      m.long_ms.push_back(tl.gpu_ms);
      m.short_host_ms.push_back(ts.host_ms);
      m.long_host_ms.push_back(tl.host_ms);
      if (opt.per_op) {
        short_model->set_op_events(true);
        long_model->set_op_events(true);
        StepTimes es, el;
        pair(r, es, el);
        m.short_op_ms.push_back(es.op_ms);
        m.long_op_ms.push_back(el.op_ms);
        m.short_outside_ms.push_back(es.outside_layers_ms);
        m.long_outside_ms.push_back(el.outside_layers_ms);
        m.short_evented_ms.push_back(es.gpu_ms);
        m.long_evented_ms.push_back(el.gpu_ms);
      }
    }
    out.batches.push_back(std::move(m));
  }
  return out;
}

}  // namespace fdc::engine
