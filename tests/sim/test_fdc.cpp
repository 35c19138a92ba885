// FDC policies through the whole simulator and the cost model's formulas.
#include <doctest/doctest.h>

#include "core/error.h"
#include "costmodel/forward_pass.h"
#include "costmodel/roofline.h"
#include "sim/kv_memory.h"
#include "sim/simulator.h"
#include "tests/sim/sim_fixtures.h"

using namespace fdc;

namespace {
Json llama13b_experiment(const std::string& policy, int num_requests = 300) {
  return Json{{"name", "fdc-test"},
              {"seed", 3},
              {"model", "llama-2-13b"},
              {"hardware", "p4de"},
              {"policy", policy},
              {"cluster", {{"servers", 1}}},
              {"workload",
               {{"num_requests", num_requests},
                {"lengths", {{"source", "fixed"}, {"prompt_tokens", 1500}, {"output_tokens", 300}}},
                {"arrival", {{"process", "burst"}}}}}};
}
Json run_summary(Json j) {
  sim::Experiment e = sim::load_experiment_json(std::move(j), "test.json", "");
  auto cost = sim::make_cost_model(e);
  sim::Simulator s(e, *cost, {});
  s.run();
  Json out = s.summary();
  out.erase("policy");
  out.erase("config_source");
  return out;
}
}  // namespace

TEST_CASE("FDC at full rank gives exactly the result of no compression") {
  Json full = {{"name", "full"}, {"kind", "fdc_uniform"}, {"qk_fraction", 1.0}, {"v_fraction", 1.0}};
  Json a = run_summary(llama13b_experiment("none"));
  Json j = llama13b_experiment("none");
  j["policy"] = full;
  Json c = run_summary(j);
  CHECK(a == c);
}

TEST_CASE("FDC at half rank halves KV bytes per token and runs more sequences at once") {
  Json none = run_summary(llama13b_experiment("none", 1200));
  Json half = run_summary(llama13b_experiment("fdc-uniform-50", 1200));
  const double bpt_none = none["kv_cache"]["bytes_per_token_replica"].get<double>();
  const double bpt_half = half["kv_cache"]["bytes_per_token_replica"].get<double>();
  // Llama-2-13B: 40 layers x 40 heads x (128 + 128) dims x 2 bytes = 800 KiB per token.
  CHECK(bpt_none == 40.0 * 40 * 256 * 2);
  CHECK(bpt_half == bpt_none / 2);
  // The burst saturates memory: the peak batch is bounded by KV capacity, which doubles (and a bit
  // more, since W_v' and W_o' shrink too).
  const auto seqs_none = none["simulation"]["max_batch_seqs"].get<uint64_t>();
  const auto seqs_half = half["simulation"]["max_batch_seqs"].get<uint64_t>();
  CHECK(seqs_half >= 2 * seqs_none - 1);
  CHECK(half["kv_cache"]["tokens_per_replica"].get<int64_t>() >
        2 * none["kv_cache"]["tokens_per_replica"].get<int64_t>());
  CHECK(half["makespan_s"].get<double>() < none["makespan_s"].get<double>());
}

TEST_CASE("TP and SP change memory and communication as the formulas say") {
  using namespace costmodel;
  sim::Experiment e = sim::load_experiment_json(llama13b_experiment("fdc-uniform-50"), "test.json", "");
  const ModelSpec& m = e.model;
  const int64_t w1 = sim::weight_bytes_per_gpu(m, e.dims, {1, 1});
  CHECK(sim::weight_bytes_per_gpu(m, e.dims, {2, 1}) == (w1 + 1) / 2);
  CHECK(sim::weight_bytes_per_gpu(m, e.dims, {1, 2}) == w1);  // SP keeps full weights on every GPU
  sim::MemoryConfig mem;
  auto k1 = sim::make_kv_layout(m, e.dims, {1, 1}, 80, mem, 16);
  auto ktp = sim::make_kv_layout(m, e.dims, {2, 1}, 80, mem, 16);
  auto ksp = sim::make_kv_layout(m, e.dims, {1, 2}, 80, mem, 16);
  CHECK(ktp.block_bytes_max_gpu * 2 == k1.block_bytes_max_gpu);  // heads split over 2 GPUs
  CHECK(ksp.block_bytes_max_gpu * 2 == k1.block_bytes_max_gpu);
  CHECK(ksp.block_bytes_replica == k1.block_bytes_replica);

  // One prefill of 1024 tokens: per-GPU bytes of each collective.
  costmodel::Batch b;
  b.add({1024, 0, true});
  const double e2 = 2, D = m.hidden, L = m.num_layers;
  {
    RooflineCostModel sp2(m, e.hardware, e.dims, {1, 2}, e.roofline);
    OpBreakdown bd;
    sp2.iteration_time(b, bd);
    // Ulysses all-to-all #1: 512 local tokens x (q 40x64 + k 40x64 + v 40x64) x 2 B, half of it sent.
    const double a2a1 = 512.0 * (3 * 40 * 64) * e2 * 0.5 * L;
    const double a2a2 = 512.0 * (40 * 64) * e2 * 0.5 * L;  // outputs are r_v wide
    CHECK(bd.work[static_cast<size_t>(OpKind::kAllToAllQkv)].comm_bytes == doctest::Approx(a2a1));
    CHECK(bd.work[static_cast<size_t>(OpKind::kAllToAllOut)].comm_bytes == doctest::Approx(a2a2));
    CHECK(bd.work[static_cast<size_t>(OpKind::kAllReduce)].comm_bytes == 0);
  }
  {
    RooflineCostModel tp2(m, e.hardware, e.dims, {2, 1}, e.roofline);
    OpBreakdown bd;
    tp2.iteration_time(b, bd);
    // Two ring all-reduces per layer of 1024 x hidden x 2 B, each GPU sending 2(g-1)/g of it.
    CHECK(bd.work[static_cast<size_t>(OpKind::kAllReduce)].comm_bytes == doctest::Approx(2 * L * 1024 * D * e2 * 1.0));
    CHECK(bd.work[static_cast<size_t>(OpKind::kAllToAllQkv)].comm_bytes == 0);
  }
  {
    // FDC shrinks the all-to-all in proportion to the kept dims.
    sim::Experiment none = sim::load_experiment_json(llama13b_experiment("none"), "test.json", "");
    RooflineCostModel sp_none(none.model, none.hardware, none.dims, {1, 2}, none.roofline);
    RooflineCostModel sp_half(m, e.hardware, e.dims, {1, 2}, e.roofline);
    OpBreakdown a, h;
    sp_none.iteration_time(b, a);
    sp_half.iteration_time(b, h);
    const auto i = static_cast<size_t>(OpKind::kAllToAllQkv);
    CHECK(h.work[i].comm_bytes * 2 == doctest::Approx(a.work[i].comm_bytes));
  }
}

TEST_CASE("decode attention bytes follow the kept dims, per token class") {
  using namespace costmodel;
  sim::Experiment none = sim::load_experiment_json(llama13b_experiment("none"), "t.json", "");
  sim::Experiment hyb = sim::load_experiment_json(llama13b_experiment("fdc-hybrid"), "t.json", "");
  Batch b;
  for (int i = 0; i < 32; ++i) b.add({1, 4095, true});
  OpBreakdown a, h;
  RooflineCostModel(none.model, none.hardware, none.dims, {1, 1}, none.roofline).iteration_time(b, a);
  RooflineCostModel(hyb.model, hyb.hardware, hyb.dims, {1, 1}, hyb.roofline).iteration_time(b, h);
  const auto i = static_cast<size_t>(OpKind::kAttnDecode);
  // Expected hybrid KV bytes: per layer, hi slots (ceil(f*16)/16) at 96+96 dims, the rest at 32+32.
  double expect = 0;
  for (const auto& layer : hyb.dims.layers) {
    const double f = layer.important_fraction;
    expect += 32.0 * 4096 * 40 * 2 * (f * 192 + (1 - f) * 64) + 32.0 * 40 * 2 * (96 + 96);
  }
  CHECK(h.work[i].bytes == doctest::Approx(expect));
  CHECK(a.work[i].bytes == doctest::Approx(40.0 * (32.0 * 4096 * 40 * 2 * 256 + 32.0 * 40 * 2 * (128 + 128))));
  // The new tokens' K/V rows go into the cache by the append op: read and written once, each at
  // its class's dims (a share f at hi dims), and no classification without prompts.
  const auto ap = static_cast<size_t>(OpKind::kKvAppend);
  double append = 0;
  for (const auto& layer : hyb.dims.layers) {
    const double f = layer.important_fraction;
    append += 2.0 * 2 * 32 * 40 * (f * 192 + (1 - f) * 64);
  }
  CHECK(h.work[ap].bytes == doctest::Approx(append));
  CHECK(a.work[ap].bytes == doctest::Approx(40.0 * 2 * 2 * 32 * 40 * 256));
  CHECK(h.seconds[static_cast<size_t>(OpKind::kKvClassify)] == 0);
}

TEST_CASE("decode attention with token classes is priced as two passes, one per class") {
  using namespace costmodel;
  sim::Experiment hyb = sim::load_experiment_json(llama13b_experiment("fdc-hybrid"), "t.json", "");
  sim::Experiment uni = sim::load_experiment_json(llama13b_experiment("fdc-uniform-50"), "t.json", "");
  Batch b;
  for (int i = 0; i < 8; ++i) b.add({1, 1000, true});
  // One more microsecond of launch cost per kernel adds one per layer without classes, two with.
  auto decode_s = [&](const sim::Experiment& e, double launch_us) {
    RooflineParams p = e.roofline;
    p.kernel_launch_us = launch_us;
    OpBreakdown bd;
    RooflineCostModel(e.model, e.hardware, e.dims, {1, 1}, p).iteration_time(b, bd);
    return bd.seconds[static_cast<size_t>(OpKind::kAttnDecode)];
  };
  CHECK(decode_s(uni, 3.0) - decode_s(uni, 2.0) == doctest::Approx(40e-6));
  CHECK(decode_s(hyb, 3.0) - decode_s(hyb, 2.0) == doctest::Approx(2 * 40e-6));
}

TEST_CASE("prefill with token classes: prompts at hi dims, staged, classified, then appended by class") {
  using namespace costmodel;
  sim::Experiment hyb = sim::load_experiment_json(llama13b_experiment("fdc-hybrid"), "t.json", "");
  sim::Experiment uni = sim::load_experiment_json(llama13b_experiment("fdc-uniform-50"), "t.json", "");
  Batch b;
  b.add({1000, 0, true});
  b.add({500, 0, true});
  OpBreakdown h;
  RooflineCostModel(hyb.model, hyb.hardware, hyb.dims, {1, 1}, hyb.roofline).iteration_time(b, h);
  const auto i = static_cast<size_t>(OpKind::kAttnPrefill);
  // Every key at the hi dims (96 + 96 per head); per new token q read and output written (96 + 96
  // per head).
  const double layers = static_cast<double>(hyb.dims.layers.size());
  const double pairs = 1000.0 * 1001 / 2 + 500.0 * 501 / 2;
  CHECK(h.work[i].flops == doctest::Approx(layers * 2 * pairs * 40 * 192));
  CHECK(h.work[i].bytes == doctest::Approx(layers * (1500.0 * 40 * 2 * 192 + 1500.0 * 40 * 2 * (96 + 96))));
  // Append: each prompt row at hi dims into the staging cache, then at its class's dims.
  const auto ap = static_cast<size_t>(OpKind::kKvAppend), cl = static_cast<size_t>(OpKind::kKvClassify);
  double append = 0, classify = 0;
  for (const auto& layer : hyb.dims.layers) {
    const double f = layer.important_fraction;
    append += 2.0 * 2 * 1500 * 40 * (192 + f * 192 + (1 - f) * 64);
    // The tail dims a lo token drops (128 per head) read once, 64 bytes of sort and 8 of class and slot per row.
    classify += 1500.0 * (2 * 40 * 128 + kSortBytesPerKey + 8);
  }
  CHECK(h.work[ap].bytes == doctest::Approx(append));
  CHECK(h.work[cl].bytes == doctest::Approx(classify));
  CHECK(h.work[cl].flops == doctest::Approx(layers * 2 * 1500.0 * 40 * 128));
  // A policy without classes: q and output in attention, one append at the kept dims, no classification.
  OpBreakdown u;
  RooflineCostModel(uni.model, uni.hardware, uni.dims, {1, 1}, uni.roofline).iteration_time(b, u);
  CHECK(u.work[i].bytes == doctest::Approx(40 * (1500.0 * 40 * 2 * 128 + 1500.0 * 40 * 2 * (64 + 64))));
  CHECK(u.work[ap].bytes == doctest::Approx(40 * 2.0 * 2 * 1500 * 40 * 128));
  CHECK(u.seconds[cl] == 0);
  CHECK(u.work[cl].bytes == 0);
  // The append's work items, (token, KV head) pairs: twice per prompt row with classes.
  auto append_pairs = [&](const sim::Experiment& e) {
    double m = 0;
    for_each_op(e.model, {1, 1}, layer_shapes(e.model, e.dims, {1, 1}), b.totals, [&](const OpCall& c) {
      if (c.kind == OpKind::kKvAppend) m += c.m * c.times;
    });
    return m;
  };
  CHECK(append_pairs(hyb) == doctest::Approx(40 * 2.0 * 1500 * 40));
  CHECK(append_pairs(uni) == doctest::Approx(40 * 1500.0 * 40));
}

TEST_CASE("a per-head table with token classes: lo ranks are a share of each head's ranks, the important share ramps") {
  sim::Experiment e = sim::load_experiment_json(llama13b_experiment("fdc-table-hybrid-llama-2-13b"), "t.json", "");
  sim::Experiment t = sim::load_experiment_json(llama13b_experiment("fdc-table-llama-2-13b"), "t.json", "");
  REQUIRE(e.dims.layers.size() == 40);
  for (size_t l = 0; l < 40; ++l)
    for (size_t h = 0; h < 40; ++h) {
      const auto& a = e.dims.layers[l].kv_heads[h];
      const auto& b = t.dims.layers[l].kv_heads[h];
      CHECK(a.qk_hi == b.qk_hi);
      CHECK(a.v_hi == b.v_hi);
      CHECK(a.qk_lo == (b.qk_hi / 2 + 7) / 8 * 8);  // half, rounded up to a multiple of 8
      CHECK(a.v_lo == (b.v_hi / 2 + 7) / 8 * 8);
    }
  CHECK(e.dims.layers.front().important_fraction == doctest::Approx(4.0 / 16));   // ceil(0.25 * 16)
  CHECK(e.dims.layers.back().important_fraction == doctest::Approx(10.0 / 16));   // ceil(0.6 * 16)
  // Fewer bytes per block than the table alone.
  const auto lay = [](const sim::Experiment& x) {
    return sim::make_kv_layout(x.model, x.dims, x.parallel, x.hardware.gpu_memory_gib, x.memory, 16);
  };
  CHECK(lay(e).block_bytes_replica < lay(t).block_bytes_replica);

  Json bad = llama13b_experiment("none");
  bad["policy"] = {{"name", "x"}, {"kind", "fdc_table"}, {"r_qk", Json::array()}, {"r_v", Json::array()},
                   {"token_classes", {{"qk_lo_share", 1.5}, {"v_lo_share", 0.5}, {"important_fraction", 0.5}}}};
  CHECK_THROWS_WITH_AS(sim::load_experiment_json(bad, "t.json", ""), doctest::Contains("qk_lo_share"), fdc::InputError);
  bad["policy"]["token_classes"] = {{"qk_lo_share", 0.5}, {"v_lo_share", 0.5}, {"important_fraction", 0.5}, {"typo", 1}};
  CHECK_THROWS_WITH_AS(sim::load_experiment_json(bad, "t.json", ""), doctest::Contains("typo"), fdc::InputError);
}
