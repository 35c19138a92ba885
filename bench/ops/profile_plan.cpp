#include "bench/ops/profile_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "bench/ops/attention_grid.h"
#include "configs/embedded_configs.h"
#include "core/config.h"
#include "core/error.h"
#include "costmodel/ops.h"
#include "kernels/attention/cost.h"
#include "sim/policy.h"

namespace fdc::profile {
namespace {

using costmodel::OpKind;
using costmodel::OpWork;

// Nominal rates for run-time estimates only (deliberately below an H100's, so estimates err long).
constexpr double kFlopRate = 400e12, kByteRate = 1.5e12, kLinkRate = 80e9, kCollectiveLatency = 30e-6;
constexpr double kCaseOverhead = 0.03;  // allocation, fills, Google Benchmark bookkeeping
constexpr double kLaunchOverhead = 8.0;  // fork + CUDA + NCCL initialisation of a multi-GPU launch
constexpr double kElem = 2.0;           // bf16

double op_time(const OpWork& w) { return std::max(w.flops / kFlopRate, w.bytes / kByteRate) + 5e-6; }

std::string name_of(OpKind k) { return std::string(costmodel::op_name(k)); }

// A case of model `m`'s op `op`, run by the runner of `kind`, at priority `prio`.
BenchCase model_case(std::string kind, OpKind op, const costmodel::ModelSpec& m, int prio) {
  BenchCase c;
  c.kind = std::move(kind);
  c.op = name_of(op);
  c.model = m.name;
  c.priority = prio;
  return c;
}

std::string key_of(const BenchCase& c) {
  std::ostringstream os;
  os << c.kind << '|' << c.op << '|' << c.gpus;
  for (const auto& [k, v] : c.shape) os << '|' << k << '=' << v;
  return os.str();
}

struct Builder {
  const GridOptions& o;
  ProfilePlan& plan;
  std::vector<BenchCase> all;
  std::set<std::string> seen;
  int duplicates = 0;

  void add(BenchCase c, double op_s, double alloc_bytes) {
    // The peaks run under any filter: every "% of peak" counter divides by them, and `fdcsim fit`
    // needs them for the GEMMs' roofline, so a filtered folder can be fitted on its own.
    const bool peak = c.kind.rfind("peak", 0) == 0;
    if (!peak && !o.filters.empty() &&
        std::none_of(o.filters.begin(), o.filters.end(),
                     [&](const std::string& f) { return ("/" + c.name).find(f) != std::string::npos; }))
      return;
    if (!seen.insert(key_of(c)).second) {
      ++duplicates;
      return;
    }
    // Setup (allocation + device fill at a conservative 50 GB/s) plus the timed runs: at least
    // min_time of manual time, and a few runs of long ops.
    c.op_est_s = op_s;
    c.est_s = kCaseOverhead + alloc_bytes / 50e9 + 1.5 * std::max(o.min_time_s, 6 * op_s);
    if (c.kind == "gemm") c.est_s *= 2;  // cuBLASLt and cublasGemmEx, one benchmark each
    c.est_s *= o.repetitions;            // each repetition sets the case up again
    all.push_back(std::move(c));
  }

  void gemm(const costmodel::ModelSpec* m, OpKind op, int tp, int rank, int64_t rows, int64_t n, int64_t k,
            int priority) {
    BenchCase c;
    c.kind = "gemm";
    c.op = name_of(op);
    c.model = m ? m->name : "";
    c.priority = priority;
    std::ostringstream nm;
    nm << "gemm/" << c.op << "/" << (m ? m->name : "any") << "/tp" << tp;
    if (rank > 0) nm << "/r" << rank;
    nm << "/m" << rows;
    c.name = nm.str();
    c.shape = {{"m", double(rows)}, {"n", double(n)}, {"k", double(k)}, {"tp", double(tp)}};
    if (rank > 0) c.shape["rank"] = rank;
    const OpWork w = costmodel::gemm_work(double(rows), double(n), double(k), kElem);
    c.flops = w.flops;
    c.bytes = w.bytes;
    add(std::move(c), op_time(w), w.bytes);
  }
};

// KV append of `tokens` new rows at a uniform rank per KV head (r_qk = r_v = rank), tp 1: the rows
// of one sequence's prefill, appended into a paged cache (attention_benchmarks.cpp). The kernel's
// work is per (row, KV head) pair whatever the sequences, so one sequence stands for any batch.
void add_kv_append_case(Builder& b, const costmodel::ModelSpec& m, int rank, int64_t tokens, int prio) {
  const double kv_dims = double(m.num_kv_heads) * 2.0 * rank;
  BenchCase c = model_case("kv_append", OpKind::kKvAppend, m, prio);
  c.name = "kv_append/" + m.name + "/r" + std::to_string(rank) + "/m" + std::to_string(tokens);
  c.shape = {
      {"tokens", double(tokens)}, {"kv_heads", double(m.num_kv_heads)}, {"rank", double(rank)}, {"kv_dims", kv_dims}};
  const OpWork w = costmodel::kv_append_work(double(tokens), kv_dims, kElem);
  c.flops = w.flops;
  c.bytes = w.bytes;
  b.add(std::move(c), op_time(w), w.bytes);
}

// Prompt classification of hybrid token classes (kernels/attention/classify.h): one prompt of
// `tokens` rows, half of them kept hi, over the model's KV heads with the token-class rank table
// of kv_classify_ranks. Three launches (importance, segmented sort, assign): a longer fixed cost.
void add_kv_classify_case(Builder& b, const costmodel::ModelSpec& m, int64_t tokens, int prio) {
  const std::vector<kernels::attn::HeadRanks> ranks = kv_classify_ranks(m.num_kv_heads, m.head_dim);
  double tail = 0;
  for (const auto& r : ranks) tail += (r.rk - r.rk_lo) + (r.rv - r.rv_lo);
  BenchCase c = model_case("kv_classify", OpKind::kKvClassify, m, prio);
  c.name = "kv_classify/" + m.name + "/m" + std::to_string(tokens);
  c.shape = {{"tokens", double(tokens)},       {"seqs", 1.0},
             {"hi_rows", double(tokens / 2)},  {"kv_heads", double(m.num_kv_heads)},
             {"head_dim", double(m.head_dim)}, {"tail_dims", tail}};
  const OpWork w = costmodel::kv_classify_work(double(tokens), tail, kElem);
  c.flops = w.flops;
  c.bytes = w.bytes;
  b.add(std::move(c), op_time(w) + 10e-6, w.bytes);
}

// Nominal attention rates for estimates: prefill runs far below the GEMM rate (docs/kernels.md).
constexpr double kAttnFlopRate = 100e12;

// Shape counters every attention case carries (the format agreed with the fitter: docs/profile.md).
// A case measured on a rank table (a policy's layer) also carries every head's ranks
// (set_rank_table_counters).
void attention_shape(BenchCase& c, const costmodel::ModelSpec& m, const std::vector<kernels::attn::HeadRanks>& ranks,
                     const std::vector<int>& ctx, int new_tokens, double lo_fraction, bool mixed, bool table = false) {
  double rk = 0, rv = 0, rk_lo = 0, rv_lo = 0;
  int max_rank = 0;  // the launch's padded width follows it (costmodel/prefill_tiles.h)
  for (const auto& r : ranks) {
    max_rank = std::max({max_rank, r.rk, r.rv});
    rk += r.rk;
    rv += r.rv;
    rk_lo += r.rk_lo;
    rv_lo += r.rv_lo;
  }
  const double n = double(ranks.size());
  const LengthStats st = length_stats(ctx);
  c.shape = {{"num_seqs", double(ctx.size())},
             {"tokens", double(new_tokens)},
             {"ctx_mean", st.mean},
             {"ctx_max", st.max},
             {"ctx_cv", st.cv},
             {"rank_qk", rk / n},
             {"rank_v", rv / n},
             {"rank_qk_lo", rk_lo / n},
             {"rank_v_lo", rv_lo / n},
             {"lo_fraction", lo_fraction},
             {"group", double(m.group_size())},
             {"q_heads", double(m.num_heads)},
             {"kv_heads", double(m.num_kv_heads)},
             {"head_dim", double(m.head_dim)},
             {"ranks_mixed", mixed ? 1.0 : 0.0},
             {"max_rank", double(max_rank)}};
  if (table) set_rank_table_counters(c.shape, ranks);
}

// One decode case: `len` cached tokens per sequence, the per-head ranks `hr` (lo ranks used when
// lo > 0), `tag` naming the ranks in the case name.
void add_decode_case(Builder& b, const costmodel::ModelSpec& m, const std::vector<int>& len, int ctx, int spread,
                     const std::string& tag, const std::vector<kernels::attn::HeadRanks>& hr, double lo, bool balanced,
                     bool mixed, bool table, int prio) {
  namespace attn = kernels::attn;
  const GridOptions& o = b.o;
  static const char* spread_names[] = {"uniform", "quarter_long", "one_half"};
  const int batch = static_cast<int>(len.size()), Hk = m.num_kv_heads;
  const attn::HeadLayout L =
      lo > 0 ? attn::HeadLayout::shared(m.num_heads, Hk, hr, o.attn_block_size, shared_hi_slots(lo, o.attn_block_size))
             : attn::HeadLayout(m.num_heads, Hk, hr, o.attn_block_size);
  std::vector<int> hi, lo_n;
  decode_classes(len, lo, &hi, &lo_n);
  BenchCase c = model_case("attn_decode", OpKind::kAttnDecode, m, prio);
  c.name = "attn_decode/" + m.name + "/b" + std::to_string(batch) + "/ctx" + std::to_string(ctx) + "/" +
           spread_names[spread] + "/" + tag + "/lo" + std::to_string(std::lround(lo * 100)) +
           (lo > 0 ? "/shared" : "") + (balanced ? "/balanced" : "/naive");
  attention_shape(c, m, hr, len, batch, lo, mixed, table);
  c.shape["balanced"] = balanced ? 1 : 0;
  c.shape["spread"] = spread;
  c.shape["block_size"] = o.attn_block_size;
  if (lo > 0) {  // shared pages: their slots, and the lo ranks' share (mixed and uniform ranks)
    c.shape["slots_hi"] = L.slots(attn::TokenClass::kHi);
    c.shape["slots_lo"] = L.slots(attn::TokenClass::kLo);
    if (!table) c.shape["lo_rank_share"] = o.attn_lo_rank_share;
  }
  const double kv_bytes = double(attn::decode_kv_bytes(L, hi, lo_n, int(kElem)));
  c.flops = double(attn::decode_flops(L, hi, lo_n));
  c.bytes = kv_bytes + double(batch) * (L.q_row() + L.o_row()) * kElem;
  const double op_s = c.bytes / kByteRate + 15e-6;
  b.add(std::move(c), op_s, kv_bytes);
}

// The decode grid's (batch, mean context) points at each of `spreads`, with their per-sequence
// lengths.
template <typename F>
void for_each_decode_point(const GridOptions& o, const std::vector<int>& spreads, F&& f) {
  for (int batch : o.attn_decode_batches)
    for (int ctx : o.attn_decode_contexts) {
      if (int64_t{batch} * ctx > o.attn_max_kv_tokens) continue;
      for (int spread : spreads) {
        if (batch == 1 && spread != 0) continue;
        f(context_lengths(batch, ctx, static_cast<ContextSpread>(spread)), ctx, spread);
      }
    }
}

// Case-name text of a policy's table: letters, digits, '-', '.' and '_' kept, others as '_'.
std::string table_tag(const PolicyTable& t) {
  std::string name = t.policy;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.' && ch != '_') ch = '_';
  return "table-" + name + "-l" + std::to_string(t.layers.front());
}

// Decode at a policy's rank tables (GridOptions::attn_policies): balanced plan, the decode grid's
// batches and contexts with every sequence at the mean (the grid's skewed batches already give the
// spread's cost; these cases give the tables'); tables with token classes at each lo fraction of
// the grid (on shared pages when above 0), tables without at lo 0. They run after the grid's cases
// (`prio` one higher), so that a tight budget keeps the grid.
void add_policy_decode_cases(Builder& b, const costmodel::ModelSpec& m, const std::vector<PolicyTable>& tables,
                             int prio) {
  for (const PolicyTable& t : tables) {
    std::vector<kernels::attn::HeadRanks> hi_only, classes;
    for (const costmodel::KvHeadDims& d : t.heads) {
      hi_only.push_back({d.qk_hi, d.v_hi, d.qk_hi, d.v_hi});
      classes.push_back({d.qk_hi, d.v_hi, d.qk_lo, d.v_lo});
    }
    const std::vector<double> lo_fractions = t.token_classes() ? b.o.attn_lo_fractions : std::vector<double>{0.0};
    for_each_decode_point(b.o, {static_cast<int>(ContextSpread::kUniform)},
                          [&](const std::vector<int>& len, int ctx, int spread) {
                            for (double lo : lo_fractions)
                              add_decode_case(b, m, len, ctx, spread, table_tag(t), lo > 0 ? classes : hi_only, lo,
                                              true, false, true, prio);
                          });
  }
}

// Prefill (tokens x context x ranks) and decode (batch x context mean x spread x ranks x lo share,
// balanced plan; the naive plan beside it on mixed ranks) at the model's head shape, tp 1.
void add_attention_cases(Builder& b, const costmodel::ModelSpec& m, const std::vector<int>& ranks,
                         const std::vector<PolicyTable>& tables, int prio) {
  namespace attn = kernels::attn;
  const GridOptions& o = b.o;
  const int Hk = m.num_kv_heads, d = m.head_dim, group = m.group_size();
  if (d > 128 || d % 8 || !(group == 1 || group == 2 || group == 4 || group == 8)) {
    b.plan.notes.push_back(m.name + ": attention skipped (head_dim " + std::to_string(d) + ", group " +
                           std::to_string(group) + ": the kernels take head_dim <= 128, group 1/2/4/8)");
    return;
  }
  std::vector<int> rank_set;  // 0 = the mixed per-head table
  for (int r : ranks)
    if (r >= 16 && r <= 128) rank_set.push_back(r);
  if (d >= 128) rank_set.push_back(0);  // the mixed table's ranks reach 128
  for (int spread : o.attn_decode_spreads)
    FDC_INPUT_CHECK(spread >= 0 && spread <= 2, "profile: attention context spread " << spread << " is not 0, 1 or 2");
  auto rank_name = [](int r) { return r == 0 ? std::string("mixed") : "r" + std::to_string(r); };
  constexpr int kBlock = 16;

  for (int seqs : o.attn_prefill_seqs)
    for (int q : o.attn_prefill_tokens) {
      if (int64_t{seqs} * q > o.attn_prefill_max_tokens) continue;
      for (int prefix : o.attn_prefill_prefix)
        for (int r : rank_set) {
          const auto hr = attention_head_ranks(Hk, r, r == 0, false);
          const attn::HeadLayout L(m.num_heads, Hk, hr, kBlock);
          // Context = the cached prefix; the chunk's q new tokens follow it.
          std::vector<int> cu{0}, kv(static_cast<size_t>(seqs), prefix + q), ctx(static_cast<size_t>(seqs), prefix);
          for (int s = 0; s < seqs; ++s) cu.push_back(cu.back() + q);
          BenchCase c = model_case("attn_prefill", OpKind::kAttnPrefill, m, prio);
          c.name = "attn_prefill/" + m.name + "/s" + std::to_string(seqs) + "/q" + std::to_string(q) + "/ctx" +
                   std::to_string(prefix) + "/" + rank_name(r);
          attention_shape(c, m, hr, ctx, seqs * q, 0.0, r == 0);
          c.shape["prefix"] = prefix;
          c.flops = double(attn::prefill_flops(L, cu, kv));
          c.bytes = double(attn::prefill_bytes(L, cu, kv, int(kElem)));
          const double cache = double(seqs) * (prefix + q) * (L.k_row() + L.v_row()) * kElem;
          const double op_s = std::max(c.flops / kAttnFlopRate, c.bytes / kByteRate) + 10e-6;
          b.add(std::move(c), op_s, cache);
        }
    }

  for_each_decode_point(o, o.attn_decode_spreads, [&](const std::vector<int>& len, int ctx, int spread) {
    for (int r : rank_set)
      for (double lo : o.attn_lo_fractions)
        for (bool balanced : {true, false}) {
          if (!balanced && (r != 0 || lo > 0)) continue;  // naive beside balanced: mixed ranks only
          const auto hr = attention_head_ranks(Hk, r, r == 0, lo > 0 ? o.attn_lo_rank_share : 0.0);
          add_decode_case(b, m, len, ctx, spread, rank_name(r), hr, lo, balanced, r == 0, false, prio);
        }
  });
  add_policy_decode_cases(b, m, tables, prio + 1);
}

void check_fractions(const GridOptions& o) {
  FDC_INPUT_CHECK(o.attn_lo_rank_share > 0 && o.attn_lo_rank_share <= 1,
                  "profile: --attn-lo-rank-share " << o.attn_lo_rank_share << " is outside (0, 1]");
  FDC_INPUT_CHECK(o.attn_block_size >= 2, "profile: attention block size " << o.attn_block_size << " is below 2");
  for (double lo : o.attn_lo_fractions) {
    FDC_INPUT_CHECK(lo >= 0 && lo < 1, "profile: --attn-lo-fractions value " << lo << " is outside [0, 1)");
    const int hi = lo > 0 ? shared_hi_slots(lo, o.attn_block_size) : o.attn_block_size;
    FDC_INPUT_CHECK(lo == 0 || (hi >= 1 && hi < o.attn_block_size), "profile: --attn-lo-fractions value "
                                                                        << lo << " leaves no lo slot in a page of "
                                                                        << o.attn_block_size << " tokens (" << hi
                                                                        << " hi); use 0 for no token classes");
  }
  for (int n : o.attn_prefill_seqs)
    FDC_INPUT_CHECK(n >= 1 && n <= 4096, "profile: --attn-prefill-seqs value " << n << " is outside [1, 4096]");
  for (int n : o.attn_prefill_tokens)
    FDC_INPUT_CHECK(n >= 1 && n <= (1 << 20), "profile: --attn-prefill-tokens value " << n << " is outside [1, 2^20]");
  for (int n : o.attn_prefill_prefix)
    FDC_INPUT_CHECK(n >= 0 && n <= (1 << 20), "profile: --attn-prefill-prefix value " << n << " is outside [0, 2^20]");
  FDC_INPUT_CHECK(!o.rank_fractions.empty(), "profile: --rank-fractions needs at least one value");
  for (double f : o.rank_fractions)
    FDC_INPUT_CHECK(f > 0 && f <= 1, "profile: rank fraction " << f << " is outside (0, 1]");
  FDC_INPUT_CHECK(!o.tokens.empty(), "profile: --tokens needs at least one value");
  for (int64_t t : o.tokens) FDC_INPUT_CHECK(t >= 1 && t <= (int64_t{1} << 20), "profile: token count " << t << " is outside [1, 2^20]");
  for (int t : o.tp) FDC_INPUT_CHECK(t >= 1 && t <= 64, "profile: tp degree " << t << " is outside [1, 64]");
  FDC_INPUT_CHECK(o.max_gpus >= 1, "profile: --gpus must be >= 1, found " << o.max_gpus);
  FDC_INPUT_CHECK(o.budget_s > 0, "profile: --budget-s must be positive, found " << o.budget_s);
  FDC_INPUT_CHECK(o.min_time_s > 0, "profile: --min-time-s must be positive, found " << o.min_time_s);
  FDC_INPUT_CHECK(o.repetitions >= 1 && o.repetitions <= 100,
                  "profile: --repetitions must be in [1, 100], found " << o.repetitions);
  FDC_INPUT_CHECK(o.rank_multiple >= 8 && o.rank_multiple % 8 == 0,
                  "profile: rank multiple " << o.rank_multiple << " must be a positive multiple of 8");
  FDC_INPUT_CHECK(o.sweep_min_bytes >= 256 && o.sweep_min_bytes <= o.sweep_max_bytes &&
                      o.sweep_max_bytes <= (int64_t{1} << 32),
                  "profile: sweep sizes " << o.sweep_min_bytes << ".." << o.sweep_max_bytes
                                          << " must satisfy 256 <= min <= max <= 4 GiB");
}

}  // namespace

namespace {

// A config of `kind` (configs/<kind>, embedded) by name, or a file by a path (it has a '/' or ends in
// .json), parsed by `parse`. An unknown name is an InputError that says `unknown` and lists the
// embedded ones.
template <typename Parse>
auto load_config(const char* kind, const std::string& name_or_path, const std::string& unknown, Parse parse) {
  Json resolved;
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json");
  if (is_path) {
    const Json doc = load_json_file(name_or_path);
    return parse(ConfigNode(doc, name_or_path, "", resolved));
  }
  const auto* c = configs::find_embedded_config(kind, name_or_path);
  if (!c) {
    std::string known;
    for (const auto& e : configs::embedded_configs())
      if (e.kind == kind) known += (known.empty() ? "" : ", ") + std::string(e.name);
    throw InputError("profile: " + unknown + " '" + name_or_path + "' (embedded " + kind + ": " + known +
                     "; or give a path ending in .json)");
  }
  const Json doc = parse_json_text(std::string(c->text), std::string(c->path));
  return parse(ConfigNode(doc, std::string(c->path), "", resolved));
}

sim::PolicySpec load_policy(const std::string& name_or_path) {
  return load_config("policies", name_or_path, "--attn-policies: unknown policy",
                     [](const ConfigNode& n) { return sim::parse_policy(n); });
}

}  // namespace

costmodel::ModelSpec load_model(const std::string& name_or_path) {
  return load_config("models", name_or_path, "unknown model",
                     [](const ConfigNode& n) { return costmodel::parse_model(n); });
}

namespace {

std::vector<PolicyTable> tables_of(const sim::PolicySpec& spec, const costmodel::ModelSpec& model, int block_size) {
  const costmodel::ModelDims dims = sim::resolve_policy(spec, model, block_size);
  std::vector<PolicyTable> out;
  std::vector<std::vector<costmodel::KvHeadDims>> keys;  // each table's heads, sorted
  auto less = [](const costmodel::KvHeadDims& a, const costmodel::KvHeadDims& b) {
    return std::tie(a.qk_hi, a.v_hi, a.qk_lo, a.v_lo) < std::tie(b.qk_hi, b.v_hi, b.qk_lo, b.v_lo);
  };
  for (size_t l = 0; l < dims.layers.size(); ++l) {
    std::vector<costmodel::KvHeadDims> key = dims.layers[l].kv_heads;
    std::sort(key.begin(), key.end(), less);
    const auto it = std::find(keys.begin(), keys.end(), key);
    if (it != keys.end()) {
      out[static_cast<size_t>(it - keys.begin())].layers.push_back(static_cast<int>(l));
      continue;
    }
    keys.push_back(std::move(key));
    out.push_back({spec.name, {static_cast<int>(l)}, dims.layers[l].kv_heads});
  }
  return out;
}

}  // namespace

bool PolicyTable::token_classes() const {
  return std::any_of(heads.begin(), heads.end(),
                     [](const costmodel::KvHeadDims& d) { return d.qk_lo != d.qk_hi || d.v_lo != d.v_hi; });
}

std::vector<PolicyTable> policy_tables(const std::string& name_or_path, const costmodel::ModelSpec& model,
                                       int block_size) {
  return tables_of(load_policy(name_or_path), model, block_size);
}

int rank_for(double fraction, int head_dim, int rank_multiple) {
  const int r = static_cast<int>(std::lround(fraction * head_dim / rank_multiple)) * rank_multiple;
  return std::clamp(r, std::min(rank_multiple, head_dim), head_dim);
}

ProfilePlan make_profile_plan(const GridOptions& o) {
  check_fractions(o);
  ProfilePlan plan;
  plan.budget_s = o.budget_s;
  std::vector<std::string> names = o.models;
  if (names.empty())
    for (const auto& e : configs::embedded_configs())
      if (e.kind == "models") names.emplace_back(e.name);
  for (const auto& n : names) plan.models.push_back(load_model(n));
  Builder b{o, plan, {}, {}, 0};
  // Policies whose rank tables decode attention is measured at: parsed once (an invalid one is an
  // error), then resolved per model; one that fits none of the models is an error too.
  std::vector<sim::PolicySpec> policies;
  std::vector<std::string> misfits(o.attn_policies.size());
  std::vector<bool> fits(o.attn_policies.size(), false);
  for (const auto& p : o.attn_policies) policies.push_back(load_policy(p));

  // Measured peaks: every "% of peak" counter divides by these.
  {
    BenchCase c;
    c.kind = "peak_gemm";
    c.op = "peak";
    c.name = "peak/gemm_bf16/m8192n8192k8192";
    c.shape = {{"m", 8192}, {"n", 8192}, {"k", 8192}};
    const OpWork w = costmodel::gemm_work(8192, 8192, 8192, kElem);
    c.flops = w.flops;
    c.bytes = w.bytes;
    b.add(c, op_time(w), w.bytes);
    BenchCase d;
    d.kind = "peak_copy";
    d.op = "peak";
    d.name = "peak/device_copy/1GiB";
    d.shape = {{"bytes", double(int64_t{1} << 30)}};
    d.bytes = 2.0 * double(int64_t{1} << 30);
    b.add(d, d.bytes / kByteRate, d.bytes);
  }

  for (const costmodel::ModelSpec& m : plan.models) {
    const int64_t H = m.num_heads, Hk = m.num_kv_heads, d = m.head_dim, D = m.hidden, F = m.ffn_hidden;
    const bool report = m.name == "llama-2-13b";  // the performance report's model runs first
    std::vector<int> ranks;
    for (double f : o.rank_fractions) {
      const int r = rank_for(f, m.head_dim, o.rank_multiple);
      if (std::find(ranks.begin(), ranks.end(), r) == ranks.end()) ranks.push_back(r);
    }
    for (int tp : o.tp) {
      if (H % tp || Hk % tp || F % tp || m.vocab % tp) {
        plan.notes.push_back(m.name + ": tp " + std::to_string(tp) + " skipped (heads " + std::to_string(H) + "/" +
                             std::to_string(Hk) + ", ffn " + std::to_string(F) + " or vocab " +
                             std::to_string(m.vocab) + " not divisible)");
        continue;
      }
      for (int64_t M : o.tokens) {
        const int prio = tp == 1 ? ((report && M >= 1024) ? 0 : 1) : 2;
        for (int r : ranks) {
          const int64_t qkv_n = m.rope ? ((H + Hk) * d + Hk * r) / tp : (H * r + 2 * Hk * r) / tp;
          b.gemm(&m, OpKind::kQkvProj, tp, r, M, qkv_n, D, prio);
          b.gemm(&m, OpKind::kOutProj, tp, r, M, D, H * r / tp, prio);
        }
        b.gemm(&m, OpKind::kMlpUp, tp, 0, M, (m.mlp == costmodel::MlpKind::kGated ? 2 * F : F) / tp, D, prio);
        b.gemm(&m, OpKind::kMlpDown, tp, 0, M, D, F / tp, prio);
        b.gemm(&m, OpKind::kLmHead, tp, 0, M, m.vocab / tp, D, prio);

        if (m.rope && (d == 64 || d == 128) && (H / Hk) <= 8) {
          for (int r : ranks) {
            BenchCase c = model_case(r == d ? "rope" : "rope_rotate", OpKind::kRopeRotate, m,
                                     tp == 1 ? ((report && M >= 1024) ? 0 : 1) : 2);
            c.name = "rope_rotate/" + m.name + "/tp" + std::to_string(tp) + (r == d ? "/rope_only" : "/r" + std::to_string(r)) +
                     "/m" + std::to_string(M);
            c.shape = {{"tokens", double(M)}, {"q_heads", double(H / tp)}, {"kv_heads", double(Hk / tp)},
                       {"head_dim", double(d)}, {"rank", double(r)}, {"tp", double(tp)}};
            const double heads = double((H + Hk) / tp);
            const double dd = double(d), rr = double(r);
            const OpWork w = costmodel::rope_rotate_work(double(M), heads * dd, heads * rr, r < d ? heads * dd * rr : 0.0, kElem);
            c.flops = w.flops;
            c.bytes = w.bytes;
            b.add(c, op_time(w), w.bytes);
          }
        } else if (m.rope && tp == 1 && M == o.tokens.front()) {
          plan.notes.push_back(m.name + ": rope_rotate skipped (head_dim " + std::to_string(d) + ", group " +
                               std::to_string(H / Hk) + ": the kernel takes head_dim 64/128, group <= 8)");
        }
        if (tp != 1) continue;  // element-wise ops: per-row work does not shard with tp
        {
          BenchCase c = model_case("norm", OpKind::kNorm, m, prio);
          const bool ln = m.norm == costmodel::NormKind::kLayerNorm;
          c.name = std::string("norm/") + (ln ? "layernorm" : "rmsnorm") + "/d" + std::to_string(D) + "/m" + std::to_string(M);
          c.shape = {{"rows", double(M)}, {"dim", double(D)}, {"layernorm", ln ? 1.0 : 0.0}};
          const OpWork w = costmodel::elementwise_work(double(M * D), double(M * D), kElem, 4.0);
          c.flops = w.flops;
          c.bytes = w.bytes;
          b.add(c, op_time(w), w.bytes);
        }
        {
          BenchCase c = model_case("residual", OpKind::kResidual, m, prio);
          c.name = "residual/d" + std::to_string(D) + "/m" + std::to_string(M);
          c.shape = {{"count", double(M * D)}};
          const OpWork w = costmodel::elementwise_work(double(2 * M * D), double(M * D), kElem);
          c.flops = w.flops;
          c.bytes = w.bytes;
          b.add(c, op_time(w), w.bytes);
        }
        for (int t2 : o.tp) {  // the activation's width does shard with tp
          if (F % t2) continue;
          BenchCase c = model_case("mlp_act", OpKind::kMlpAct, m, t2 == 1 ? prio : 2);
          const bool gated = m.mlp == costmodel::MlpKind::kGated;
          const int64_t f = F / t2;
          c.name = std::string("mlp_act/") + (gated ? "swiglu" : "relu") + "/f" + std::to_string(f) + "/m" + std::to_string(M);
          c.shape = {{"rows", double(M)}, {"ffn", double(f)}, {"gated", gated ? 1.0 : 0.0}};
          const OpWork w = gated ? costmodel::elementwise_work(double(2 * M * f), double(M * f), kElem, 4.0)
                                 : costmodel::elementwise_work(double(M * f), double(M * f), kElem, 1.0);
          c.flops = w.flops;
          c.bytes = w.bytes;
          b.add(c, op_time(w), w.bytes);
        }
        for (int r : ranks) {
          if (r >= kernels::attn::kMinRank && r <= kernels::attn::kMaxRank)
            add_kv_append_case(b, m, r, M, prio);
          else if (M == o.tokens.front())
            plan.notes.push_back(m.name + ": kv_append at r" + std::to_string(r) +
                                 " skipped (the paged cache takes ranks 16..128)");
        }
        add_kv_classify_case(b, m, M, prio);
      }
    }
    if (o.attention) {
      std::vector<PolicyTable> tables;
      for (size_t i = 0; i < policies.size(); ++i) {
        try {
          for (PolicyTable& t : tables_of(policies[i], m, o.attn_block_size)) tables.push_back(std::move(t));
          fits[i] = true;
        } catch (const InputError& e) {
          misfits[i] += std::string(misfits[i].empty() ? "" : "; ") + m.name + ": " + e.what();
          plan.notes.push_back(m.name + ": policy " + o.attn_policies[i] + " skipped (" + e.what() + ")");
        }
      }
      add_attention_cases(b, m, ranks, tables, report ? 0 : 1);
    }
    // Ulysses all-to-alls at the model's shapes: tokens per GPU x ranks x sequence-parallel degree.
    for (int g = 2; g <= o.max_gpus; ++g) {
      if (Hk < g) {
        plan.notes.push_back(m.name + ": Ulysses on " + std::to_string(g) + " GPUs skipped (" + std::to_string(Hk) +
                             " KV heads: every GPU needs one)");
        continue;
      }
      for (int64_t M : o.tokens) {
        for (int r : ranks) {
          BenchCase c = model_case("ulysses_a2a", OpKind::kAllToAllQkv, m, g == 2 ? 1 : 2);
          c.gpus = g;
          c.name = "ulysses/" + m.name + "/sp" + std::to_string(g) + "/r" + std::to_string(r) + "/m" + std::to_string(M);
          c.shape = {{"tokens_per_gpu", double(M)}, {"q_heads", double(H)}, {"kv_heads", double(Hk)},
                     {"rank", double(r)}, {"rank_v", double(r)}, {"sp", double(g)}};
          const double qkv = double(M) * double(H * r + 2 * Hk * r) * kElem;
          const double out = double(M) * double(H * r) * kElem;
          c.bytes = qkv + out;
          c.comm_bytes = (qkv + out) * costmodel::alltoall_send_factor(g);
          const double t = 4 * kCollectiveLatency + c.comm_bytes / kLinkRate + 4 * c.bytes / kByteRate;
          b.add(c, t, 3 * c.bytes);
        }
      }
    }
  }

  for (size_t i = 0; i < policies.size(); ++i)
    FDC_INPUT_CHECK(!o.attention || fits[i], "profile: --attn-policies: policy '"
                                                 << o.attn_policies[i] << "' fits none of the profiled models ("
                                                 << misfits[i] << ")");

  // Collective bandwidth sweeps (nccl-tests sizes), every GPU count 2..N.
  for (int g = 2; g <= o.max_gpus; ++g) {
    for (const char* kind : {"all_to_all", "all_reduce", "all_gather"}) {
      const std::string k = kind;
      const OpKind op = k == "all_to_all" ? OpKind::kAllToAllQkv : k == "all_reduce" ? OpKind::kAllReduce : OpKind::kAllGather;
      const double factor = k == "all_to_all"   ? costmodel::alltoall_send_factor(g)
                            : k == "all_reduce" ? costmodel::allreduce_send_factor(g)
                                                : costmodel::allgather_send_factor(g);
      for (int64_t bytes = o.sweep_min_bytes; bytes <= o.sweep_max_bytes; bytes *= 2) {
        if (bytes % (int64_t{16} * g) != 0) continue;  // whole 16-byte vectors per rank
        BenchCase c;
        c.kind = k;
        c.op = name_of(op);
        c.gpus = g;
        c.priority = g == 2 ? (k == "all_gather" ? 1 : 0) : (g == o.max_gpus ? 1 : 2);
        c.name = k + "/g" + std::to_string(g) + "/bytes" + std::to_string(bytes);
        c.shape = {{"bytes", double(bytes)}, {"gpus", double(g)}};
        c.bytes = double(bytes);
        c.comm_bytes = double(bytes) * factor;
        b.add(c, kCollectiveLatency + c.comm_bytes / kLinkRate, 3.0 * double(bytes));
      }
    }
  }
  if (b.duplicates > 0)
    plan.notes.push_back(std::to_string(b.duplicates) + " cases had the shape of an earlier case and run once");

  // Budget: cases in priority order (stable: grid order within a priority) while the estimate fits;
  // each multi-GPU launch adds its start-up cost once.
  std::stable_sort(b.all.begin(), b.all.end(),
                   [](const BenchCase& x, const BenchCase& y) { return x.priority < y.priority; });
  std::set<int> launches;
  double total = 1.0;  // start-up of the single-GPU worker
  std::map<int, int> cut;
  for (BenchCase& c : b.all) {
    double cost = c.est_s;
    if (c.gpus > 1 && !launches.count(c.gpus)) cost += kLaunchOverhead;
    if (total + cost <= o.budget_s || c.kind.rfind("peak", 0) == 0) {
      total += cost;
      if (c.gpus > 1) launches.insert(c.gpus);
      plan.run.push_back(std::move(c));
    } else {
      ++cut[c.priority];
      plan.skipped.push_back(std::move(c));
    }
  }
  for (const auto& [prio, n] : cut)
    plan.notes.push_back(std::to_string(n) + " cases of priority " + std::to_string(prio) +
                         " skipped: they do not fit the time budget of " + std::to_string(int(o.budget_s)) + " s");
  // Run order: single-GPU cases (peaks first), then collectives grouped by GPU count.
  std::stable_sort(plan.run.begin(), plan.run.end(), [](const BenchCase& x, const BenchCase& y) {
    if (x.gpus != y.gpus) return x.gpus < y.gpus;
    const bool px = x.kind.rfind("peak", 0) == 0, py = y.kind.rfind("peak", 0) == 0;
    return px && !py;
  });
  plan.est_s = total;
  plan.repetitions = o.repetitions;
  return plan;
}

nlohmann::json ProfilePlan::to_json() const {
  auto cases = [](const std::vector<BenchCase>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const BenchCase& c : v)
      a.push_back({{"name", c.name}, {"kind", c.kind}, {"op", c.op}, {"model", c.model}, {"gpus", c.gpus},
                   {"priority", c.priority}, {"shape", c.shape}, {"flops", c.flops}, {"bytes", c.bytes},
                   {"comm_bytes", c.comm_bytes}, {"op_est_s", c.op_est_s}, {"est_s", c.est_s}});
    return a;
  };
  nlohmann::json m = nlohmann::json::array();
  for (const auto& s : models) m.push_back(s.name);
  return {{"budget_s", budget_s}, {"estimated_s", est_s}, {"repetitions", repetitions}, {"models", m},
          {"notes", notes},       {"run", cases(run)},    {"skipped", cases(skipped)}};
}

}  // namespace fdc::profile
