// The engine's forward pass on the GPU against a plain CPU forward of the same checkpoint:
// Llama (RoPE, GQA, SwiGLU) and OPT (learned positions, biases, LayerNorm, ReLU), without and with
// FDC (the CPU side applies the rotations explicitly: q_c = R^T RoPE(q), k_c = R^T RoPE(k),
// v_c = R_v^T v, out = W_o R_v o_c), over prefill, chunked prefill, decode and mixed batches with a
// shuffled block table.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "core/error.h"
#include "kernels/ops/reference.h"
#include "tests/validate/engine_reference.h"
#include "tests/validate/tiny_models.h"
#include "validate/engine/gpu_model.h"
#include "validate/engine/safetensors.h"
#include "validate/engine/weights.h"

using namespace fdc;
using namespace fdc::engine;

namespace {

using test::Tensors;
using test::Vec;
using test::reference_logits;
using test::rel_error;

struct Fixture {
  costmodel::ModelSpec m;
  costmodel::ModelDims dims;
  Tensors tensors;  // as stored (bf16-rounded values, read back)
  std::string path;
  std::unique_ptr<GpuModel> model;
  std::vector<int32_t> free_blocks;
  static constexpr uint64_t kSeed = 11;

  Fixture(costmodel::ModelSpec spec, int rk, int rv, kernels::attn::DecodePath decode = kernels::attn::DecodePath::kAuto)
      : Fixture(spec, test::uniform_dims(spec, rk, rv), decode) {}
  Fixture(costmodel::ModelSpec spec, costmodel::ModelDims d,
          kernels::attn::DecodePath decode = kernels::attn::DecodePath::kAuto)
      : m(std::move(spec)), dims(std::move(d)) {
    path = (std::filesystem::temp_directory_path() / ("fdcsim-engine-" + m.name + ".safetensors")).string();
    tensors = test::write_checkpoint(m, path);
    GpuModelConfig cfg = test::tiny_engine_config(m, dims, kSeed, path, "test");
    cfg.decode_path = decode;
    model = std::make_unique<GpuModel>(cfg);
    free_blocks.resize(64);
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(3));
  }
  ~Fixture() { std::filesystem::remove(path); }

  std::vector<int32_t> blocks(int n) {
    std::vector<int32_t> b(free_blocks.end() - n, free_blocks.end());
    free_blocks.resize(free_blocks.size() - static_cast<size_t>(n));
    return b;
  }
  Vec ref(const std::vector<int32_t>& ids, int prompt_len = -1) {
    return reference_logits(m, dims, tensors, kSeed, ids, prompt_len);
  }
};

std::vector<int32_t> random_ids(int n, int vocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int32_t>(g() % static_cast<uint32_t>(vocab));
  return v;
}

void run_scenarios(Fixture& f, double tol) {
  const int V = f.m.vocab;
  auto a = random_ids(40, V, 1), b = random_ids(5, V, 2), c = random_ids(37, V, 3);
  auto ba = f.blocks(4), bb = f.blocks(2), bc = f.blocks(4);
  std::vector<int32_t> next;
  // 1. Two prompts prefilled in one batch.
  {
    std::vector<SeqStep> s{{37, 0, true, a.data(), ba.data(), 4}, {5, 0, true, b.data(), bb.data(), 2}};
    f.model->forward(s, next);
    REQUIRE(next.size() == 2);
    const auto lg = f.model->last_logits();
    CHECK(rel_error(lg, 0, f.ref({a.begin(), a.begin() + 37})) < tol);
    CHECK(rel_error(lg, static_cast<size_t>(V), f.ref(b)) < tol);
  }
  // 2. Mixed batch: decode steps of both (their 38th / 6th token) and a chunked prefill's first
  //    chunk (16 tokens of c, no logits).
  {
    b.push_back(7);  // b's 6th token
    std::vector<SeqStep> s{{1, 37, true, a.data() + 37, ba.data(), 4},
                           {16, 0, false, c.data(), bc.data(), 4},
                           {1, 5, true, b.data() + 5, bb.data(), 2}};
    f.model->forward(s, next);
    REQUIRE(next.size() == 2);
    const auto lg = f.model->last_logits();
    CHECK(rel_error(lg, 0, f.ref({a.begin(), a.begin() + 38})) < tol);
    CHECK(rel_error(lg, static_cast<size_t>(V), f.ref(b)) < tol);
  }
  // 3. The rest of c after its cached prefix, and a's 39th token.
  {
    std::vector<SeqStep> s{{21, 16, true, c.data() + 16, bc.data(), 4}, {1, 38, true, a.data() + 38, ba.data(), 4}};
    f.model->forward(s, next);
    const auto lg = f.model->last_logits();
    CHECK(rel_error(lg, 0, f.ref(c)) < tol);
    CHECK(rel_error(lg, static_cast<size_t>(V), f.ref({a.begin(), a.begin() + 39})) < tol);
  }
}

}  // namespace

TEST_CASE("engine forward: Llama without compression matches the CPU forward") {
  Fixture f(test::tiny_llama(), 64, 64);
  run_scenarios(f, 0.03);
}

TEST_CASE("engine forward: Llama with FDC ranks 32/48 matches the CPU forward with explicit rotations") {
  Fixture f(test::tiny_llama(), 32, 48);
  run_scenarios(f, 0.03);
}

TEST_CASE("engine forward: each decode kernel, chosen or pinned, matches the CPU forward") {
  using kernels::attn::DecodePath;
  const int L = test::tiny_llama().num_layers;
  const std::string layers = " (" + std::to_string(L) + (L == 1 ? " layer)" : " layers)");
  {  // full width 64: CUDA cores by default, the tensor cores when pinned
    CHECK(Fixture(test::tiny_llama(), 64, 64).model->decode_kernels() == "CUDA cores" + layers);
    Fixture g(test::tiny_llama(), 64, 64, DecodePath::kMma);
    CHECK(g.model->decode_kernels() == "tensor cores" + layers);
    run_scenarios(g, 0.03);
  }
  {  // ranks 32/48: the tensor cores by default, the CUDA cores when pinned
    CHECK(Fixture(test::tiny_llama(), 32, 48).model->decode_kernels() == "tensor cores" + layers);
    Fixture g(test::tiny_llama(), 32, 48, DecodePath::kCudaCores);
    CHECK(g.model->decode_kernels() == "CUDA cores" + layers);
    run_scenarios(g, 0.03);
  }
}

TEST_CASE("engine forward: OPT with FDC ranks 32/32 (rotations folded into W_q, W_k) matches the CPU forward") {
  Fixture f(test::tiny_opt(), 32, 32);
  run_scenarios(f, 0.03);
}

namespace {

// Prompts prefilled whole (two in one batch, one beside decodes), then 24 decode steps, the
// logits of every step against the CPU forward with the same classes.
void run_hybrid_scenarios(Fixture& f, double tol) {
  const int V = f.m.vocab;
  const auto a = random_ids(61, V, 1), b = random_ids(12, V, 2), c = random_ids(30, V, 3);
  auto ba = f.blocks(4), bb = f.blocks(1), bc = f.blocks(2);
  std::vector<int32_t> next;
  {
    std::vector<SeqStep> s{{37, 0, true, a.data(), ba.data(), 4}, {5, 0, true, b.data(), bb.data(), 1}};
    f.model->forward(s, next);
    const auto lg = f.model->last_logits();
    CHECK(rel_error(lg, 0, f.ref({a.begin(), a.begin() + 37}, 37)) < tol);
    CHECK(rel_error(lg, static_cast<size_t>(V), f.ref({b.begin(), b.begin() + 5}, 5)) < tol);
  }
  for (int k = 0; k < 24; ++k) {
    CAPTURE(k);
    const int la = 37 + k;  // a's cached tokens before this step
    std::vector<SeqStep> s{{1, la, true, a.data() + la, ba.data(), 4}};
    const int lb = 5 + k;
    if (lb < 12) s.push_back({1, lb, true, b.data() + lb, bb.data(), 1});
    if (k == 2) s.push_back({21, 0, true, c.data(), bc.data(), 2});  // a prompt beside the decodes
    if (k > 2 && k < 12) s.push_back({1, 21 + (k - 3), true, c.data() + 21 + (k - 3), bc.data(), 2});
    f.model->forward(s, next);
    const auto lg = f.model->last_logits();
    REQUIRE(lg.size() == s.size() * static_cast<size_t>(V));
    CHECK(rel_error(lg, 0, f.ref({a.begin(), a.begin() + la + 1}, 37)) < tol);
    size_t row = 1;
    if (lb < 12) CHECK(rel_error(lg, V * row++, f.ref({b.begin(), b.begin() + lb + 1}, 5)) < tol);
    if (k == 2) CHECK(rel_error(lg, V * row++, f.ref({c.begin(), c.begin() + 21}, 21)) < tol);
    if (k > 2 && k < 12) CHECK(rel_error(lg, V * row++, f.ref({c.begin(), c.begin() + 22 + (k - 3)}, 21)) < tol);
  }
  // A prefill that continues after cached tokens cannot be classified whole: refused.
  std::vector<SeqStep> cont{{5, 21 + 9, false, c.data(), bc.data(), 2}};
  CHECK_THROWS_AS(f.model->forward(cont, next), InputError);
}

}  // namespace

TEST_CASE("engine forward: Llama with token classes matches the CPU forward with classes decided at prefill") {
  Fixture f(test::tiny_llama(), test::hybrid_dims(test::tiny_llama()));
  run_hybrid_scenarios(f, 0.03);
}

TEST_CASE("engine forward: token classes on the tensor-core decode kernel (pinned) match the CPU forward") {
  const int L = test::tiny_llama().num_layers;
  CHECK(Fixture(test::tiny_llama(), test::hybrid_dims(test::tiny_llama())).model->decode_kernels() ==
        "CUDA cores (" + std::to_string(L) + (L == 1 ? " layer)" : " layers)"));
  Fixture f(test::tiny_llama(), test::hybrid_dims(test::tiny_llama()), kernels::attn::DecodePath::kMma);
  CHECK(f.model->decode_kernels() == "tensor cores (" + std::to_string(L) + (L == 1 ? " layer)" : " layers)"));
  run_hybrid_scenarios(f, 0.03);
}

TEST_CASE("engine forward: OPT with token classes matches the CPU forward with classes decided at prefill") {
  Fixture f(test::tiny_opt(), test::hybrid_dims(test::tiny_opt()));
  run_hybrid_scenarios(f, 0.03);
}

TEST_CASE("a model that does not fit the GPU is refused naming the config") {
  GpuModelConfig c;
  c.model = test::tiny_llama();
  c.dims = test::uniform_dims(c.model, 64, 64);
  c.num_blocks = int64_t{1} << 32;  // far more KV than any GPU has
  c.max_tokens = 64;
  c.max_seqs = 4;
  c.config_name = "configs/too-big.json";
  try {
    GpuModel g(c);
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("configs/too-big.json does not fit") != std::string::npos);
    CHECK(msg.find("GiB of KV cache") != std::string::npos);
  }
}

namespace {

// A tiny Llama at ranks 32 / 32 with random weights, room for 4 sequences of 64 tokens.
GpuModelConfig random_tiny_config(const std::string& name) {
  GpuModelConfig c;
  c.model = test::tiny_llama();
  c.dims = test::uniform_dims(c.model, 32, 32);
  c.num_blocks = 16;
  c.max_tokens = 64;
  c.max_seqs = 4;
  c.seed = 5;
  c.config_name = name;
  return c;
}

}  // namespace

TEST_CASE("random weights run and give finite logits") {
  GpuModelConfig c = random_tiny_config("random");
  GpuModel g(c);
  const auto ids = random_ids(33, c.model.vocab, 4);
  std::vector<int32_t> bl{3, 7, 1}, next;
  std::vector<SeqStep> s{{33, 0, true, ids.data(), bl.data(), 3}};
  g.forward(s, next);
  REQUIRE(next.size() == 1);
  CHECK(next[0] >= 0);
  CHECK(next[0] < c.model.vocab);
  for (float v : g.last_logits()) REQUIRE(std::isfinite(v));
}

TEST_CASE("per-op events: on, every op timed and summing to the forward; off, none; refused without op_times") {
  GpuModelConfig c = random_tiny_config("op events");
  c.op_times = true;
  GpuModel g(c);
  const auto ids = random_ids(33, c.model.vocab, 4);
  std::vector<int32_t> bl{3, 7, 1}, next;
  std::vector<SeqStep> s{{33, 0, true, ids.data(), bl.data(), 3}};
  StepTimes on, off;
  g.forward(s, next, &on);
  double sum = on.outside_layers_ms;
  for (double ms : on.op_ms) sum += ms;
  CHECK(sum == doctest::Approx(on.gpu_ms).epsilon(1e-3));
  CHECK(on.op_ms[static_cast<size_t>(costmodel::OpKind::kMlpUp)] > 0);
  const std::vector<int32_t> first = next;
  g.set_op_events(false);
  g.forward(s, next, &off);
  CHECK(off.gpu_ms > 0);
  for (double ms : off.op_ms) CHECK(ms == 0);
  CHECK(off.outside_layers_ms == 0);
  CHECK(next == first);  // the same forward, only timed differently
  g.set_op_events(true);
  g.forward(s, next, &on);
  CHECK(on.op_ms[static_cast<size_t>(costmodel::OpKind::kMlpUp)] > 0);

  c.op_times = false;
  GpuModel plain(c);
  CHECK_THROWS_AS(plain.set_op_events(true), InternalError);
  plain.set_op_events(false);  // nothing to turn off: fine
}

TEST_CASE("plans before the start event: the same forward, every op still timed") {
  // Token classes with two layouts (layers 0 and 1 keep different shares of important tokens):
  // two layout groups, each planned on the host. With plans_before_start the forward uploads both
  // groups' plans before its start event; the results must be those of the engine's order.
  auto make = [](bool before) {
    GpuModelConfig c = random_tiny_config(before ? "plans first" : "plans at each group");
    c.dims = test::hybrid_dims(c.model);
    c.op_times = true;
    c.plans_before_start = before;
    return std::make_unique<GpuModel>(c);
  };
  const auto engine_order = make(false);
  const auto plans_first = make(true);
  const auto ids = random_ids(40, test::tiny_llama().vocab, 9);
  std::vector<int32_t> b0{3, 7, 1}, b1{2, 9, 4}, prev, next_a, next_b;
  for (int step = 0; step < 3; ++step) {
    // Step 0: two prompts (17 and 23 tokens); then two decode steps of both, each fed the tokens
    // the step before emitted.
    std::vector<SeqStep> s;
    if (step == 0) {
      s = {{17, 0, true, ids.data(), b0.data(), 3}, {23, 0, true, ids.data() + 17, b1.data(), 3}};
    } else {
      prev = next_a;
      s = {{1, 16 + step, true, prev.data(), b0.data(), 3}, {1, 22 + step, true, prev.data() + 1, b1.data(), 3}};
    }
    StepTimes ta, tb;
    engine_order->forward(s, next_a, &ta);
    plans_first->forward(s, next_b, &tb);
    INFO("step " << step);
    REQUIRE(next_a.size() == 2);
    CHECK(next_b == next_a);
    CHECK(plans_first->last_logits() == engine_order->last_logits());
    double sum = tb.outside_layers_ms;
    for (double ms : tb.op_ms) sum += ms;
    CHECK(sum == doctest::Approx(tb.gpu_ms).epsilon(1e-3));
    const auto attn = step == 0 ? costmodel::OpKind::kAttnPrefill : costmodel::OpKind::kAttnDecode;
    CHECK(tb.op_ms[static_cast<size_t>(attn)] > 0);
    CHECK(tb.host_ms > 0);
  }
}
