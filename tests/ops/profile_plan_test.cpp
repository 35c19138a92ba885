// The profile's grid: built from the model configs and FDC ranks, shapes as the cost model costs
// them, cut to the time budget in priority order with every cut reported.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "bench/ops/attention_grid.h"
#include "bench/ops/profile_plan.h"
#include "bench/ops/summary.h"
#include "core/error.h"
#include "costmodel/fit/raw_reader.h"

using namespace fdc;
using namespace fdc::profile;

namespace {
const BenchCase* find(const ProfilePlan& p, const std::string& name) {
  for (const auto& c : p.run)
    if (c.name == name) return &c;
  return nullptr;
}
}  // namespace

TEST_CASE("ranks round like the FDC policies") {
  CHECK(rank_for(1.0, 128, 16) == 128);
  CHECK(rank_for(0.5, 128, 16) == 64);
  CHECK(rank_for(0.25, 128, 16) == 32);
  CHECK(rank_for(0.01, 128, 16) == 16);
  CHECK(rank_for(0.3, 64, 16) == 16);
}

TEST_CASE("profile plan: Llama-2-13B shapes as the cost model sees them") {
  GridOptions o;
  o.models = {"llama-2-13b", "opt-13b"};
  o.tokens = {4096};
  o.rank_fractions = {1.0, 0.5};
  o.tp = {1, 2};
  o.max_gpus = 2;
  o.budget_s = 1e6;
  const ProfilePlan p = make_profile_plan(o);
  CHECK(p.skipped.empty());
  // RoPE model: W_q, W_k stay full, W_v shrinks with r_v: N = (40 + 40) * 128 + 40 * 64.
  const BenchCase* qkv = find(p, "gemm/qkv_proj/llama-2-13b/tp1/r64/m4096");
  REQUIRE(qkv);
  CHECK(qkv->shape.at("n") == 80 * 128 + 40 * 64);
  CHECK(qkv->shape.at("k") == 5120);
  CHECK(qkv->flops == 2.0 * 4096 * (80 * 128 + 40 * 64) * 5120);
  // Without RoPE the rotations fold into W_q, W_k too: N = 3 * 40 * 64.
  const BenchCase* opt = find(p, "gemm/qkv_proj/opt-13b/tp1/r64/m4096");
  REQUIRE(opt);
  CHECK(opt->shape.at("n") == 3 * 40 * 64);
  // Output projection: K shrinks with r_v; tp shards it.
  const BenchCase* out = find(p, "gemm/out_proj/llama-2-13b/tp2/r64/m4096");
  REQUIRE(out);
  CHECK(out->shape.at("k") == 40 * 64 / 2);
  CHECK(find(p, "gemm/mlp_up/llama-2-13b/tp1/m4096")->shape.at("n") == 2 * 13824);
  CHECK(find(p, "gemm/mlp_up/opt-13b/tp1/m4096")->shape.at("n") == 20480);
  CHECK(find(p, "gemm/lm_head/llama-2-13b/tp1/m4096")->shape.at("n") == 32000);
  // Fused RoPE + rotation and RoPE alone for the RoPE model only.
  REQUIRE(find(p, "rope_rotate/llama-2-13b/tp1/r64/m4096"));
  REQUIRE(find(p, "rope_rotate/llama-2-13b/tp1/rope_only/m4096"));
  CHECK(find(p, "rope_rotate/llama-2-13b/tp1/rope_only/m4096")->kind == "rope");
  for (const auto& c : p.run) CHECK(c.name.find("rope_rotate/opt-13b") == std::string::npos);
  // Norm kinds follow the configs; Ulysses and collective sweeps on 2 GPUs.
  REQUIRE(find(p, "norm/rmsnorm/d5120/m4096"));
  REQUIRE(find(p, "norm/layernorm/d5120/m4096"));
  REQUIRE(find(p, "ulysses/llama-2-13b/sp2/r64/m4096"));
  REQUIRE(find(p, "all_reduce/g2/bytes1024"));
  REQUIRE(find(p, "all_to_all/g2/bytes1073741824"));
  REQUIRE(find(p, "peak/gemm_bf16/m8192n8192k8192"));
  std::set<std::string> names;
  for (const auto& c : p.run) CHECK(names.insert(c.name).second);
  // Single-GPU cases come first, peaks leading.
  CHECK(p.run.front().kind.rfind("peak", 0) == 0);
  bool seen_multi = false;
  for (const auto& c : p.run) {
    if (c.gpus > 1) seen_multi = true;
    CHECK(!(seen_multi && c.gpus == 1));
  }
}

TEST_CASE("profile plan honours the budget and says what it cut") {
  GridOptions o;
  o.max_gpus = 2;
  o.budget_s = 1e6;
  const ProfilePlan full = make_profile_plan(o);
  o.budget_s = 30;
  const ProfilePlan small = make_profile_plan(o);
  CHECK(small.run.size() < full.run.size());
  CHECK(small.run.size() + small.skipped.size() == full.run.size());
  CHECK(small.est_s <= 30.0 + 1e-9 + 2.0 * 0.2);  // only the always-run peaks may exceed it
  bool noted = false;
  for (const auto& n : small.notes) noted = noted || n.find("time budget") != std::string::npos;
  CHECK(noted);
  // Priority 0 (report cases, 2-GPU sweeps) is kept before anything of priority 1.
  int worst_run = 0;
  for (const auto& c : small.run) worst_run = std::max(worst_run, c.priority);
  for (const auto& c : small.skipped) CHECK(c.priority >= std::min(worst_run, c.priority));
  CHECK(full.to_json().at("run").size() == full.run.size());
}

TEST_CASE("profile plan refuses bad grids and unknown models") {
  GridOptions o;
  o.models = {"no-such-model"};
  CHECK_THROWS_AS(make_profile_plan(o), InputError);
  o.models = {"llama-2-7b"};
  o.rank_fractions = {1.5};
  CHECK_THROWS_AS(make_profile_plan(o), InputError);
  o.rank_fractions = {0.5};
  o.budget_s = 0;
  CHECK_THROWS_AS(make_profile_plan(o), InputError);
  o.budget_s = 10;
  o.tokens = {};
  CHECK_THROWS_AS(make_profile_plan(o), InputError);
}

TEST_CASE("attention grid: skewed batches keep their mean, counters follow the agreed format") {
  for (int n : {1, 8, 32, 128})
    for (ContextSpread s : {ContextSpread::kUniform, ContextSpread::kQuarterLong, ContextSpread::kOneHalf}) {
      CAPTURE(n);
      CAPTURE(static_cast<int>(s));
      const std::vector<int> len = context_lengths(n, 2048, s);
      REQUIRE(len.size() == static_cast<size_t>(n));
      int64_t sum = 0;
      for (int x : len) {
        CHECK(x >= 1);
        sum += x;
      }
      CHECK(sum == int64_t{n} * 2048);
      const LengthStats st = length_stats(len);
      CHECK(st.mean == doctest::Approx(2048));
      if (n == 1 || s == ContextSpread::kUniform) {
        CHECK(st.cv == 0);
        CHECK(st.max == 2048);
      }
    }
  CHECK(length_stats(context_lengths(8, 1000, ContextSpread::kQuarterLong)).max == 2500);
  CHECK(length_stats(context_lengths(8, 1000, ContextSpread::kOneHalf)).max == 4000);
  CHECK(length_stats(context_lengths(8, 1000, ContextSpread::kQuarterLong)).cv == doctest::Approx(std::sqrt(0.75)));

  // A decode step appends its new token (hi) before attention: ctx + 1 keys, lo from the context.
  std::vector<int> hi, lo;
  decode_classes({100, 7}, 0.5, &hi, &lo);
  CHECK(hi == std::vector<int>{51, 4});
  CHECK(lo == std::vector<int>{50, 4});  // round(3.5) = 4

  const auto mixed = attention_head_ranks(8, 0, true, kQuarterLoRankShare);
  for (const auto& r : mixed) {
    CHECK(r.rk >= 32);
    CHECK(r.rk <= 128);
    CHECK(r.rk_lo == std::max(16, r.rk / 4 / 8 * 8));  // the rule of raw files before lo_rank_share
  }
  // Half of each rank, a multiple of 8, at least 16; no classes keeps the hi ranks.
  for (const auto& r : attention_head_ranks(8, 0, true, 0.5)) {
    CHECK(r.rk_lo == std::max(16, r.rk / 2 / 8 * 8));
    CHECK(r.rv_lo == std::max(16, r.rv / 2 / 8 * 8));
  }
  CHECK(attention_head_ranks(2, 48, false, 0.5)[0].rk_lo == 24);
  CHECK(attention_head_ranks(2, 16, false, 0.5)[0].rk_lo == 16);
  CHECK(attention_head_ranks(2, 48, false, 0.0)[1].rv_lo == 48);
  // Shared pages: the engine's important slots of a 16-token page.
  CHECK(shared_hi_slots(0.4, 16) == 10);
  CHECK(shared_hi_slots(0.7, 16) == 5);
  CHECK(shared_hi_slots(0.5, 16) == 8);

  GridOptions o;
  o.models = {"llama-2-13b", "llama-3-8b"};
  o.tokens = {1024};
  o.rank_fractions = {1.0, 0.5};
  o.tp = {1};
  o.budget_s = 1e6;
  const ProfilePlan p = make_profile_plan(o);
  int prefill = 0, decode = 0;
  for (const auto& c : p.run) {
    if (!is_attention_case(c)) continue;
    (c.kind == "attn_prefill" ? prefill : decode) += 1;
    CHECK(c.name.rfind(c.kind + "/", 0) == 0);
    for (const char* k : {"num_seqs", "tokens", "ctx_mean", "ctx_max", "ctx_cv", "rank_qk", "rank_v", "rank_qk_lo",
                          "rank_v_lo", "lo_fraction", "group", "q_heads", "kv_heads", "head_dim"})
      CHECK_MESSAGE(c.shape.count(k) == 1, c.name << " lacks " << k);
    if (c.kind == "attn_decode") CHECK(c.shape.count("balanced") == 1);
    CHECK(c.bytes > 0);
    CHECK(c.flops > 0);
  }
  CHECK(prefill > 0);
  CHECK(decode > 0);
  // GQA group from the model: Llama-3-8B has 32 q heads over 8 KV heads.
  // Token classes run on shared pages as the engine lays them out: 30% of a 16-token page hi (5
  // slots), lo tokens at half of each rank.
  const BenchCase* d = find(p, "attn_decode/llama-3-8b/b32/ctx2048/one_half/r64/lo70/shared/balanced");
  REQUIRE(d);
  CHECK(d->shape.at("group") == 4);
  CHECK(d->shape.at("tokens") == 32);
  CHECK(d->shape.at("ctx_max") == 32 * 2048 / 2);
  CHECK(d->shape.at("rank_qk_lo") == 32);
  CHECK(d->shape.at("lo_rank_share") == 0.5);
  CHECK(d->shape.at("block_size") == 16);
  CHECK(d->shape.at("slots_hi") == 5);
  CHECK(d->shape.at("slots_lo") == 11);
  REQUIRE(find(p, "attn_decode/llama-3-8b/b32/ctx2048/one_half/r64/lo40/shared/balanced"));
  CHECK(find(p, "attn_decode/llama-3-8b/b32/ctx2048/one_half/r64/lo40/shared/balanced")->shape.at("slots_hi") == 10);
  // Without classes: no slots (a pool of whole pages), and no shared-page name.
  const BenchCase* plain = find(p, "attn_decode/llama-3-8b/b32/ctx2048/one_half/r64/lo0/balanced");
  REQUIRE(plain);
  CHECK(plain->shape.count("slots_hi") == 0);
  CHECK(plain->shape.at("rank_qk_lo") == 64);
  // The grid's lo shares are checked: one that leaves no lo slot in a page is refused.
  GridOptions bad = o;
  bad.attn_lo_fractions = {0.0, 0.03};
  CHECK_THROWS_WITH_AS(make_profile_plan(bad), doctest::Contains("leaves no lo slot"), InputError);
  bad.attn_lo_fractions = {1.0};
  CHECK_THROWS_WITH_AS(make_profile_plan(bad), doctest::Contains("outside [0, 1)"), InputError);
  bad.attn_lo_fractions = {0.5};
  bad.attn_lo_rank_share = 0;
  CHECK_THROWS_WITH_AS(make_profile_plan(bad), doctest::Contains("--attn-lo-rank-share"), InputError);
  // A prefill chunk after a cached prefix: the context is the 1024 cached tokens, 512 new follow.
  const BenchCase* pf = find(p, "attn_prefill/llama-2-13b/s1/q512/ctx1024/r128");
  REQUIRE(pf);
  CHECK(pf->shape.at("tokens") == 512);
  CHECK(pf->shape.at("ctx_mean") == 1024);
  CHECK(pf->shape.at("ctx_cv") == 0);
  CHECK(pf->shape.at("prefix") == 1024);
}

TEST_CASE("profile plan: the prefill attention grid from the command line, and bad values refused") {
  GridOptions o;
  o.models = {"llama-2-13b"};
  o.tp = {1};
  o.filters = {"attn_prefill/"};
  o.attn_prefill_seqs = {2, 16};
  o.attn_prefill_tokens = {256, 1024};
  o.attn_prefill_prefix = {0, 2048};
  o.budget_s = 1e6;
  const ProfilePlan p = make_profile_plan(o);
  // 16 x 1024 new tokens is over the 8192 a batch may hold: 3 (seqs, tokens) pairs x 2 prefixes x
  // 5 rank sets (r32 .. r128 at the default fractions, and the mixed table); the two peak cases
  // run whatever the filter.
  int prefill = 0;
  for (const BenchCase& c : p.run) {
    CHECK((c.kind == "attn_prefill" || c.op == "peak"));
    prefill += c.kind == "attn_prefill";
  }
  CHECK(prefill == 3 * 2 * 5);
  const BenchCase* c = find(p, "attn_prefill/llama-2-13b/s16/q256/ctx2048/mixed");
  REQUIRE(c);
  CHECK(c->shape.at("tokens") == 16 * 256);
  CHECK(c->shape.at("ctx_mean") == 2048);
  CHECK(c->shape.at("prefix") == 2048);
  CHECK(find(p, "attn_prefill/llama-2-13b/s2/q1024/ctx0/r96"));
  CHECK_FALSE(find(p, "attn_prefill/llama-2-13b/s16/q1024/ctx0/r96"));
  CHECK_FALSE(find(p, "attn_prefill/llama-2-13b/s1/q512/ctx0/r96"));  // not in the grid asked for
  GridOptions bad = o;
  bad.attn_prefill_seqs = {0};
  CHECK_THROWS_WITH_AS(make_profile_plan(bad), doctest::Contains("--attn-prefill-seqs value 0"), InputError);
  bad = o;
  bad.attn_prefill_tokens = {512, -1};
  CHECK_THROWS_WITH_AS(make_profile_plan(bad), doctest::Contains("--attn-prefill-tokens value -1"), InputError);
  bad = o;
  bad.attn_prefill_prefix = {-16};
  CHECK_THROWS_WITH_AS(make_profile_plan(bad), doctest::Contains("--attn-prefill-prefix value -16"), InputError);
}

TEST_CASE("profile plan: KV append and prompt classification cases, tp 1, bytes from costmodel/ops.h") {
  GridOptions o;
  o.models = {"llama-2-13b", "llama-3-8b"};
  o.tokens = {1, 1024};
  o.rank_fractions = {1.0, 0.5};
  o.tp = {1, 2};
  o.budget_s = 1e6;
  const ProfilePlan p = make_profile_plan(o);
  // Append: a uniform rank per KV head, kv_dims = kv_heads x (r_qk + r_v); 2 bytes read + 2 written.
  const BenchCase* a = find(p, "kv_append/llama-2-13b/r64/m1024");
  REQUIRE(a);
  CHECK(a->kind == "kv_append");
  CHECK(a->op == "kv_append");
  CHECK(a->gpus == 1);
  CHECK(a->priority == 0);  // the report model at >= 1024 tokens, like the element-wise ops
  CHECK(a->shape.at("tokens") == 1024);
  CHECK(a->shape.at("kv_heads") == 40);
  CHECK(a->shape.at("rank") == 64);
  CHECK(a->shape.at("kv_dims") == 40 * 128);
  CHECK(a->flops == 0);
  CHECK(a->bytes == 2.0 * 2 * 1024 * 40 * 128);
  REQUIRE(find(p, "kv_append/llama-3-8b/r128/m1"));
  CHECK(find(p, "kv_append/llama-3-8b/r128/m1")->priority == 1);
  // Classification: the mixed token-class table of the attention cases; for 8 KV heads its lo
  // ranks drop 432 key dims and 464 value dims per row. One prompt, half of it hi.
  const BenchCase* k = find(p, "kv_classify/llama-3-8b/m1024");
  REQUIRE(k);
  CHECK(k->kind == "kv_classify");
  CHECK(k->op == "kv_classify");
  CHECK(k->shape.at("tokens") == 1024);
  CHECK(k->shape.at("seqs") == 1);
  CHECK(k->shape.at("hi_rows") == 512);
  CHECK(k->shape.at("tail_dims") == 432 + 464);
  CHECK(k->flops == 2.0 * 1024 * 896);
  CHECK(k->bytes == 1024.0 * (2 * 896 + 64 + 8));
  double tail = 0;
  for (const auto& r : kv_classify_ranks(8, 128)) tail += (r.rk - r.rk_lo) + (r.rv - r.rv_lo);
  CHECK(tail == 896);
  int append = 0, classify = 0;
  for (const auto& c : p.run) {
    if (c.kind == "kv_append") ++append;
    if (c.kind == "kv_classify") ++classify;
    if (c.kind.rfind("kv_", 0) == 0) {
      CHECK(c.name.find("/tp") == std::string::npos);
      CHECK(c.est_s > 0);
      CHECK(c.bytes > 0);
    }
  }
  CHECK(append == 2 * 2 * 2);  // models x ranks x token counts, tp 1 only
  CHECK(classify == 2 * 2);    // models x token counts

  // --filter /kv_ keeps just these cases and the two peaks, which run under any filter (a leading
  // '/' matches the name's start; plain "kv_" also matches gemm/qkv_proj/...), and plan.json lists
  // them.
  o.filters = {"/kv_"};
  const ProfilePlan only = make_profile_plan(o);
  CHECK(only.run.size() == size_t(append + classify + 2));
  int peaks = 0;
  for (const auto& c : only.run) {
    const bool peak = c.name.rfind("peak/", 0) == 0;
    peaks += peak;
    CHECK((peak || c.name.rfind("kv_", 0) == 0));
  }
  CHECK(peaks == 2);
  const nlohmann::json j = only.to_json();
  bool listed = false;
  for (const auto& c : j.at("run")) listed = listed || c.at("name") == "kv_classify/llama-2-13b/m1";
  CHECK(listed);

  // Several filters: a case runs when it matches any of them.
  o.filters = {"/kv_append", "kv_classify/llama-2-13b/"};
  const ProfilePlan two = make_profile_plan(o);
  CHECK(two.run.size() == size_t(append + classify / 2 + 2));
  for (const auto& c : two.run)
    CHECK((c.name.rfind("peak/", 0) == 0 || c.name.rfind("kv_append/", 0) == 0 ||
           c.name.rfind("kv_classify/llama-2-13b/", 0) == 0));
}

TEST_CASE("the fit's per-head ranks of attention cases are the benchmarks' table") {
  for (const double share : {0.0, 0.25, 0.5}) {
    const bool lo = share > 0;
    fit::AttnFeatures a;
    a.kv_heads = 40, a.rank_qk = 64, a.rank_v = 64, a.lo_fraction = lo ? 0.5 : 0;
    a.rank_qk_lo = a.rank_v_lo = std::max(16.0, std::floor(64 * share / 8) * 8);
    if (lo) a.lo_rank_share = share;
    for (const bool mixed : {false, true}) {
      CAPTURE(share);
      CAPTURE(mixed);
      const auto bench = profile::attention_head_ranks(40, 64, mixed, share);
      const auto fitr = fit::attention_case_ranks(a, mixed);
      REQUIRE(fitr.size() == bench.size());
      for (size_t h = 0; h < bench.size(); ++h) {
        CHECK(fitr[h][0] == bench[h].rk);
        CHECK(fitr[h][1] == bench[h].rv);
        CHECK(fitr[h][2] == bench[h].rk_lo);
        CHECK(fitr[h][3] == bench[h].rv_lo);
      }
    }
  }
}

TEST_CASE("profile plan: decode attention at a policy's rank tables") {
  // Llama-2-13B's table policy: 40 layers, 9 distinct head-rank multisets (three tiers of ranks,
  // each in three head orders whose counts differ), every layer in one table.
  const costmodel::ModelSpec m13 = load_model("llama-2-13b");
  const std::vector<PolicyTable> tables = policy_tables("fdc-table-llama-2-13b", m13, 16);
  REQUIRE(tables.size() == 9);
  std::set<int> layers;
  for (const auto& t : tables) {
    CHECK(t.policy == "fdc-table-llama-2-13b");
    CHECK(t.heads.size() == 40);
    CHECK_FALSE(t.token_classes());
    for (int l : t.layers) CHECK(layers.insert(l).second);
  }
  CHECK(layers.size() == 40);
  CHECK(tables[0].layers == std::vector<int>{0, 3, 6, 9, 12});
  CHECK(tables[0].heads[1] == costmodel::KvHeadDims{48, 64, 48, 64});
  // The token-class policy: the same hi ranks, lo ranks half of each.
  const std::vector<PolicyTable> hybrid = policy_tables("fdc-table-hybrid-llama-2-13b", m13, 16);
  REQUIRE(hybrid.size() == 9);
  CHECK(hybrid[0].token_classes());
  CHECK(hybrid[0].heads[1] == costmodel::KvHeadDims{48, 64, 24, 32});

  GridOptions o;
  o.models = {"llama-2-13b", "llama-2-7b"};
  o.tokens = {1024};
  o.rank_fractions = {1.0};
  o.tp = {1};
  o.budget_s = 1e6;
  o.attn_decode_batches = {8, 256};
  o.attn_decode_contexts = {512, 8192};  // 256 x 8192 is over the grid's KV tokens: not planned
  o.attn_policies = {"fdc-table-llama-2-13b", "fdc-table-hybrid-llama-2-13b"};
  const ProfilePlan p = make_profile_plan(o);
  int table_cases = 0, shared = 0;
  for (const auto& c : p.run) {
    if (c.name.find("/table-") == std::string::npos) continue;
    ++table_cases;
    CHECK(c.model == "llama-2-13b");  // the 7B (32 KV heads) does not fit these tables
    CHECK(c.shape.at("rank_table") == 1);
    CHECK(c.shape.at("spread") == 0);
    CHECK(c.shape.at("balanced") == 1);
    CHECK(c.shape.count("lo_rank_share") == 0);  // lo ranks come from the heads' counters
    if (c.shape.at("lo_fraction") > 0) ++shared;
    // The runner rebuilds exactly the table the plan wrote, and the fit reads the same one.
    const auto ranks = case_head_ranks(c.shape);
    REQUIRE(ranks.size() == 40);
    for (const auto& r : ranks) CHECK(r.rk_lo <= r.rk);
    CHECK(c.shape.at("h0_rk") == ranks[0].rk);
    CHECK(c.shape.at("h39_rv_lo") == ranks[39].rv_lo);
  }
  // 9 tables x 3 (batch, context) points at lo 0 (the hybrid's hi ranks are the table's: those
  // cases run once) + 9 hybrid tables x 3 points x the two lo fractions.
  CHECK(shared == 9 * 3 * 2);
  CHECK(table_cases == 9 * 3 + shared);
  const BenchCase* c = find(p, "attn_decode/llama-2-13b/b8/ctx512/uniform/table-fdc-table-llama-2-13b-l0/lo0/balanced");
  REQUIRE(c);
  CHECK(c->shape.at("h1_rk") == 48);
  CHECK(c->shape.at("h1_rv") == 64);
  CHECK(c->shape.at("max_rank") == 64);
  CHECK(c->priority == 1);  // after the grid's own 13B cases (priority 0)
  const BenchCase* h =
      find(p, "attn_decode/llama-2-13b/b256/ctx512/uniform/table-fdc-table-hybrid-llama-2-13b-l0/lo70/shared/balanced");
  REQUIRE(h);
  CHECK(h->shape.at("h1_rk_lo") == 24);
  CHECK(h->shape.at("slots_hi") == 5);
  CHECK(std::any_of(p.notes.begin(), p.notes.end(), [](const std::string& n) {
    return n.find("llama-2-7b: policy fdc-table-llama-2-13b skipped") != std::string::npos;
  }));

  // A policy that fits no model, an unknown one and a broken file are refused, naming them.
  GridOptions only7 = o;
  only7.models = {"llama-2-7b"};
  CHECK_THROWS_WITH_AS(make_profile_plan(only7), doctest::Contains("fits none of the profiled models"), InputError);
  GridOptions unknown = o;
  unknown.attn_policies = {"no-such-policy"};
  CHECK_THROWS_WITH_AS(make_profile_plan(unknown), doctest::Contains("unknown policy 'no-such-policy'"), InputError);
  GridOptions missing = o;
  missing.attn_policies = {"/nonexistent/policy.json"};
  CHECK_THROWS_WITH_AS(make_profile_plan(missing), doctest::Contains("/nonexistent/policy.json"), InputError);
  // A uniform policy has one table, at its rank.
  const auto uniform = policy_tables("fdc-uniform-50", m13, 16);
  REQUIRE(uniform.size() == 1);
  CHECK(uniform[0].layers.size() == 40);
  CHECK(uniform[0].heads[7] == costmodel::KvHeadDims{64, 64, 64, 64});
}

TEST_CASE("the runner's and the fit's rank tables refuse incomplete counters") {
  std::map<std::string, double> shape{{"kv_heads", 2}, {"rank_table", 1}, {"lo_fraction", 0}};
  set_rank_table_counters(shape, {{32, 48, 32, 48}, {64, 64, 32, 32}});
  CHECK(case_head_ranks(shape)[1].rk_lo == 32);
  shape.erase("h1_rv");
  CHECK_THROWS_WITH_AS(case_head_ranks(shape), doctest::Contains("'h1_rv' is missing"), InputError);
  shape["h1_rv"] = 200;
  CHECK_THROWS_WITH_AS(case_head_ranks(shape), doctest::Contains("'h1_rv' must be a whole number"), InputError);
}

TEST_CASE("profile plan with repetitions: every case's estimate counts each run, the plan says how many") {
  GridOptions o;
  o.models = {"llama-2-7b"};
  o.budget_s = 1e6;
  const ProfilePlan once = make_profile_plan(o);
  o.repetitions = 3;
  const ProfilePlan thrice = make_profile_plan(o);
  REQUIRE(thrice.run.size() == once.run.size());
  for (size_t i = 0; i < once.run.size(); ++i) CHECK(thrice.run[i].est_s == doctest::Approx(3 * once.run[i].est_s));
  CHECK(thrice.repetitions == 3);
  CHECK(thrice.to_json().at("repetitions") == 3);
  CHECK(once.to_json().at("repetitions") == 1);
  o.repetitions = 0;
  CHECK_THROWS_WITH_AS(make_profile_plan(o), doctest::Contains("--repetitions must be in [1, 100], found 0"),
                       InputError);
}

TEST_CASE("profile summary: of a case's repetitions the table shows the median one, aggregates skipped") {
  auto gemm = [](double us, int rep) {
    return nlohmann::json{{"name", "gemm/out_proj/llama-2-13b/tp1/r64/m16/cublaslt/iterations:250/manual_time"},
                          {"run_type", "iteration"},
                          {"repetitions", 3},
                          {"repetition_index", rep},
                          {"real_time", us},
                          {"time_unit", "us"},
                          {"m", 16},
                          {"n", 5120},
                          {"k", 2560},
                          {"rank", 64}};
  };
  nlohmann::json doc = {{"benchmarks", nlohmann::json::array({gemm(31.0, 0), gemm(11.0, 1), gemm(17.0, 2)})}};
  nlohmann::json agg = gemm(99.0, 0);
  agg["run_type"] = "aggregate";
  agg["name"] = agg["name"].get<std::string>() + "_mean";
  doc["benchmarks"].push_back(agg);
  const std::string table = summarize_benchmarks({doc});
  CHECK(table.find("| 17.0 |") != std::string::npos);
  CHECK(table.find("| 31.0 |") == std::string::npos);
  CHECK(table.find("| 99.0 |") == std::string::npos);
}

TEST_CASE(
    "profile output with Google Benchmark's bare NaN aggregates: rewritten as valid JSON, then summarized and fitted") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "fdcsim_profile_nan";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "ops.json").string();
  // As written on an H200 with --repetitions 3: three runs of a KV append case, then the "cv"
  // aggregate of its counters, whose all-zero `flops` has no coefficient of variation.
  std::string runs;
  for (int rep = 0; rep < 3; ++rep)
    runs +=
        R"({"name": "kv_append/llama-2-13b/r32/m12/iterations:250/manual_time", "run_type": "iteration",
      "repetitions": 3, "repetition_index": )" +
        std::to_string(rep) + R"(, "real_time": )" + std::to_string(5.0 + rep) +
        R"(, "time_unit": "us", "bytes": 61440, "flops": 0, "tokens": 12, "kv_heads": 40, "rank": 32, "kv_dims": 64},
    )";
  std::ofstream(path)
      << R"({"context": {}, "benchmarks": [)" << runs
      << R"({"name": "kv_append/llama-2-13b/r32/m12/iterations:250/manual_time_cv", "run_type": "aggregate",
      "aggregate_name": "cv", "real_time": 0.1266, "time_unit": "us", "bytes": 0.0, "flops": NaN, "tokens": 0.0}]})";
  CHECK_THROWS(nlohmann::json::parse(std::ifstream(path)));
  CHECK(rewrite_nonfinite_as_null(path) == 1);
  const nlohmann::json doc = nlohmann::json::parse(std::ifstream(path));
  CHECK(doc["benchmarks"][3]["flops"].is_null());
  CHECK(rewrite_nonfinite_as_null(path) == 0);  // nothing left to replace: untouched
  CHECK(summarize_profile({path}).find("unreadable") == std::string::npos);
  fs::remove_all(dir);
}
