// The fitted cost model: iteration times equal the profile's laws summed by hand; a profile lacking
// an op is refused naming the profile and the op; the shifted decode time equals the full
// evaluation of the shifted batch; outputs say when the profile is extrapolated.
#include <doctest/doctest.h>

#include <sstream>

#include "apps/fdcsim/summary_table.h"
#include "core/error.h"
#include "costmodel/decode_units.h"
#include "costmodel/fitted.h"
#include "sim/experiment.h"
#include "sim/simulator.h"

using namespace fdc;

namespace {

costmodel::ModelSpec toy_model() {
  costmodel::ModelSpec m;
  m.name = "toy";
  m.num_layers = 2, m.hidden = 64, m.num_heads = 4, m.num_kv_heads = 4, m.head_dim = 16, m.ffn_hidden = 128;
  m.vocab = 100, m.max_model_len = 1000;
  return m;
}

costmodel::ModelDims full_rank(const costmodel::ModelSpec& m) {
  costmodel::ModelDims d;
  costmodel::LayerDims l;
  l.kv_heads.assign(static_cast<size_t>(m.num_kv_heads), {m.head_dim, m.head_dim, m.head_dim, m.head_dim});
  d.layers.assign(static_cast<size_t>(m.num_layers), l);
  return d;
}

fit::OpFit constant(const std::string& op, double us) {
  fit::OpFit f;
  f.op = op, f.form = fit::FitForm::kConstant, f.alpha_us = us;
  return f;
}

// Every op 1 us except: norms 0.01 us per byte, decode attention 2 us per sequence plus a
// straggler term, KV append 0.5 us, iteration overhead 100 us.
fit::FittedProfile hand_profile() {
  fit::FittedProfile p;
  p.gpu = "toy-gpu";
  for (const char* op :
       {"gemm/qkv_proj/cublaslt", "gemm/out_proj/cublaslt", "gemm/mlp_up/cublaslt", "gemm/mlp_down/cublaslt",
        "gemm/lm_head/cublaslt", "rope_rotate/rope_only", "residual", "mlp_act/swiglu", "attn_prefill"})
    p.ops[op] = constant(op, 1.0);
  fit::OpFit norm;
  norm.op = "norm/rmsnorm", norm.form = fit::FitForm::kAlphaBeta, norm.us_per_byte = 0.01;
  p.ops[norm.op] = norm;
  fit::OpFit attn;
  attn.op = "attn_decode", attn.form = fit::FitForm::kAttentionLinear, attn.us_per_seq = 2.0;
  p.ops[attn.op] = attn;
  p.ops["kv_append"] = constant("kv_append", 0.5);
  p.ops["iteration_overhead"] = constant("iteration_overhead", 100.0);
  return p;
}

// Every layer of `m` with the same KV head dims and important share.
costmodel::ModelDims uniform_dims(const costmodel::ModelSpec& m, costmodel::KvHeadDims h, double important = 1.0) {
  costmodel::ModelDims d;
  costmodel::LayerDims l;
  l.kv_heads.assign(static_cast<size_t>(m.num_kv_heads), h);
  l.important_fraction = important;
  d.layers.assign(static_cast<size_t>(m.num_layers), l);
  return d;
}

costmodel::Batch decode_batch(std::initializer_list<int> contexts) {
  costmodel::Batch b;
  for (int c : contexts) b.add({1, c, true});
  return b;
}

}  // namespace

TEST_CASE("fitted model: a decode iteration is the sum of the profile's laws, worked by hand") {
  const costmodel::ModelSpec m = toy_model();
  const costmodel::FittedCostModel model(m, full_rank(m), {1, 1}, hand_profile(), {"hand", "test"});
  // 3 decode rows of a 64-wide model: a norm moves 2 x 3 x 64 x 2 bytes = 768 B = 7.68 us.
  // Per layer: 2 norms 15.36 + qkv, rope, out, 2 residuals, up, act, down 8 x 1 + append 0.5 +
  // attention 3 seqs x 2 = 29.86; 2 layers 59.72; then final norm 7.68, LM head 1, overhead 100: 168.4 us.
  CHECK(model.iteration_time(decode_batch({10, 20, 30})).ns() == 168400);
  costmodel::OpBreakdown bd;
  CHECK(model.iteration_time(decode_batch({10, 20, 30}), bd).ns() == 168400);
  CHECK(bd.seconds[static_cast<size_t>(costmodel::OpKind::kKvAppend)] == doctest::Approx(1e-6));
  CHECK(bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] == doctest::Approx(12e-6));
  CHECK(bd.seconds[static_cast<size_t>(costmodel::OpKind::kNorm)] == doctest::Approx(5 * 7.68e-6));
  // A prefill chunk of 5 tokens adds prefill attention (1 us per layer) and 5 more rows everywhere.
  costmodel::Batch mixed = decode_batch({10, 20, 30});
  mixed.add({5, 0, true});
  // 8 rows: norms 20.48 us each; per layer 2 x 20.48 + 8 + 0.5 + 6 + 1 = 56.46; x2 = 112.92; the final
  // norm runs on the 4 rows that emit a token (10.24), then LM head 1 and overhead 100: 224.16 us.
  CHECK(model.iteration_time(mixed).ns() == 224160);
  CHECK_FALSE(model.extrapolated());
  CHECK(model.describe().find("every op measured") != std::string::npos);
}

TEST_CASE("fitted model: the shifted decode time equals the shifted batch, skew term included") {
  const costmodel::ModelSpec m = toy_model();
  fit::FittedProfile p = hand_profile();
  fit::OpFit& attn = p.ops["attn_decode"];
  attn.alpha_us = 3.0, attn.us_per_byte = 1.3e-4, attn.us_per_flop = 2.1e-7, attn.us_per_straggler = 7.7e-4;
  attn.us_per_unit = 0.37, attn.decode_plan = costmodel::cuda_core_decode_plan(132);  // units grow with j
  const costmodel::FittedCostModel model(m, full_rank(m), {1, 1}, p, {"hand", "test"});
  const costmodel::Batch b = decode_batch({3, 500, 17, 90, 1});
  for (int64_t j : {1, 2, 7, 100, 4096}) {
    CAPTURE(j);
    costmodel::Batch shifted;
    for (costmodel::SeqWork w : b.seqs) {
      w.context_before += static_cast<int32_t>(j);
      shifted.add(w);
    }
    CHECK(model.decode_time_shifted(b, j) == model.iteration_time(shifted));
  }
  // The longest sequence matters: the same tokens spread evenly cost less.
  CHECK(model.iteration_time(decode_batch({300, 300, 300})) < model.iteration_time(decode_batch({10, 10, 880})));
}

TEST_CASE("fitted model: decode attention pays per staged byte, rows padded to the kernel's widths") {
  CHECK(costmodel::decode_stage_width(16) == 32);
  CHECK(costmodel::decode_stage_width(32) == 32);
  CHECK(costmodel::decode_stage_width(48) == 64);
  CHECK(costmodel::decode_stage_width(64) == 64);
  CHECK(costmodel::decode_stage_width(96) == 128);
  CHECK(costmodel::decode_stage_width(128) == 128);
  // Head dim 64 (stage width 64) against ranks 48 (also 64 wide: 4/3 of its bytes staged) and 32.
  costmodel::ModelSpec m = toy_model();
  m.head_dim = 64;
  auto dims = [&](int r) {
    costmodel::ModelDims d;
    costmodel::LayerDims l;
    l.kv_heads.assign(static_cast<size_t>(m.num_kv_heads), {r, r, r, r});
    d.layers.assign(static_cast<size_t>(m.num_layers), l);
    return d;
  };
  const costmodel::LayerShard s48 = costmodel::max_shard(dims(48).layers[0], m.num_heads, 1);
  CHECK(s48.kv_dims_hi == 4 * 96);
  CHECK(s48.kv_stage_dims_hi == 4 * 128);
  fit::FittedProfile p = hand_profile();
  p.ops["attn_decode"].us_per_seq = 0;
  p.ops["attn_decode"].us_per_stage_byte = 1e-3;
  p.ops["rope_rotate/rotate"] = constant("rope_rotate/rotate", 1.0);  // ranks below head_dim rotate
  auto attention_us = [&](int r) {
    const costmodel::FittedCostModel model(m, dims(r), {1, 1}, p, {"hand", "test"});
    costmodel::OpBreakdown bd;
    model.iteration_time(decode_batch({99}), bd);
    return bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] * 1e6;
  };
  // 100 keys x 4 heads x (K + V) x stage width x 2 bytes x 1e-3 us, 2 layers (a profile without a
  // tensor-core law prices every layer with attn_decode).
  CHECK(attention_us(64) == doctest::Approx(2 * 100 * 4 * 2 * 64 * 2 * 1e-3));
  CHECK(attention_us(48) == doctest::Approx(attention_us(64)));
  CHECK(attention_us(32) == doctest::Approx(attention_us(64) / 2));
}

TEST_CASE("fitted model: layers the engine decodes on the tensor cores take the attn_decode/tensor_cores law") {
  // The engine's kernel choice (kernels::attn::choose_decode_path): tensor cores for widths other
  // than 64 and 128 or r_qk != r_v, CUDA cores at 64 / 128 and with token classes.
  using H = costmodel::KvHeadDims;
  CHECK_FALSE(costmodel::decode_uses_tensor_cores({{64, 64, 64, 64}, {128, 128, 128, 128}}));
  CHECK(costmodel::decode_uses_tensor_cores({{64, 64, 64, 64}, {96, 96, 96, 96}}));
  CHECK(costmodel::decode_uses_tensor_cores({H{64, 32, 64, 32}}));
  CHECK_FALSE(costmodel::decode_uses_tensor_cores({{96, 96, 48, 48}, {64, 64, 64, 64}}));
  costmodel::ModelSpec m = toy_model();
  m.head_dim = 128;
  // Layer 0 at rank 64 (CUDA cores), layer 1 at rank 96 (tensor cores).
  costmodel::ModelDims d;
  for (int r : {64, 96}) {
    costmodel::LayerDims l;
    l.kv_heads.assign(static_cast<size_t>(m.num_kv_heads), {r, r, r, r});
    d.layers.push_back(l);
  }
  CHECK_FALSE(costmodel::max_shard(d.layers[0], m.num_heads, 1).decode_tensor_cores);
  CHECK(costmodel::max_shard(d.layers[1], m.num_heads, 1).decode_tensor_cores);
  fit::FittedProfile p = hand_profile();
  p.ops["rope_rotate/rotate"] = constant("rope_rotate/rotate", 1.0);
  p.ops["attn_decode"] = constant("attn_decode", 10.0);
  auto decode_us = [&](const fit::FittedProfile& prof) {
    const costmodel::FittedCostModel model(m, d, {1, 1}, prof, {"hand", "test"});
    costmodel::OpBreakdown bd;
    model.iteration_time(decode_batch({99}), bd);
    return bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] * 1e6;
  };
  CHECK(decode_us(p) == doctest::Approx(20.0));  // no tensor-core law: both layers at attn_decode's
  p.ops["attn_decode/tensor_cores"] = constant("attn_decode/tensor_cores", 3.0);
  CHECK(decode_us(p) == doctest::Approx(13.0));
  const costmodel::FittedCostModel model(m, d, {1, 1}, p, {"hand", "test"});
  const auto& used = model.used_ops();
  CHECK(std::find(used.begin(), used.end(), "attn_decode/tensor_cores") != used.end());
}

TEST_CASE("fitted model: the tensor-core kernels of one width stage their rows at 48 or 96") {
  using H = costmodel::KvHeadDims;
  CHECK(costmodel::decode_mma_one_width({H{96, 96, 96, 96}, H{80, 72, 80, 72}}) == 96);
  CHECK(costmodel::decode_mma_one_width({H{48, 40, 48, 40}, H{40, 48, 40, 48}}) == 48);
  CHECK(costmodel::decode_mma_one_width({H{96, 96, 96, 96}, H{48, 48, 48, 48}}) == 0);  // two classes
  CHECK(costmodel::decode_mma_one_width({H{32, 32, 32, 32}}) == 0);
  CHECK(costmodel::decode_mma_one_width({H{96, 96, 48, 48}}) == 0);  // the lo units are 48 wide
  costmodel::ModelSpec m = toy_model();
  m.head_dim = 128;
  auto dims = [&](std::vector<H> heads) {
    costmodel::ModelDims d;
    costmodel::LayerDims l;
    l.kv_heads = heads;
    l.kv_heads.resize(static_cast<size_t>(m.num_kv_heads), heads.back());
    d.layers.assign(static_cast<size_t>(m.num_layers), l);
    return d;
  };
  // The shard keeps the CUDA-core widths and says which kernel the engine runs.
  const costmodel::LayerShard s96 = costmodel::max_shard(dims({{96, 96, 96, 96}}).layers[0], m.num_heads, 1);
  CHECK(s96.kv_stage_dims_hi == 4 * 2 * 128);
  CHECK(s96.decode_tensor_cores);
  CHECK(s96.mma_one_width == 96);
  fit::FittedProfile p = hand_profile();
  p.ops["rope_rotate/rotate"] = constant("rope_rotate/rotate", 1.0);
  p.ops["attn_decode"].us_per_seq = 0;
  p.ops["attn_decode"].us_per_stage_byte = 1e-3;
  fit::OpFit tc = p.ops["attn_decode"];
  tc.op = "attn_decode/tensor_cores";
  p.ops[tc.op] = tc;
  auto attention_us = [&](const fit::FittedProfile& prof, std::vector<H> heads) {
    const costmodel::FittedCostModel model(m, dims(std::move(heads)), {1, 1}, prof, {"hand", "test"});
    costmodel::OpBreakdown bd;
    model.iteration_time(decode_batch({99}), bd);
    return bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] * 1e6;
  };
  // 100 keys x 4 heads x (K + V) x width x 2 bytes x 1e-3 us, 2 layers.
  auto staged_us = [](double width) { return 2 * 100 * 4 * 2 * width * 2 * 1e-3; };
  CHECK(attention_us(p, {{96, 96, 96, 96}}) == doctest::Approx(staged_us(96)));
  CHECK(attention_us(p, {{48, 48, 48, 48}}) == doctest::Approx(staged_us(48)));
  // Widths 48 and 96 in one launch: the general kernel, at 64 and 128.
  CHECK(attention_us(p, {{48, 48, 48, 48}, {96, 96, 96, 96}}) ==
        doctest::Approx(staged_us(64) / 4 + staged_us(128) * 3 / 4));
  // Without a tensor-core law the layer is priced by the CUDA-core law, at its widths.
  fit::FittedProfile cuda_only = p;
  cuda_only.ops.erase("attn_decode/tensor_cores");
  CHECK(attention_us(cuda_only, {{96, 96, 96, 96}}) == doctest::Approx(staged_us(128)));
}

TEST_CASE("fitted model: token-class layers take one launch of attn_decode/shared_pages when the profile has it") {
  // 4 KV heads of head dim 64: hi rank 64, lo rank 16; 30% of the keys hi. Token classes add the
  // classification and the rotation.
  costmodel::ModelSpec m = toy_model();
  m.head_dim = 64;
  const costmodel::ModelDims d = uniform_dims(m, {64, 64, 16, 16}, 0.3);
  fit::FittedProfile p = hand_profile();
  p.ops["kv_classify"] = constant("kv_classify", 1.0);
  p.ops["rope_rotate/rotate"] = constant("rope_rotate/rotate", 1.0);
  // attn_decode: 5 us a call + 1e-4 us per byte; the shared-page law: 7 us + 2e-4 us per byte.
  p.ops["attn_decode"].us_per_seq = 0, p.ops["attn_decode"].alpha_us = 5.0, p.ops["attn_decode"].us_per_byte = 1e-4;
  auto decode_us = [&](const fit::FittedProfile& prof) {
    const costmodel::FittedCostModel model(m, d, {1, 1}, prof, {"hand", "test"});
    costmodel::OpBreakdown bd;
    model.iteration_time(decode_batch({999, 499}), bd);
    return bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] * 1e6;
  };
  // 1500 keys (cached + the new ones); per key and layer 4 heads x (K + V): hi 4 x 128 x 2 B,
  // lo 4 x 32 x 2 B; q read and output written per sequence 4 x 128 x 2 B.
  const double keys = 1500, hi_b = 1024, lo_b = 256, rows = 2 * 1024;
  // Without the shared-page law: two passes per layer, each with attn_decode's constant.
  const double two = 2 * (5 + 1e-4 * (0.3 * keys * hi_b + rows) + 5 + 1e-4 * 0.7 * keys * lo_b);
  CHECK(decode_us(p) == doctest::Approx(two));
  fit::OpFit shared;
  shared.op = "attn_decode/shared_pages", shared.form = fit::FitForm::kAttentionLinear;
  shared.alpha_us = 7.0, shared.us_per_byte = 2e-4;
  p.ops[shared.op] = shared;
  // With it: one call per layer over both classes' bytes, as the fit's shared-page cases are.
  CHECK(decode_us(p) == doctest::Approx(2 * (7 + 2e-4 * (keys * (0.3 * hi_b + 0.7 * lo_b) + rows))));
  const costmodel::FittedCostModel model(m, d, {1, 1}, p, {"hand", "test"});
  CHECK(std::find(model.used_ops().begin(), model.used_ops().end(), "attn_decode/shared_pages") !=
        model.used_ops().end());
  // A full-rank model never uses it.
  const costmodel::FittedCostModel plain(m, full_rank(m), {1, 1}, p, {"hand", "test"});
  CHECK(std::find(plain.used_ops().begin(), plain.used_ops().end(), "attn_decode/shared_pages") ==
        plain.used_ops().end());
  // The shifted decode time follows the same single launch.
  const costmodel::Batch b = decode_batch({999, 499});
  costmodel::Batch shifted;
  for (costmodel::SeqWork w : b.seqs) {
    w.context_before += 64;
    shifted.add(w);
  }
  CHECK(model.decode_time_shifted(b, 64) == model.iteration_time(shifted));
}

TEST_CASE("fitted model: decode attention pays per unit of the balanced plan, estimated as the fit does") {
  // 4 KV heads of head dim 64 at rank 64: 256 bytes per key and head; 32 KiB units are 128 keys.
  costmodel::ModelSpec m = toy_model();
  m.head_dim = 64;
  const costmodel::ModelDims d = uniform_dims(m, {64, 64, 64, 64});
  fit::FittedProfile p = hand_profile();
  p.ops["attn_decode"].us_per_seq = 0;
  p.ops["attn_decode"].us_per_unit = 1.0;
  const costmodel::DecodePlanConstants plan = costmodel::cuda_core_decode_plan(132);
  auto attention_us = [&](const costmodel::ModelDims& dims, const fit::FittedProfile& prof,
                          std::initializer_list<int> contexts) {
    const costmodel::FittedCostModel model(m, dims, {1, 1}, prof, {"hand", "test"});
    costmodel::OpBreakdown bd;
    model.iteration_time(decode_batch(contexts), bd);
    return bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnDecode)] * 1e6;
  };
  // Without the plan constants (a profile fitted before the term) the units are not priced.
  CHECK(attention_us(d, p, {999, 999}) == 0);
  p.ops["attn_decode"].decode_plan = plan;
  // 2 sequences of 1000 keys: 2 x 4 x 1000 x 256 B = 2 MB over 2112 slots is under 32 KiB a unit:
  // a (sequence, head) of 250 KiB is 8 chunks of 125 keys, 128 as whole tiles: 8 units. 2 layers.
  CHECK(attention_us(d, p, {999, 999}) == doctest::Approx(2 * 2 * 4 * 8));
  // One long sequence and one short: the estimate takes them as they are (one at the longest).
  const std::vector<costmodel::DecodeHeadBytes> heads(4, {256, 256});
  CHECK(attention_us(d, p, {2999, 99}) ==
        doctest::Approx(2 * costmodel::estimate_decode_units(2, 1550, 3000, 0, heads, plan).total()));
  // Token classes: the hi pass prices the hi class's units and the lo pass the lo class's, together
  // the plan's: half of the keys at lo rank 16 (64 bytes per key and head).
  costmodel::ModelDims c = d;
  for (auto& layer : c.layers) {
    layer.important_fraction = 0.5;
    for (auto& h : layer.kv_heads) h.qk_lo = h.v_lo = 16;
  }
  fit::OpFit cls;
  cls.op = "kv_classify", cls.form = fit::FitForm::kConstant, cls.alpha_us = 1.0;
  p.ops[cls.op] = cls;
  p.ops["rope_rotate/rotate"] = constant("rope_rotate/rotate", 1.0);
  const std::vector<costmodel::DecodeHeadBytes> class_heads(4, {256, 64});
  const costmodel::DecodeUnitEstimate u = costmodel::estimate_decode_units(2, 1000, 1000, 0.5, class_heads, plan);
  CHECK(u.hi == 2 * 4 * 4);  // 500 hi keys, 125 KiB: 4 chunks of 125 keys, 128 as whole tiles
  CHECK(u.lo == 2 * 4 * 1);  // 500 lo keys, 31 KiB: one unit
  CHECK(attention_us(c, p, {999, 999}) == doctest::Approx(2 * u.total()));
}

TEST_CASE("fitted model: queries outside a law's measured ranges are counted and named") {
  const costmodel::ModelSpec m = toy_model();
  fit::FittedProfile p = hand_profile();
  p.ops["norm/rmsnorm"].axis = {100, 1000};  // measured from 100 to 1000 bytes
  p.ops["attn_decode"].axis = {0, 1e12};
  p.ops["attn_decode"].seqs_range = fit::Range{1, 2};  // measured on batches of 1 and 2 sequences
  const costmodel::FittedCostModel model(m, full_rank(m), {1, 1}, p, {"hand", "test"});
  CHECK(model.outside_measured().empty());
  // Two rows: norms of 512 bytes, two sequences: all inside.
  (void)model.iteration_time(decode_batch({10, 20}));
  CHECK(model.outside_measured().empty());
  // Three rows: norms of 768 bytes (inside), three sequences in decode attention (outside).
  (void)model.iteration_time(decode_batch({10, 20, 30}));
  const auto u = model.outside_measured();
  REQUIRE(u.size() == 1);
  CHECK(u[0].op == "attn_decode");
  CHECK(u[0].queries == 2);  // one per iteration: the two identical layers are priced once
  CHECK(u[0].outside == 1);
  CHECK(u[0].example.find("attn_decode: sequences 3 outside [1, 2]") != std::string::npos);
}

TEST_CASE("fitted model: token classes add the classification of prompt rows, priced by its law's bytes") {
  const costmodel::ModelSpec m = toy_model();
  costmodel::ModelDims d = full_rank(m);
  for (auto& l : d.layers) {
    l.important_fraction = 0.5;
    for (auto& h : l.kv_heads) h.qk_lo = h.v_lo = 8;
  }
  fit::FittedProfile p = hand_profile();
  // Without a kv_classify law the run is refused, naming it once.
  try {
    costmodel::FittedCostModel(m, d, {1, 1}, p, {"toyprof", "toy.json"});
    FAIL("no error");
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find("'kv_classify' (classifying prompt tokens (token classes))") != std::string::npos);
    CHECK(what.find("kv_classify", what.find("kv_classify") + 1) == std::string::npos);
  }
  fit::OpFit cls;
  cls.op = "kv_classify", cls.form = fit::FitForm::kAlphaBeta, cls.alpha_us = 2.0, cls.us_per_byte = 0.001;
  p.ops[cls.op] = cls;
  const costmodel::FittedCostModel model(m, d, {1, 1}, p, {"hand", "test"});
  costmodel::OpBreakdown dec, pre;
  (void)model.iteration_time(decode_batch({10, 20}), dec);
  CHECK(dec.seconds[static_cast<size_t>(costmodel::OpKind::kKvClassify)] == 0);
  costmodel::Batch b;
  b.add({10, 0, true});
  (void)model.iteration_time(b, pre);
  // 10 rows, tail dims 4 heads x (8 + 8): 2 x 64 bytes read + 64 sort + 8 class and slot = 200 bytes
  // a row; 2000 bytes = 2 us + alpha 2 us, per layer.
  CHECK(pre.work[static_cast<size_t>(costmodel::OpKind::kKvClassify)].bytes == doctest::Approx(2 * 2000.0));
  CHECK(pre.seconds[static_cast<size_t>(costmodel::OpKind::kKvClassify)] == doctest::Approx(2 * 4e-6));
}

TEST_CASE("fitted model: a profile lacking an op the run needs is refused, naming the profile and the op") {
  const costmodel::ModelSpec m = toy_model();
  fit::FittedProfile p = hand_profile();
  p.ops.erase("attn_decode");
  p.ops.erase("residual");
  try {
    costmodel::FittedCostModel(m, full_rank(m), {1, 1}, p, {"toyprof", "toy.json"});
    FAIL("no error");
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find("'toyprof' (toy.json") != std::string::npos);
    CHECK(what.find("'attn_decode'") != std::string::npos);
    CHECK(what.find("'residual'") != std::string::npos);
    CHECK(what.find("costmodel.kind") != std::string::npos);
  }
  // The measured H100 profile has collectives of 2 GPUs only: tp=4 on p5 is refused while the
  // experiment loads.
  Json j = {{"model", "llama-2-7b"},
            {"hardware", "p5"},
            {"policy", "none"},
            {"cluster", {{"tp", 4}}},
            {"costmodel", {{"kind", "profile"}}},
            {"workload",
             {{"num_requests", 1},
              {"lengths", {{"source", "fixed"}, {"prompt_tokens", 8}, {"output_tokens", 2}}},
              {"arrival", {{"process", "burst"}}}}}};
  try {
    sim::load_experiment_json(j, "tp4.json", "");
    FAIL("no error");
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find("'h100'") != std::string::npos);
    CHECK(what.find("'all_reduce/g4'") != std::string::npos);
  }
}

TEST_CASE("fitted model: the derived A100 profile says extrapolated in summary, resolved config and table") {
  sim::Experiment e = sim::load_experiment(
      "", {"workload.num_requests=40", "costmodel.kind=\"profile\"", "outputs.per_request_csv=false"});
  auto cost = sim::make_cost_model(e);
  CHECK(cost->extrapolated());
  sim::Simulator s(e, *cost, {nullptr, nullptr, nullptr});
  s.run();
  const Json summary = s.summary();
  const Json& p = summary["cost_model"]["profile"];
  CHECK(summary["cost_model"]["kind"] == "profile");
  CHECK(summary["cost_model"]["extrapolated"] == true);
  CHECK(p["name"] == "a100-extrapolated");
  CHECK(p["source"] == "configs/profiles/a100-extrapolated.json");
  CHECK(p["derived"] == true);
  CHECK(p["extrapolated_ops"].size() == p["ops"].size());
  CHECK(e.resolved["costmodel"]["profile"] == "a100-extrapolated");
  CHECK(e.resolved["costmodel"]["profile_info"]["extrapolated"] == true);
  std::ostringstream table;
  cli::print_summary_table(table, summary);
  CHECK(table.str().find("EXTRAPOLATED") != std::string::npos);
  CHECK(table.str().find("a100-extrapolated") != std::string::npos);
  // The resolved config reads back (profile_info is informative) and gives the same profile.
  sim::Experiment again = sim::load_experiment_json(e.resolved, "resolved.json", "");
  CHECK(again.profile_ref.name == "a100-extrapolated");
}
