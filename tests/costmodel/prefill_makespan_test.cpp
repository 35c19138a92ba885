// The makespan of the prefill kernel's blocks (costmodel/prefill_makespan.h): worked by hand on
// small GPUs; against the kernels' own balanced plan (kernels/attention/plan.cpp plan_prefill) and
// list scheduling when no SM is shared; against a block-by-block simulation of two blocks sharing
// an SM; the fit's query of a measured case against the cost model's query of the same batch.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "costmodel/fitted.h"
#include "costmodel/prefill_makespan.h"
#include "kernels/attention/plan.h"

using namespace fdc;
using costmodel::PrefillMakespanScratch;
using costmodel::PrefillScheduleConstants;
using costmodel::SeqWork;
namespace attn = fdc::kernels::attn;

namespace {

double makespan(const std::vector<SeqWork>& seqs, int64_t q_heads, int width, PrefillScheduleConstants k) {
  PrefillMakespanScratch s;
  return costmodel::prefill_makespan_tiles(seqs, q_heads, width, k, s);
}

// The kernels' balanced plan of these chunks with every head at one rank, and each block's time
// alone (its key tiles + 1), in launch order.
std::vector<int64_t> plan_block_costs(const std::vector<SeqWork>& seqs, int q_heads, int rank) {
  const attn::HeadLayout L = attn::HeadLayout::uniform(q_heads, q_heads, rank, rank, 16);
  std::vector<int> cu{0}, kv;
  for (const SeqWork& w : seqs) {
    cu.push_back(cu.back() + w.new_tokens);
    kv.push_back(w.context_before + w.new_tokens);
  }
  const attn::PrefillPlan plan = attn::plan_prefill(L, cu, kv, costmodel::kPrefillTileQ, true);
  const int tk = costmodel::prefill_tile_k(costmodel::prefill_padded_width(rank));
  std::vector<int64_t> costs;
  for (const attn::PrefillTile& t : plan.tiles) {
    const int q = cu[static_cast<size_t>(t.seq) + 1] - cu[static_cast<size_t>(t.seq)];
    const int64_t visible = kv[static_cast<size_t>(t.seq)] - q + std::min(q, t.q_begin + costmodel::kPrefillTileQ);
    costs.push_back((visible + tk - 1) / tk + 1);
  }
  return costs;
}

// Block by block: blocks in plan order; the first num_sms x per_sm fill the SMs breadth first; an
// SM with two resident blocks runs each at `speed`, with one at full speed; a finished block's slot
// takes the next block at once (ties: the block issued first finishes first). Times advance from
// event to event on every block's remaining work.
double simulate_blocks(const std::vector<int64_t>& costs, int sms, int per_sm, double speed) {
  struct Block {
    double left;
    int sm;
    int64_t order;
  };
  std::vector<Block> running;
  size_t next = 0;
  int64_t issued = 0;
  for (; next < costs.size() && next < static_cast<size_t>(sms * per_sm); ++next)
    running.push_back({static_cast<double>(costs[next]), static_cast<int>(next % static_cast<size_t>(sms)), issued++});
  double now = 0;
  while (!running.empty()) {
    std::vector<int> on_sm(static_cast<size_t>(sms), 0);
    for (const Block& b : running) ++on_sm[static_cast<size_t>(b.sm)];
    auto rate = [&](const Block& b) { return on_sm[static_cast<size_t>(b.sm)] > 1 ? speed : 1.0; };
    size_t first = 0;  // the next to finish; within rounding of a tie, the one issued first
    for (size_t i = 1; i < running.size(); ++i) {
      const double ti = running[i].left / rate(running[i]), tf = running[first].left / rate(running[first]);
      if (ti < tf - 1e-9 || (ti <= tf + 1e-9 && running[i].order < running[first].order)) first = i;
    }
    const double dt = running[first].left / rate(running[first]);
    for (Block& b : running) b.left -= dt * rate(b);
    now += dt;
    const int sm = running[first].sm;
    running.erase(running.begin() + static_cast<std::ptrdiff_t>(first));
    if (next < costs.size()) running.push_back({static_cast<double>(costs[next++]), sm, issued++});
  }
  return now;
}

}  // namespace

TEST_CASE("prefill makespan: blocks over a few SMs, worked by hand") {
  // One chunk of 128 tokens after 1000 cached at width 128: one block per head, ceil(1128 / 128) =
  // 9 key tiles + 1. Four heads on 4 SMs run at once; eight on 4 SMs take two rounds.
  const std::vector<SeqWork> one{{128, 1000, true}};
  CHECK(makespan(one, 4, 128, {4, 1, 1}) == 10);
  CHECK(makespan(one, 8, 128, {4, 1, 1}) == 20);
  CHECK(makespan(one, 5, 128, {4, 1, 1}) == 20);  // the fifth waits for a whole block
  // Width 64: 18 key tiles of 64 + 1 = 19. Six blocks on 4 SMs: two SMs hold two blocks each, both
  // at 0.8 speed: 19 / 0.8 = 23.75; the others finish alone at 19.
  CHECK(makespan(one, 6, 64, {4, 1, 0.8}) == doctest::Approx(23.75));
  CHECK(makespan(one, 4, 64, {4, 1, 0.8}) == 19);  // one block per SM: none shared
  // Ten blocks at width 64 on 4 SMs (8 slots): two wait. All eight finish together at 23.75; the
  // last two start then on SMs 0 and 1, each alone on its SM: 23.75 + 19 = 42.75.
  CHECK(makespan(one, 10, 64, {4, 1, 0.8}) == doctest::Approx(42.75));
  // Twelve: the four waiting blocks take the slots in the order they were filled, one on each SM,
  // and run alone: 42.75 again. Sixteen: two on every SM, shared: 23.75 + 23.75.
  CHECK(makespan(one, 12, 64, {4, 1, 0.8}) == doctest::Approx(42.75));
  CHECK(makespan(one, 16, 64, {4, 1, 0.8}) == doctest::Approx(47.5));
  // Unequal blocks: 129 new tokens, no cache, 3 heads at width 128 on 2 SMs: q tile 0 sees 128 keys
  // (1 tile + 1 = 2), q tile 1 sees 129 (2 tiles + 1 = 3). Plan order 3, 3, 3, 2, 2, 2: SM 0 and 1
  // take a 3 each; then 3 at t = 3 on SM 0, 2 at 3 on SM 1, 2 at 5 on SM 1, 2 at 6 on SM 0: 8.
  CHECK(makespan({{129, 0, true}}, 3, 128, {2, 1, 1}) == 8);
  // A larger fixed cost per block lengthens every block.
  CHECK(makespan(one, 8, 128, {4, 2.5, 1}) == 2 * 11.5);
  // Decode steps are not in the launch; no prefill chunk, no SMs or no heads: nothing.
  CHECK(makespan({{1, 5000, true}, {128, 1000, true}}, 4, 128, {4, 1, 1}) == 10);
  CHECK(makespan({{1, 5000, true}}, 4, 128, {4, 1, 1}) == 0);
  CHECK(makespan(one, 4, 128, {0, 1, 1}) == 0);
  CHECK(makespan(one, 0, 128, {4, 1, 1}) == 0);
}

TEST_CASE("prefill makespan: the kernels' balanced plan list-scheduled, when no SM is shared") {
  // Awkward chunk sizes, equal ranks on every head: the makespan follows the plan's launch order
  // (costliest first) over the SMs, one block each at width 128, two at width 64 at full speed.
  const std::vector<std::vector<SeqWork>> batches = {
      {{2, 0, true}},
      {{17, 0, true}, {129, 3, true}},
      {{1000, 0, true}},
      {{4097, 0, true}},
      {{128, 4096, true}, {128, 4096, true}, {512, 1024, true}, {3, 1, true}},
      {{300, 0, true}, {700, 50, true}, {129, 129, true}, {1000, 1000, true}, {64, 0, true}},
  };
  for (size_t b = 0; b < batches.size(); ++b)
    for (int heads : {1, 3, 8, 40})
      for (int sms : {1, 4, 7, 132})
        for (int rank : {64, 128}) {
          CAPTURE(b);
          CAPTURE(heads);
          CAPTURE(sms);
          CAPTURE(rank);
          const std::vector<int64_t> costs = plan_block_costs(batches[b], heads, rank);
          const int per_sm = costmodel::prefill_blocks_per_sm(costmodel::prefill_padded_width(rank));
          CHECK(makespan(batches[b], heads, costmodel::prefill_padded_width(rank), {sms, 1, 1}) ==
                static_cast<double>(attn::list_schedule_makespan(costs, sms * per_sm)));
        }
}

TEST_CASE("prefill makespan: two blocks sharing an SM, against a block-by-block simulation") {
  // At width 64 with a shared speed below 1 the makespan is no longer list scheduling: a block
  // speeds up once its SM's other block finishes and no block waits. Speeds 1 and 0.5 keep every
  // time exact in binary, so the two must agree to the bit.
  const std::vector<std::vector<SeqWork>> batches = {
      {{129, 0, true}},
      {{1000, 0, true}},
      {{128, 4096, true}, {512, 1024, true}, {3, 1, true}},
      {{300, 0, true}, {700, 50, true}, {129, 129, true}, {64, 0, true}},
  };
  for (size_t b = 0; b < batches.size(); ++b)
    for (int heads : {1, 2, 5, 9})
      for (int sms : {1, 3, 4, 7})
        for (double speed : {1.0, 0.5}) {
          CAPTURE(b);
          CAPTURE(heads);
          CAPTURE(sms);
          CAPTURE(speed);
          const std::vector<int64_t> costs = plan_block_costs(batches[b], heads, 64);
          CHECK(makespan(batches[b], heads, 64, {sms, 1, speed}) == simulate_blocks(costs, sms, 2, speed));
        }
  // At other speeds the same up to rounding.
  for (size_t b = 0; b < batches.size(); ++b)
    for (double speed : {0.8, 0.65}) {
      CAPTURE(b);
      CAPTURE(speed);
      const std::vector<int64_t> costs = plan_block_costs(batches[b], 3, 64);
      CHECK(makespan(batches[b], 3, 64, {4, 1, speed}) == doctest::Approx(simulate_blocks(costs, 4, 2, speed)));
    }
}

TEST_CASE("prefill makespan: reused buffers give the same answer, and the work sits in its width's column") {
  PrefillMakespanScratch s;
  const std::vector<SeqWork> big{{4097, 0, true}, {300, 700, true}}, small{{129, 0, true}};
  const PrefillScheduleConstants k{132, 1, 0.85};
  const double first = costmodel::prefill_makespan_tiles(big, 40, 64, k, s);
  (void)costmodel::prefill_makespan_tiles(small, 3, 128, k, s);
  CHECK(costmodel::prefill_makespan_tiles(big, 40, 64, k, s) == first);
  const costmodel::PrefillMakespanWork w64 = costmodel::prefill_makespan_work(big, 40, 48, k, s);
  CHECK(w64.flops_w128 == 0);
  CHECK(w64.flops_w64 == first * costmodel::prefill_pair_flops(64));
  const costmodel::PrefillMakespanWork w128 = costmodel::prefill_makespan_work(big, 40, 72, k, s);
  CHECK(w128.flops_w64 == 0);
  CHECK(w128.flops_w128 == costmodel::prefill_makespan_tiles(big, 40, 128, k, s) * costmodel::prefill_pair_flops(128));
}

TEST_CASE("fitted model: prefill attention prices the blocks' makespan of the batch, as the fit prices a case") {
  // A toy model of 4 heads at rank 16 (width 64) on a GPU of 3 SMs; the law prices the makespan
  // alone, at 1 us per padded FLOP of it, so the op's time is the makespan's work.
  costmodel::ModelSpec m;
  m.name = "toy";
  m.num_layers = 2, m.hidden = 64, m.num_heads = 4, m.num_kv_heads = 4, m.head_dim = 16, m.ffn_hidden = 128;
  m.vocab = 100, m.max_model_len = 100000;
  costmodel::ModelDims d;
  costmodel::LayerDims l;
  l.kv_heads.assign(4, {16, 16, 16, 16});
  d.layers.assign(2, l);
  fit::FittedProfile p;
  p.gpu = "toy-gpu";
  auto constant = [&](const std::string& op) {
    fit::OpFit f;
    f.op = op, f.form = fit::FitForm::kConstant, f.alpha_us = 1;
    p.ops[op] = f;
  };
  for (const char* op : {"gemm/qkv_proj/cublaslt", "gemm/out_proj/cublaslt", "gemm/mlp_up/cublaslt",
                         "gemm/mlp_down/cublaslt", "gemm/lm_head/cublaslt", "rope_rotate/rope_only", "residual",
                         "mlp_act/swiglu", "norm/rmsnorm", "attn_decode", "kv_append", "iteration_overhead"})
    constant(op);
  fit::OpFit law;
  law.op = "attn_prefill", law.form = fit::FitForm::kAttentionMakespan;
  law.us_per_makespan_flop_w64 = 1.0, law.us_per_makespan_flop_w128 = 1e3;
  law.prefill_schedule = PrefillScheduleConstants{3, 1, 0.8};
  p.ops[law.op] = law;
  const costmodel::FittedCostModel model(m, d, {1, 1}, p, {"toy", "test"});
  // Three equal chunks of 300 new tokens after 200 cached, and a decode step (not in the launch).
  costmodel::Batch batch;
  for (int i = 0; i < 3; ++i) batch.add({300, 200, true});
  batch.add({1, 900, true});
  costmodel::OpBreakdown bd;
  model.iteration_time(batch, bd);
  const double per_layer_us = bd.seconds[static_cast<size_t>(costmodel::OpKind::kAttnPrefill)] * 1e6 / 2;
  // The fit's query of the same shape as a measured case: 3 sequences, 900 tokens, 4 q heads.
  fit::Sample s;
  s.group = "attn_prefill", s.where = "test", s.bytes = 1e6, s.flops = 1e9;
  fit::AttnFeatures a;
  a.num_seqs = 3, a.tokens = 900, a.ctx_mean = 200, a.ctx_max = 200, a.q_heads = 4, a.max_rank = 16;
  a.padded_flops = 1;  // the law does not price it; a query needs it
  s.attn = a;
  PrefillMakespanScratch scratch;
  const fit::OpQuery q = fit::makespan_query(s, *law.prefill_schedule, scratch);
  CHECK(q.makespan.flops_w128 == 0);
  CHECK(q.makespan.flops_w64 == makespan(std::vector<SeqWork>(3, {300, 200, false}), 4, 64, *law.prefill_schedule) *
                                    costmodel::prefill_pair_flops(64));
  CHECK(per_layer_us == doctest::Approx(fit::predict_time_us(law, q)).epsilon(1e-12));
  // A larger batch priced by the same model object: its own makespan, not the last one's.
  costmodel::Batch two;
  two.add({2000, 0, true});
  costmodel::OpBreakdown bd2;
  model.iteration_time(two, bd2);
  CHECK(bd2.seconds[static_cast<size_t>(costmodel::OpKind::kAttnPrefill)] * 1e6 / 2 ==
        doctest::Approx(makespan(two.seqs, 4, 64, *law.prefill_schedule) * costmodel::prefill_pair_flops(64)));
}
