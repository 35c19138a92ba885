// The layer-level check of the cost model (`fdcsim layer-check`, docs/fit.md): the sum of the ops
// the cost model predicts for one transformer layer against that layer's forward measured on the
// GPU with the engine's kernels, for prefill, decode and mixed batches. This half is plain C++
// (tested in CI): the batch list, the layer window, the prediction and the report. The timing
// itself is validate/engine/layer_timing.h (CUDA).
//
// Isolating one layer: the engine's model is built twice with the policy's layers
// [first, first + short_layers) and [first, first + long_layers); embedding, final norm, LM head
// and the per-iteration metadata upload are the same in both, so
//   per-layer time = (t(long) - t(short)) / (long_layers - short_layers),
// the mean time of the policy's layers [first + short_layers, first + long_layers), which the
// prediction prices too.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/attention_dims.h"
#include "costmodel/batch.h"
#include "costmodel/cost_model.h"
#include "costmodel/model_spec.h"
#include "costmodel/ops.h"
#include "sim/experiment.h"

namespace fdc::validate {

// ---- Batches -------------------------------------------------------------------------------------

// `seqs` alike sequences of a batch: prefill chunks of `new_tokens` (>= 2) after `context` cached
// tokens, or decode steps (one new token) after `context` cached tokens.
enum class PartKind { kPrefill, kDecode };
struct BatchPart {
  PartKind kind = PartKind::kDecode;
  int32_t seqs = 0;
  int32_t new_tokens = 0;
  int32_t context = 0;
};

// One batch of the check, as written on the command line (its label) and its parts.
struct LayerBatch {
  std::string label;
  std::vector<BatchPart> parts;

  // The cost model's batch: every sequence of every part, none emitting a token (the check times
  // no LM head). Decode parts come first, as the engine orders them.
  costmodel::Batch batch() const;
  int64_t seqs() const;
  int64_t new_tokens() const;
  int64_t max_kv_tokens() const;  // the longest sequence after the step (context + new tokens)
  std::string kind() const;       // "prefill", "decode" or "mixed"
};

// The default list of `--batches`: prefill alone (one and four prompts), decode at three batch sizes
// and contexts, and a prompt beside decode steps.
inline constexpr const char* kDefaultLayerBatches =
    "prefill:1x512,prefill:1x2048,prefill:4x512,decode:32x1024,decode:128x2048,decode:256x512,"
    "prefill:1x512+decode:32x1024";

// Parses a comma-separated list of batches. A batch is one part or several joined by '+'; a part is
//   prefill:BxN      B prompts of N tokens each (N >= 2), nothing cached
//   prefill:BxN@C    B prefill chunks of N tokens after C cached tokens (chunked prefill)
//   decode:BxC       B decode steps (one new token each) after C cached tokens (C >= 1)
// e.g. "prefill:1x512,decode:32x1024,prefill:1x512+decode:32x1024". Throws InputError naming the
// item and what was expected on a malformed one.
std::vector<LayerBatch> parse_layer_batches(const std::string& list);

// KV blocks of `block_size` tokens one batch needs (every sequence its own blocks).
int64_t blocks_needed(const LayerBatch& b, int block_size);

// Block tables for a batch: every sequence gets ceil((context + new) / block_size) distinct block
// ids out of [0, num_blocks) (at least blocks_needed), taken from a seeded shuffle of all ids, as
// a served cache hands them out after some churn. Sequences in LayerBatch::batch() order.
std::vector<std::vector<int32_t>> make_block_tables(const LayerBatch& b, int block_size, int64_t num_blocks,
                                                    uint64_t seed);

// ---- Layers --------------------------------------------------------------------------------------

// Which of the policy's layers are built and which are compared (see the file comment).
struct LayerWindow {
  int first = 0;         // first policy layer of both models
  int short_layers = 2;  // layers of the short model
  int long_layers = 6;   // layers of the long model
  int timed() const { return long_layers - short_layers; }
  int timed_begin() const { return first + short_layers; }  // the compared layers: [timed_begin, timed_end)
  int timed_end() const { return first + long_layers; }
};
// "S,L" (short and long layer counts) with the first layer; throws InputError when malformed,
// when S < 1, L <= S, or when first + L exceeds the model's num_layers.
LayerWindow parse_layer_window(const std::string& counts, int first, int num_layers);
// The same checks of a window read elsewhere (a saved report); `where` names it in the message.
void check_layer_window(const LayerWindow& w, int num_layers, const std::string& where);

// The model and policy dims of `count` consecutive layers starting at `first`.
struct LayerSlice {
  costmodel::ModelSpec model;
  costmodel::ModelDims dims;
};
LayerSlice slice_layers(const costmodel::ModelSpec& model, const costmodel::ModelDims& dims, int first, int count);

// True when some layer of `dims` keeps token classes (hi and lo dims differ and a block has lo
// slots): the engine classifies whole prompts only, so such a policy refuses chunked prefill.
bool has_token_classes(const costmodel::ModelDims& dims, int block_size);

// Refuses, with a message naming the config and the batch, what the check cannot run: tp or sp > 1
// (the check times one GPU), a sequence longer than the model's max_model_len, a chunked prefill
// with a token-class policy.
void check_layer_batches(const sim::Experiment& e, const std::vector<LayerBatch>& batches);

// ---- Prediction ----------------------------------------------------------------------------------

// The cost model's time of one layer (the mean over the window's compared layers), by op: the
// layer ops only (no iteration overhead, final norm or LM head).
struct LayerPrediction {
  std::array<double, costmodel::kNumOpKinds> op_s{};  // seconds per layer
  double total_s = 0;
  // Decode attention calls per layer, by kernel (fitted profiles; zero with the roofline).
  std::array<double, costmodel::kNumDecodeKernels> decode_calls{};
  // Fitted profiles: the ops priced outside their measured ranges, with the first such query.
  std::vector<costmodel::RangeUse> outside_measured;
};
LayerPrediction predict_layer(const sim::Experiment& e, const LayerWindow& w, const LayerBatch& b);

// ---- Comparison and report -----------------------------------------------------------------------

// Whole-forward GPU times (CUDA events) of the two models on one batch, one pair per repeat (the
// two models run alternately, so a drift in clocks reaches both), and host planning times.
// Measured per op (layer-check --per-op; empty otherwise): each forward's GPU time split by the
// op each interval between events ends (engine::StepTimes::op_ms, outside_layers_ms), ms, from a
// second pair of forwards that records those events, whose whole times are short_evented_ms and
// long_evented_ms; short_ms and long_ms then come from forwards without them. (Per-op reports
// written before 2026-12-05, afternoon, have no evented series: their one pair recorded the events,
// so their totals carry the events' cost.)
struct LayerMeasurement {
  std::vector<double> short_ms, long_ms;
  std::vector<double> short_host_ms, long_host_ms;
  std::vector<std::array<double, costmodel::kNumOpKinds>> short_op_ms, long_op_ms;  // one per repeat
  std::vector<double> short_outside_ms, long_outside_ms;  // embedding, metadata uploads: not a layer's ops
  std::vector<double> short_evented_ms, long_evented_ms;
};

struct LayerCheckRow {
  std::string label, kind;
  int64_t seqs = 0, new_tokens = 0, max_kv_tokens = 0;
  int repeats = 0;
  // Per layer, over the repeats: (long - short) / timed layers of each pair.
  double measured_ms = 0, measured_p90_ms = 0;
  double measured_min_ms = 0, measured_max_ms = 0;
  double short_ms = 0, long_ms = 0;            // medians of the whole forwards
  double short_host_ms = 0, long_host_ms = 0;  // medians of the host planning
  // Measured per op (has_measured_ops), per layer: the median over the repeats of
  // (long op - short op) / timed layers, as for the total; and the same of what lies outside the
  // layers (the metadata uploads of the long model's extra layout groups, if any).
  bool has_measured_ops = false;
  std::array<double, costmodel::kNumOpKinds> measured_op_ms{};
  double measured_outside_ms = 0;
  // Measured per op: the layer with the per-op events, per layer (median, as measured_ms), which
  // the ops and the outside time sum to; 0 when the report timed the total with the events too
  // (totals_have_op_events).
  double measured_evented_ms = 0;
  bool totals_have_op_events() const { return has_measured_ops && measured_evented_ms == 0; }
  LayerMeasurement samples;  // the timed pairs (empty when a report lacks them)
  LayerPrediction predicted;
  double predicted_ms() const { return predicted.total_s * 1e3; }
  // predicted / measured - 1 (> 0: the cost model is too slow); 0 when nothing was measured.
  double error() const { return measured_ms > 0 ? predicted_ms() / measured_ms - 1.0 : 0.0; }
};
// Throws InternalError when the measurement has no repeats or the series differ in length (the
// per-op series: one per repeat of both models, or none).
LayerCheckRow compare_layer(const LayerBatch& b, const LayerWindow& w, const LayerMeasurement& m,
                            const LayerPrediction& p);

// The target: |error| <= 5% per batch.
inline constexpr double kLayerCheckTarget = 0.05;

// The ops of a prediction from the largest, those over `min_share` of its total, at most `max_ops`:
// "attn_decode 61%, gemm... " style pairs of (op name, share).
std::vector<std::pair<std::string, double>> largest_ops(const LayerPrediction& p, int max_ops = 3,
                                                        double min_share = 0.05);

// What the report says about its run.
struct LayerCheckContext {
  std::string device;      // GPU name
  std::string experiment;  // the experiment's name and source
  std::string model, policy, cost_model;
  LayerWindow window;
  int warmup = 0;
  // The forwards were timed from the upload of every layout group's plans (GpuModelConfig::
  // plans_before_start; every run since 2026-12-07); false: the host's planning could fall inside
  // the timed forward (reports written before, which lack "timed_from_plans_upload").
  bool timed_from_plans_upload = true;
  std::string measured_report;  // re-predicted: the report whose measurements these are ("" = measured now)
};

// The table printed on stdout.
void print_layer_table(std::ostream& os, const LayerCheckContext& c, const std::vector<LayerCheckRow>& rows);
// The JSON report (rows with per-op predictions, the window, the target and whether each batch met
// it; measured per op, each row's "measured_ops_ms" {op name: ms per layer} and
// "measured_outside_layers_ms"); `provenance` is stored as given.
Json layer_check_json(const LayerCheckContext& c, const std::vector<LayerCheckRow>& rows, const Json& provenance);

// ---- Re-prediction of a saved report (`--measured`) ----------------------------------------------

// What a report holds of its run: the config (provenance.config; a profile file
// that reports of earlier versions named by its stem is named by its path), the device, window and warm-up,
// the batches (parsed from their labels) and their measured times. Nothing here needs a GPU.
struct SavedLayerCheck {
  std::string path;
  Json config;
  LayerCheckContext context;  // device, window, warmup and measured_report = path
  std::vector<LayerBatch> batches;
  std::vector<LayerCheckRow> rows;  // measured fields and samples; no prediction
  Json provenance;                  // the run's, as stored
};
// Throws InputError naming the file and the JSON path of a missing or malformed value.
SavedLayerCheck read_layer_check_report(const std::string& path);

// The saved rows priced again by the cost model of `e` (the report's config, perhaps with other
// overrides): the window and the batches are checked against `e` as a run checks them.
std::vector<LayerCheckRow> repredict_layer_check(const sim::Experiment& e, const SavedLayerCheck& s);

}  // namespace fdc::validate
