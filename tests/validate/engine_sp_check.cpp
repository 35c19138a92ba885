// The engine's forward pass with sequence parallelism (Ulysses, sp = N, one process per GPU over
// NCCL) against the plain CPU forward: each rank checks the logits of the emitting rows it holds,
// over prefill, mixed decode + chunked-prefill and continued-prefill batches, for Llama with FDC
// ranks 32/48, and with token classes (prompts prefilled whole, then decode steps). Its own
// program (not doctest): the parent must not initialise CUDA before forking the ranks.
//
//   fdcsim_engine_sp_check [--ranks N]     (N = 2 by default, 1..8)
//
// N <= 2 runs the tiny Llama of the other engine tests (2 KV heads); more ranks run a model with
// 3N/2 KV heads, so the ranks hold uneven head blocks (4 ranks: 2/2/1/1). Exit 0 when every rank
// passed or fewer than N GPUs are visible (says so).
#include <cuda_runtime_api.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/comm/launcher.h"
#include "kernels/comm/nccl_comm.h"
#include "tests/validate/engine_reference.h"
#include "validate/engine/gpu_model.h"

using namespace fdc;

namespace {

constexpr int kSkip = 77;
constexpr uint64_t kSeed = 11;

// The model checked at `ranks` ranks: the tiny Llama up to 2, else one with 3 * ranks / 2 KV heads
// (GQA 2, head dim 64), so that some ranks hold one KV head more than others.
costmodel::ModelSpec model_for(int ranks) {
  costmodel::ModelSpec m = test::tiny_llama();
  if (ranks <= 2) return m;
  m.name = "tiny-llama-sp" + std::to_string(ranks);
  m.num_kv_heads = 3 * ranks / 2;
  m.num_heads = 2 * m.num_kv_heads;
  m.hidden = m.num_heads * m.head_dim;
  return m;
}

int check_rank(int rank, int ranks, const std::string& token, const std::string& weights, const test::Tensors& t) {
  int visible = 0;
  if (cudaGetDeviceCount(&visible) != cudaSuccess || visible < ranks) return kSkip;
  if (cudaSetDevice(rank) != cudaSuccess) return 3;
  kernels::comm::NcclComm comm(rank, ranks, token);
  const auto m = model_for(ranks);
  const auto dims = test::uniform_dims(m, 32, 48);
  engine::GpuModelConfig c = test::tiny_engine_config(m, dims, kSeed, weights, "sp-check");
  c.device = rank;
  c.sp_rank = rank;
  c.sp_size = ranks;
  c.comm = &comm;
  engine::GpuModel model(c);
  auto ids = [&](int n, uint32_t seed) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    uint32_t x = seed * 2654435761u + 1;
    for (auto& e : v) e = static_cast<int32_t>((x = x * 1664525u + 1013904223u) >> 8) % m.vocab;
    return v;
  };
  auto a = ids(40, 1), b = ids(6, 2), cc = ids(37, 3);
  std::vector<int32_t> ba{5, 9, 2, 30}, bb{17, 3}, bc{40, 41, 8, 60}, next;
  int failures = 0, checked = 0;
  auto check = [&](const std::vector<std::vector<int32_t>>& prefixes) {
    const auto lg = model.last_logits();
    const auto idx = model.last_logits_index();
    for (size_t r = 0; r < idx.size(); ++r) {
      const auto ref = test::reference_logits(m, dims, t, kSeed, prefixes[static_cast<size_t>(idx[r])]);
      const double err = test::rel_error(lg, r * static_cast<size_t>(m.vocab), ref);
      ++checked;
      if (err > 0.03) {
        std::fprintf(stderr, "rank %d: emitting row %d: relative logits error %.4f > 0.03\n", rank, idx[r], err);
        ++failures;
      }
    }
  };
  std::vector<engine::SeqStep> s1{{37, 0, true, a.data(), ba.data(), 4}, {5, 0, true, b.data(), bb.data(), 2}};
  model.forward(s1, next);
  check({{a.begin(), a.begin() + 37}, {b.begin(), b.begin() + 5}});
  std::vector<engine::SeqStep> s2{{1, 37, true, a.data() + 37, ba.data(), 4},
                                  {16, 0, false, cc.data(), bc.data(), 4},
                                  {1, 5, true, b.data() + 5, bb.data(), 2}};
  model.forward(s2, next);
  check({{a.begin(), a.begin() + 38}, b});
  std::vector<engine::SeqStep> s3{{21, 16, true, cc.data() + 16, bc.data(), 4}, {1, 38, true, a.data() + 38, ba.data(), 4}};
  model.forward(s3, next);
  check({cc, {a.begin(), a.begin() + 39}});
  // Token classes (each rank classifies with its own KV heads): prompts prefilled whole, then
  // decode steps.
  const auto hdims = test::hybrid_dims(m);
  engine::GpuModelConfig hc = c;
  hc.dims = hdims;
  hc.config_name = "sp-check-hybrid";
  engine::GpuModel hybrid(hc);
  auto check_hybrid = [&](const std::vector<std::pair<std::vector<int32_t>, int>>& prefixes) {
    const auto lg = hybrid.last_logits();
    const auto idx = hybrid.last_logits_index();
    for (size_t r = 0; r < idx.size(); ++r) {
      const auto& [ids_r, prompt] = prefixes[static_cast<size_t>(idx[r])];
      const auto ref = test::reference_logits(m, hdims, t, kSeed, ids_r, prompt, 16, ranks);
      const double err = test::rel_error(lg, r * static_cast<size_t>(m.vocab), ref);
      ++checked;
      if (err > 0.03) {
        std::fprintf(stderr, "rank %d: token classes: emitting row %d: relative logits error %.4f > 0.03\n", rank,
                     idx[r], err);
        ++failures;
      }
    }
  };
  std::vector<int32_t> ha{11, 12, 13, 14}, hb{20, 21};
  std::vector<engine::SeqStep> h1{{37, 0, true, a.data(), ha.data(), 4}, {5, 0, true, b.data(), hb.data(), 2}};
  hybrid.forward(h1, next);
  check_hybrid({{{a.begin(), a.begin() + 37}, 37}, {{b.begin(), b.begin() + 5}, 5}});
  for (int k = 0; k < 3; ++k) {
    std::vector<engine::SeqStep> hs{{1, 37 + k, true, a.data() + 37 + k, ha.data(), 4}};
    if (k == 0) hs.push_back({1, 5, true, b.data() + 5, hb.data(), 2});
    hybrid.forward(hs, next);
    check_hybrid({{{a.begin(), a.begin() + 38 + k}, 37}, {b, 5}});
  }
  std::printf("rank %d: %d emitting rows checked, %d failed\n", rank, checked, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int ranks = 2;
  CLI::App app{
      "Checks the engine's forward pass with sequence parallelism over N GPUs against the CPU forward; "
      "exits 0 with a message when fewer than N GPUs are visible.",
      "fdcsim_engine_sp_check"};
  app.add_option("--ranks", ranks, "GPUs (sequence-parallel ranks)")->check(CLI::Range(1, 8))->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto m = model_for(ranks);
  const std::string weights =
      (std::filesystem::temp_directory_path() / ("fdcsim-sp-check-" + std::to_string(ranks) + ".safetensors")).string();
  const test::Tensors t = test::write_checkpoint(m, weights);
  const auto r = kernels::comm::run_ranks(
      ranks, [] { return kernels::comm::make_nccl_token(); },
      [&](int rank, int n, const std::string& token) {
        try {
          return check_rank(rank, n, token, weights, t);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
          return 3;
        }
      },
      300);
  std::filesystem::remove(weights);
  if (r.exit_code == kSkip) {
    std::printf("fdcsim_engine_sp_check: fewer than %d GPUs visible, nothing run\n", ranks);
    return 0;
  }
  std::printf("fdcsim_engine_sp_check: %s\n", r.exit_code == 0 ? "passed" : "FAILED");
  return r.exit_code == 0 ? 0 : 1;
}
