// The engine's host side: the safetensors reader/writer and the FDC weight folding.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "tests/input_error.h"
#include "tests/validate/tiny_models.h"
#include "validate/engine/safetensors.h"
#include "validate/engine/weights.h"

using namespace fdc;
using test::input_error_of;
using namespace fdc::engine;

namespace {

std::string temp_file(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("fdcsim-test-" + name)).string();
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, shapes and values (F32 exact, BF16 rounded)") {
  std::map<std::string, StTensorData> t;
  t["a.weight"] = {{2, 3}, {1, -2, 3.5f, 0.25f, 1e-3f, -7}};
  t["b"] = {{4}, {0.1f, 0.2f, 0.3f, 0.4f}};
  const std::string p = temp_file("rt.safetensors");
  write_safetensors(p, t, StDType::kF32);
  SafetensorsFile f(p);
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.tensors().at("a.weight").shape == std::vector<int64_t>{2, 3});
  CHECK(f.read_f32("a.weight") == t["a.weight"].values);
  CHECK(f.read_f32("b") == t["b"].values);
  write_safetensors(p, t, StDType::kBF16);
  SafetensorsFile g(p);
  CHECK(g.tensors().at("b").dtype == StDType::kBF16);
  const auto v = g.read_f32("b");
  for (size_t i = 0; i < v.size(); ++i) CHECK(v[i] == doctest::Approx(t["b"].values[i]).epsilon(0.004));
  std::filesystem::remove(p);
}

TEST_CASE("safetensors errors name the file and the tensor") {
  std::map<std::string, StTensorData> t;
  t["w"] = {{2, 2}, {1, 2, 3, 4}};
  const std::string p = temp_file("bad.safetensors");
  write_safetensors(p, t, StDType::kF32);
  SafetensorsFile ok(p);
  CHECK(input_error_of([&] {
          ok.require("w", {4, 2});
        }).find("tensor 'w' has shape [2, 2], expected [4, 2]") != std::string::npos);
  CHECK(input_error_of([&] { ok.require("x", {1}); }).find("tensor 'x' is missing") != std::string::npos);
  // Truncated: the data section is shorter than the header says.
  const auto size = std::filesystem::file_size(p);
  std::filesystem::resize_file(p, size - 4);
  const std::string trunc = input_error_of([&] { SafetensorsFile f(p); });
  CHECK(trunc.find(p) != std::string::npos);
  CHECK(trunc.find("tensor 'w'") != std::string::npos);
  CHECK(trunc.find("truncated") != std::string::npos);
  // Not a safetensors file at all.
  { std::ofstream(p, std::ios::binary) << "hello world, this is text"; }
  CHECK(input_error_of([&] { SafetensorsFile f(p); }).find("not a safetensors file") != std::string::npos);
  // A header that is not JSON.
  {
    std::ofstream f(p, std::ios::binary);
    const std::string h = "{not json";
    const uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << h;
  }
  CHECK(input_error_of([&] { SafetensorsFile f(p); }).find("not valid JSON") != std::string::npos);
  // An unsupported dtype.
  {
    std::ofstream f(p, std::ios::binary);
    const std::string h = R"({"w":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}})";
    const uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << h << "ab";
  }
  CHECK(input_error_of([&] { SafetensorsFile f(p); }).find("dtype I8 is not supported") != std::string::npos);
  CHECK(input_error_of([&] { SafetensorsFile f("/nonexistent/w.safetensors"); }).find("cannot open") !=
        std::string::npos);
  std::filesystem::remove(p);
}

TEST_CASE("expected tensors follow the Hugging Face Llama and OPT names") {
  const auto llama = test::tiny_llama();
  const auto names = expected_tensors(llama);
  CHECK(names.front().name == "model.embed_tokens.weight");
  CHECK(names.size() == static_cast<size_t>(1 + 9 * llama.num_layers + 1 + (llama.tied_embeddings ? 0 : 1)));
  bool has_gate = false;
  for (const auto& t : names) has_gate |= t.name == "model.layers.1.mlp.gate_proj.weight";
  CHECK(has_gate);
  const auto opt = test::tiny_opt();
  const auto on = expected_tensors(opt);
  CHECK(on[1].name == "model.decoder.embed_positions.weight");
  CHECK(on[1].shape == std::vector<int64_t>{opt.max_model_len + 2, opt.hidden});
  CHECK(on.back().name == "model.decoder.final_layer_norm.bias");  // tied LM head: no lm_head.weight
}

TEST_CASE("rotations are orthonormal and deterministic, and folding them keeps the projections exact") {
  const auto m = test::tiny_llama();
  const auto dims = test::uniform_dims(m, 32, 40);
  const auto rot = make_layer_rotations(m, dims.layers[0], 7, 0);
  const auto rot2 = make_layer_rotations(m, dims.layers[0], 7, 0);
  CHECK(rot.k[0].r == rot2.k[0].r);
  REQUIRE(rot.k.size() == static_cast<size_t>(m.num_kv_heads));
  CHECK(rot.k[0].rank == 32);
  CHECK(rot.v[1].rank == 40);
  const int d = m.head_dim;
  for (int a = 0; a < 32; ++a)
    for (int b = 0; b < 32; ++b) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += rot.k[1].r[i * 32 + a] * rot.k[1].r[i * 32 + b];
      CHECK(dot == doctest::Approx(a == b ? 1.0 : 0.0).epsilon(1e-5));
    }

  // Load a layer and check x W_v'^T == (x W_v^T) R_v per KV head, and W_o' o' == W_o (R_v o').
  const std::string p = temp_file("fold.safetensors");
  const auto tensors = test::random_tensors(m, 3);
  write_safetensors(p, tensors, StDType::kF32);
  SafetensorsFile f(p);
  const LayerWeights w = load_layer(f, m, dims.layers[1], make_layer_rotations(m, dims.layers[1], 7, 1), 1);
  const auto widths = qkv_widths(m, dims.layers[1]);
  CHECK(widths.q == m.num_heads * d);  // RoPE model: q, k full, rotated after RoPE
  CHECK(widths.v == m.num_kv_heads * 40);
  CHECK(w.rot_qk.size() == static_cast<size_t>(m.num_kv_heads * d * 32));
  const auto& wv = tensors.at("model.layers.1.self_attn.v_proj.weight").values;
  const auto rv = make_layer_rotations(m, dims.layers[1], 7, 1).v;
  std::mt19937 gen(1);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(m.hidden));
  for (auto& v : x) v = nd(gen);
  const int64_t D = m.hidden;
  for (int h = 0; h < m.num_kv_heads; ++h) {
    std::vector<double> full(static_cast<size_t>(d), 0.0);
    for (int i = 0; i < d; ++i)
      for (int64_t c = 0; c < D; ++c) full[i] += wv[(h * d + i) * D + c] * x[c];
    for (int j = 0; j < 40; ++j) {
      double expect = 0, got = 0;
      for (int i = 0; i < d; ++i) expect += full[i] * rv[h].r[i * 40 + j];
      const int64_t row = widths.q + widths.k + h * 40 + j;
      for (int64_t c = 0; c < D; ++c) got += w.w_qkv[row * D + c] * x[c];
      CHECK(got == doctest::Approx(expect).epsilon(1e-4).scale(1.0));
    }
  }
  CHECK(w.w_o.size() == static_cast<size_t>(D * attn_out_width(m, dims.layers[1])));
  // Full rank: nothing rotates, the weights are the file's.
  const auto full_dims = test::uniform_dims(m, d, d);
  const LayerWeights wf = load_layer(f, m, full_dims.layers[0], LayerRotations{}, 0);
  CHECK(wf.rot_qk.empty());
  CHECK(std::equal(wv.begin(), wv.begin() + 10, tensors.at("model.layers.1.self_attn.v_proj.weight").values.begin()));
  CHECK(wf.w_o == tensors.at("model.layers.0.self_attn.o_proj.weight").values);
  std::filesystem::remove(p);
}

TEST_CASE("a checkpoint with a wrong shape is refused naming the tensor") {
  const auto m = test::tiny_llama();
  auto tensors = test::random_tensors(m, 5);
  tensors["model.layers.0.mlp.up_proj.weight"].shape = {static_cast<int64_t>(m.hidden),
                                                        static_cast<int64_t>(m.ffn_hidden)};
  const std::string p = temp_file("shape.safetensors");
  write_safetensors(p, tensors, StDType::kBF16);
  SafetensorsFile f(p);
  const auto dims = test::uniform_dims(m, m.head_dim, m.head_dim);
  const std::string e = input_error_of([&] { load_layer(f, m, dims.layers[0], LayerRotations{}, 0); });
  CHECK(e.find("model.layers.0.mlp.up_proj.weight") != std::string::npos);
  CHECK(e.find("expected [" + std::to_string(m.ffn_hidden) + ", " + std::to_string(m.hidden) + "]") !=
        std::string::npos);
  std::filesystem::remove(p);
}
