// The engine's model on one GPU: a Llama-style (RMSNorm, RoPE, GQA, SwiGLU) or OPT-style
// (LayerNorm, learned positions, biases, ReLU) decoder in bf16 with FDC as DESIGN.md describes
// (rotations fused after RoPE or folded into W_q/W_k, R_v folded into W_v and W_o, compressed paged
// KV cache, balanced decode plans). One forward() runs one scheduler iteration: the new tokens of
// every sequence of the batch, through every layer, and the LM head on the rows that emit a token.
// The KV cache has exactly the sim::KvLayout's blocks; the scheduler's block ids are page ids.
//
// Sequence parallelism (Ulysses, sp_size > 1): every rank holds the full weights and runs the same
// forward() on the same batch; the batch's token rows are split into sp_size contiguous slices
// for embedding, projections and MLP, and an all-to-all before and after attention gives each rank
// every token for its block of KV heads (kernels/comm/ulysses_plan.h), whose KV cache it holds.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "costmodel/attention_dims.h"
#include "costmodel/model_spec.h"
#include "costmodel/ops.h"
#include "kernels/attention/plan.h"

namespace fdc::kernels::comm {
class NcclComm;
}

namespace fdc::engine {

struct GpuModelConfig {
  costmodel::ModelSpec model;
  costmodel::ModelDims dims;  // the policy resolved for the model
  int block_size = 16;
  int64_t num_blocks = 0;     // KV blocks (pages) per layer
  int max_tokens = 0;         // most new tokens in one iteration (scheduler max_batched_tokens)
  int max_seqs = 0;           // most sequences in one iteration
  uint64_t seed = 0;          // random weights and rotations
  std::string weights;        // safetensors file; "" = random weights with the model's shapes
  int device = 0;
  std::string config_name;    // for error messages ("does not fit" names it)
  int sp_rank = 0, sp_size = 1;
  const kernels::comm::NcclComm* comm = nullptr;  // sp_size > 1: the ranks' communicator
  // forward() records a CUDA event after every op of every layer on the model's stream and
  // returns the GPU time split by op (StepTimes::op_ms); about a microsecond per op. Off: no events
  // but the forward's start and end.
  bool op_times = false;
  // forward() waits for every layout group's plans and uploads them before it records its start
  // event, so gpu_ms holds the layers' GPU time and no wait for the host's planning (the layer
  // checks time layers this way). Off (the engine): a group's plans are waited for at its first
  // layer while the GPU runs the layers before it, as serving runs them.
  bool plans_before_start = false;
  // Decode kernel of every layer; kAuto: attn::choose_decode_path of the layer's layout.
  kernels::attn::DecodePath decode_path = kernels::attn::DecodePath::kAuto;
};

// One sequence of the iteration.
struct SeqStep {
  int32_t new_tokens = 0;
  int32_t context_before = 0;
  bool emits = false;
  const int32_t* token_ids = nullptr;   // the new tokens' ids, new_tokens of them
  const int32_t* blocks = nullptr;      // KV block table, at least ceil((context_before + new) / block) ids
  int32_t num_blocks = 0;
};

struct StepTimes {
  double gpu_ms = 0;   // CUDA-event time of the forward pass on the GPU
  double host_ms = 0;  // host time spent building the iteration's metadata and plans (the per-layout plans
                       // overlap the GPU running earlier layers)
  // GpuModelConfig::op_times only (zeros otherwise): gpu_ms split into the intervals between
  // consecutive events, each counted to the op it ends (the launch gap before an op is that op's).
  // The layers' intervals, summed by op kind, are op_ms (both norms under kNorm, both residual
  // adds under kResidual, the QKV bias with kQkvProj, every append launch under kKvAppend, the
  // Ulysses pack/unpack and v copy with kAllToAllQkv, the non-RoPE q/k split under kRopeRotate);
  // the rest (metadata uploads, embedding, final norm, LM head) is outside_layers_ms.
  // sum(op_ms) + outside_layers_ms == gpu_ms.
  std::array<double, costmodel::kNumOpKinds> op_ms{};
  double outside_layers_ms = 0;
};

class GpuModel {
 public:
  explicit GpuModel(const GpuModelConfig& cfg);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  // Runs the iteration and waits for it; next_tokens gets one id per emitting sequence, in order.
  void forward(const std::vector<SeqStep>& seqs, std::vector<int32_t>& next_tokens, StepTimes* times = nullptr);
  // With GpuModelConfig::op_times: whether the next forwards record their per-op events (on by
  // default). Off, a forward records only its start and end, as a model built without op_times, so
  // its gpu_ms carries no event's cost (and its op_ms stay zero). A model built without op_times
  // has no per-op events to turn on: refused (InternalError).
  void set_op_events(bool on);

  std::string device_name() const;
  // The decode kernel the layers run, e.g. "CUDA cores (40 layers)" or "tensor cores (32 layers),
  // CUDA cores (8 layers)".
  std::string decode_kernels() const;
  // How the projections' cuBLASLt algorithms were chosen at construction, e.g. "tuned: 412 row
  // buckets timed (37 not the heuristic's first answer), 3.1 s" (kernels/ops/launch.h).
  std::string gemm_planning() const;
  int64_t weight_bytes() const;        // on the GPU
  int64_t kv_bytes_per_block() const;  // summed over layers
  // Logits of the emitting rows of the last forward() that this rank computed (fp32,
  // [rows][vocab]), and which emitting sequences (indices among them) those rows are; for tests.
  std::vector<float> last_logits() const;
  std::vector<int> last_logits_index() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fdc::engine
