// Small worlds for simulator tests: a toy model and server, a toy cost model with hand-computable
// times, and a request source from a list.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/cost_model.h"
#include "sim/experiment.h"
#include "traces/request.h"

namespace fdc::test {

// Iteration time = base + per_token * new tokens + per_kv_token * decode context tokens.
class ToyCostModel final : public costmodel::CostModel {
 public:
  ToyCostModel(int64_t base_ns, int64_t per_token_ns, int64_t per_kv_token_ns = 0)
      : base_(base_ns), per_token_(per_token_ns), per_kv_(per_kv_token_ns) {}
  Nanos iteration_time(const costmodel::Batch& b) const override {
    return Nanos(base_ + per_token_ * b.totals.new_tokens + per_kv_ * b.totals.decode_kv_tokens);
  }
  Nanos iteration_time(const costmodel::Batch& b, costmodel::OpBreakdown&) const override { return iteration_time(b); }
  std::string describe() const override { return "toy"; }
  bool extrapolated() const override { return false; }

 private:
  int64_t base_, per_token_, per_kv_;
};

class ListSource final : public traces::RequestSource {
 public:
  explicit ListSource(std::vector<traces::RequestSpec> reqs) : reqs_(std::move(reqs)) {}
  std::optional<traces::RequestSpec> next() override {
    if (i_ >= reqs_.size()) return std::nullopt;
    return reqs_[i_++];
  }
  std::string describe() const override { return "list of " + std::to_string(reqs_.size()) + " requests"; }

 private:
  std::vector<traces::RequestSpec> reqs_;
  size_t i_ = 0;
};

inline traces::RequestSpec req(uint64_t id, double arrival_ms, int32_t prompt, int32_t output) {
  return traces::RequestSpec{id, Nanos::from_ms(arrival_ms), prompt, output};
}

// A tiny Llama-like model on a one-GPU "server"; num_blocks fixed through num_blocks_override.
inline Json toy_experiment(int num_blocks, int block_size, bool chunked = false, int max_batched_tokens = 1000) {
  Json j = {
      {"name", "toy"},
      {"seed", 1},
      {"model",
       {{"name", "toy-model"},
        {"num_layers", 2},
        {"hidden", 64},
        {"num_heads", 4},
        {"num_kv_heads", 4},
        {"head_dim", 16},
        {"ffn_hidden", 128},
        {"vocab", 100},
        {"max_model_len", 1000},
        {"rope", true},
        {"norm", "rmsnorm"},
        {"mlp", "gated"}}},
      {"hardware",
       {{"name", "toy-server"},
        {"gpu", "toy-gpu"},
        {"gpus_per_server", 1},
        {"gpu_memory_gib", 1.0},
        {"hbm_bandwidth_gb_per_s", 1000.0},
        {"bf16_dense_tflops", 100.0},
        {"nvlink_bandwidth_gb_per_s", 100.0},
        {"network_bandwidth_gbit_per_s", 100.0},
        {"price_per_hour_usd", 1.0}}},
      {"policy", "none"},
      {"scheduler",
       {{"block_size", block_size},
        {"max_batched_tokens", max_batched_tokens},
        {"chunked_prefill", chunked},
        {"watermark_fraction", 0.0}}},
      {"memory", {{"num_blocks_override", num_blocks}, {"activation_reserve_gib", 0.0}}},
      {"workload",
       {{"num_requests", 1},
        {"lengths", {{"source", "fixed"}, {"prompt_tokens", 1}, {"output_tokens", 1}}},
        {"arrival", {{"process", "burst"}}}}},
  };
  return j;
}

inline sim::Experiment make_toy(Json j, std::vector<traces::RequestSpec> reqs) {
  sim::Experiment e = sim::load_experiment_json(std::move(j), "toy.json", "");
  e.workload = std::make_unique<ListSource>(std::move(reqs));
  return e;
}

}  // namespace fdc::test
