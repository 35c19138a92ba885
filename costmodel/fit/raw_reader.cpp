#include "costmodel/fit/raw_reader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include "core/config.h"
#include "core/error.h"
#include "core/text_file.h"
#include "costmodel/attention_dims.h"
#include "costmodel/fit/held_out.h"
#include "costmodel/fit/rank_counters.h"
#include "costmodel/fit/vidur_reader.h"
#include "costmodel/ops.h"
#include "costmodel/prefill_tiles.h"

namespace fdc::fit {
namespace {

constexpr double kElemBytes = 2.0;  // bf16 / fp16 throughout the profile

// A raw file, plain or gzip-compressed (raw folders may be stored compressed, docs/profile.md),
// with Google Benchmark's bare NaN / inf literals read as null (its aggregates of repeated cases
// carry them; the reader skips aggregates, and a null counter elsewhere is refused by name).
Json parse_file(const std::string& path) {
  return parse_json_text(nonfinite_literals_to_null(read_text_file(path)), path);
}

// The benchmark file a folder entry is, its ".gz" taken off ("ops.json.gz" -> "ops.json"), or ""
// when the entry is not one.
std::string benchmark_file_name(const std::filesystem::path& p) {
  std::string fn = p.filename().string();
  if (fn.size() > 3 && fn.compare(fn.size() - 3, 3, ".gz") == 0) fn.resize(fn.size() - 3);
  const bool json = fn.size() > 5 && fn.compare(fn.size() - 5, 5, ".json") == 0;
  if (fn == "ops.json" || fn == "attention.json" || (fn.rfind("comm-", 0) == 0 && fn.size() > 10 && json)) return fn;
  return "";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// Reads the fields of one benchmark entry, every error naming the file and the benchmark.
class Entry {
 public:
  Entry(const Json& j, std::string where) : j_(j), where_(std::move(where)) {}
  double counter(const char* key) const {
    const auto it = j_.find(key);
    FDC_INPUT_CHECK(it != j_.end(), where_ << ": missing counter '" << key << "'");
    FDC_INPUT_CHECK(it->is_number() && std::isfinite(it->get<double>()),
                    where_ << ": counter '" << key << "' must be a finite number, found " << it->dump());
    return it->get<double>();
  }
  bool has(const char* key) const { return j_.contains(key); }
  double positive(const char* key) const {
    const double v = counter(key);
    FDC_INPUT_CHECK(v > 0, where_ << ": counter '" << key << "' must be > 0, found " << v);
    return v;
  }
  double time_us() const {
    const double t = positive("real_time");
    const auto unit = j_.find("time_unit");
    FDC_INPUT_CHECK(unit != j_.end() && unit->is_string(), where_ << ": missing 'time_unit'");
    const std::string u = unit->get<std::string>();
    if (u == "ns") return t * 1e-3;
    if (u == "us") return t;
    if (u == "ms") return t * 1e3;
    if (u == "s") return t * 1e6;
    throw InputError(where_ + ": unknown time_unit '" + u + "' (expected ns, us, ms or s)");
  }
  const std::string& where() const { return where_; }

 private:
  const Json& j_;
  std::string where_;
};

std::string gpus_suffix(const Entry& e, const char* key) {
  const double g = e.positive(key);
  FDC_INPUT_CHECK(g >= 2 && g == std::floor(g), e.where() << ": counter '" << key << "' must be an integer >= 2");
  return std::to_string(static_cast<int>(g));
}

// Per-GPU buffer bytes of a Ulysses all-to-all, inverting the nccl-tests bus bandwidth the profile
// wrote (busbw = size / time x (g-1)/g).
double ulysses_buffer_bytes(const Entry& e, const char* busbw_key, double a2a_us, double g) {
  return e.positive(busbw_key) * 1e9 * a2a_us * 1e-6 * g / (g - 1.0);
}

void add_ulysses(const Entry& e, const std::string& base, RawProfile& out) {
  const double g = e.positive("sp");
  const std::string sp = "/sp" + gpus_suffix(e, "sp");
  const double a2a_qkv = e.positive("a2a_qkv_us"), a2a_out = e.positive("a2a_out_us");
  const double qkv = ulysses_buffer_bytes(e, "busbw_qkv_GB/s", a2a_qkv, g);
  const double outb = ulysses_buffer_bytes(e, "busbw_out_GB/s", a2a_out, g);
  // Pack and unpack read and write their buffer once; the all-to-alls are sized as nccl-tests does.
  const struct {
    const char* stage;
    double us, bytes;
  } stages[] = {{"pack", e.positive("pack_us"), 2 * qkv},
                {"unpack_qkv", e.positive("unpack_qkv_us"), 2 * qkv},
                {"unpack_out", e.positive("unpack_out_us"), 2 * outb},
                {"a2a_qkv", a2a_qkv, qkv},
                {"a2a_out", a2a_out, outb}};
  for (const auto& s : stages)
    out.samples.push_back(
        Sample{std::string("ulysses/") + s.stage + sp, base, s.us, s.bytes, 0, 0, 0, 0, std::nullopt, ""});
}

// The largest rank of the benchmark's mixed per-head table (bench/ops/attention_grid.h: 32..128),
// for raw files written before the profile recorded `max_rank`.
constexpr double kMixedTableMaxRank = 128;

// Whether the case runs the benchmark's mixed per-head rank table (counter `ranks_mixed`).
bool ranks_mixed(const Entry& e) { return e.has("ranks_mixed") && e.counter("ranks_mixed") > 0; }

// Prefill: the kernel's padded tile work of the case (costmodel/prefill_tiles.h). The profile's
// prefill batches are num_seqs equal chunks of tokens / num_seqs new tokens after ctx_mean cached
// ones; the longest chunk sees ctx_max cached tokens. And the GPU's SM count, for the makespan.
void add_prefill_tiles(const Entry& e, AttnFeatures& a, const RawProfile& out) {
  if (out.decode_plan) a.num_sms = out.decode_plan->num_sms;
  const bool mixed = ranks_mixed(e);
  a.max_rank = e.has("max_rank") ? e.positive("max_rank") : mixed ? kMixedTableMaxRank : std::max(a.rank_qk, a.rank_v);
  const auto seqs = static_cast<int64_t>(std::llround(a.num_seqs));
  const auto chunk = static_cast<int64_t>(std::llround(a.tokens / a.num_seqs));
  FDC_INPUT_CHECK(seqs >= 1 && chunk * seqs == static_cast<int64_t>(std::llround(a.tokens)),
                  e.where() << ": prefill counters 'tokens' " << a.tokens << " and 'num_seqs' " << a.num_seqs
                            << " must be whole, equal chunks per sequence");
  costmodel::PrefillTileCounts n;
  for (int64_t i = 0; i < seqs; ++i) n.add(chunk, static_cast<int64_t>(std::llround(a.ctx_mean)));
  n.keys_max = static_cast<int64_t>(std::llround(a.keys_max));
  const costmodel::PrefillTileWork w = costmodel::prefill_tile_work(n, static_cast<int64_t>(std::llround(a.q_heads)),
                                                                    static_cast<int>(std::ceil(a.max_rank - 1e-9)));
  a.padded_flops = w.padded_flops, a.block_elems = w.block_elems, a.longest_block_flops = w.longest_block_flops;
}

}  // namespace

std::vector<std::array<int, 4>> attention_case_ranks(const AttnFeatures& a, bool mixed) {
  if (!a.head_ranks.empty()) return a.head_ranks;
  const bool lo = a.lo_fraction > 0;
  auto low = [&](int x) { return lo ? costmodel::lo_class_rank(x, a.lo_rank_share) : x; };
  std::vector<std::array<int, 4>> r;
  for (int h = 0; h < static_cast<int>(std::llround(a.kv_heads)); ++h) {
    if (mixed) {
      const int rk = 32 + 16 * ((h * 5) % 7), rv = 32 + 16 * ((h * 3 + 2) % 7);
      r.push_back({rk, rv, low(rk), low(rv)});
    } else {
      const auto rk = static_cast<int>(std::llround(a.rank_qk)), rv = static_cast<int>(std::llround(a.rank_v));
      r.push_back({rk, rv, lo ? static_cast<int>(std::llround(a.rank_qk_lo)) : rk,
                   lo ? static_cast<int>(std::llround(a.rank_v_lo)) : rv});
    }
  }
  return r;
}

namespace {

// Decode: K/V bytes as the CUDA-core kernel stages them (bf16/fp16 rows, 2 bytes an element), for
// the cases of either kernel. Every sequence's cached keys split into lo = lo_fraction x ctx and hi =
// the rest plus the step's new token (bench/ops/attention_grid.h decode_classes), so over the batch:
// lo_fraction x the cached keys, and the rest plus one per sequence.
//
// On the tensor cores (`tensor_cores`), a launch of units all in width class 48 or 96 runs a kernel
// of that width, which stages them at exactly 48 or 96 (costmodel::decode_mma_one_width): the case's
// counter `mma_width` says which kernel ran (written since 2026-12-05, afternoon); without it, the
// rule of today's kernels when the folder was measured with them (`mma_one_width`, from its
// provenance date), else the general kernel's widths.
void add_decode_stage_bytes(const Entry& e, AttnFeatures& a, bool tensor_cores, bool mma_one_width) {
  const bool mixed = ranks_mixed(e);
  const double cached = a.ctx_mean * a.num_seqs;
  const double lo_keys = a.lo_fraction * cached, hi_keys = cached - lo_keys + a.num_seqs;
  const auto ranks = attention_case_ranks(a, mixed);
  int one_width = 0;
  if (tensor_cores && e.has("mma_width")) {
    const double w = e.counter("mma_width");
    FDC_INPUT_CHECK(w == 0 || w == 48 || w == 96,
                    e.where() << ": counter 'mma_width' must be 0 (the general kernel), 48 or 96, found " << w);
    one_width = static_cast<int>(w);
  } else if (tensor_cores && mma_one_width) {
    std::vector<costmodel::KvHeadDims> heads;
    for (const auto& r : ranks) heads.push_back({r[0], r[1], r[2], r[3]});
    one_width = costmodel::decode_mma_one_width(heads);
  }
  auto width = [&](int rank) { return one_width > 0 ? one_width : costmodel::decode_stage_width(rank); };
  double per_hi = 0, per_lo = 0;  // staged elements per key, summed over the KV heads
  for (const auto& r : ranks) {
    per_hi += 2 * width(std::max(r[0], r[1]));
    per_lo += 2 * width(std::max(r[2], r[3]));
  }
  a.stage_bytes = 2.0 * (hi_keys * per_hi + lo_keys * per_lo);
}

// Decode: the plan's units (costmodel/decode_units.h) from the case's sequences, mean and longest
// keys, the lo share of its keys and its per-head bytes per token, as the simulator estimates them;
// the naive plan has one unit per (sequence, KV head, class). The exact count, when the benchmark
// wrote it, is kept beside the estimate.
void add_decode_units(const Entry& e, AttnFeatures& a, const RawProfile& out) {
  if (e.has("units")) a.units_exact = e.positive("units");
  if (!out.decode_plan) {  // the SM count is unknown: fit_profile refuses the term for this case
    a.units = -1;
    return;
  }
  std::vector<costmodel::DecodeHeadBytes> heads;
  for (const auto& r : attention_case_ranks(a, ranks_mixed(e)))
    heads.push_back({static_cast<int64_t>(r[0] + r[1]) * 2, static_cast<int64_t>(r[2] + r[3]) * 2});
  const double cached = a.ctx_mean * a.num_seqs, keys = cached + a.tokens;
  const double lo_share = keys > 0 ? a.lo_fraction * cached / keys : 0.0;
  if (a.balanced > 0) {
    a.units = costmodel::estimate_decode_units(a.num_seqs, a.keys_mean, a.keys_max, lo_share, heads, *out.decode_plan)
                  .total();
  } else {
    a.units = a.num_seqs * a.kv_heads * (a.lo_fraction > 0 ? 2.0 : 1.0);
  }
}

// A rank table's per-head counters (rank_counters.h): whole ranks in [1, head_dim], lo <= hi, and
// the table's mean ranks as its `rank_qk` ... `rank_v_lo` say.
void read_rank_table(const Entry& e, AttnFeatures& a) {
  const double kv = a.kv_heads;
  FDC_INPUT_CHECK(kv == std::round(kv) && kv <= 4096,
                  e.where() << ": counter 'kv_heads' must be a whole number of heads, found " << kv);
  double sum[4] = {0, 0, 0, 0};
  for (int h = 0; h < static_cast<int>(kv); ++h) {
    std::array<int, 4> r{};
    for (int f = 0; f < 4; ++f) {
      const std::string key = head_rank_counter(h, f);
      FDC_INPUT_CHECK(e.has(key.c_str()), e.where() << ": a rank-table case (counter 'rank_table') needs counter '"
                                                    << key << "' for each of its " << kv << " KV heads");
      const double v = e.counter(key.c_str());
      FDC_INPUT_CHECK(v == std::round(v) && v >= 1 && v <= a.head_dim,
                      e.where() << ": counter '" << key << "' must be a whole rank in [1, head_dim " << a.head_dim
                                << "], found " << v);
      r[static_cast<size_t>(f)] = static_cast<int>(v);
      sum[f] += v;
    }
    FDC_INPUT_CHECK(r[2] <= r[0] && r[3] <= r[1], e.where() << ": KV head " << h << " keeps more dims for lo tokens ("
                                                            << r[2] << ", " << r[3] << ") than for hi tokens (" << r[0]
                                                            << ", " << r[1] << ")");
    a.head_ranks.push_back(r);
  }
  const double mean[4] = {a.rank_qk, a.rank_v, a.rank_qk_lo, a.rank_v_lo};
  for (int f = 0; f < 4; ++f)
    FDC_INPUT_CHECK(std::abs(sum[f] / kv - mean[f]) <= 1e-6 * std::max(1.0, mean[f]),
                    e.where() << ": the rank table's mean " << kHeadRankFields[static_cast<size_t>(f)] << " is "
                              << sum[f] / kv << " but its counter says " << mean[f]);
}

// Attention: the agreed counters of the attention benchmarks (docs/fit.md).
void add_attention(const Entry& e, const std::string& kind, RawProfile& out) {
  Sample s;
  s.where = e.where();
  s.group = kind;
  if (kind == "attn_decode" && e.has("kernel")) {
    // The decode kernel the case ran (fdcsim profile writes it since 2026-12-04; before, every case
    // ran on the CUDA cores): the tensor-core kernel's cases are their own op.
    const double kernel = e.counter("kernel");
    FDC_INPUT_CHECK(kernel == 1 || kernel == 2,
                    e.where() << ": counter 'kernel' must be 1 (CUDA cores) or 2 (tensor cores), found " << kernel);
    if (kernel == 2) s.group = "attn_decode/tensor_cores";
  }
  s.time_us = e.time_us();
  s.bytes = e.positive("bytes");
  s.flops = e.positive("flops");
  AttnFeatures a;
  a.num_seqs = e.positive("num_seqs");
  a.tokens = e.positive("tokens");
  a.ctx_mean = e.counter("ctx_mean"), a.ctx_max = e.counter("ctx_max"), a.ctx_cv = e.counter("ctx_cv");
  FDC_INPUT_CHECK(a.ctx_mean >= 0 && a.ctx_max >= a.ctx_mean * (1 - 1e-9) && a.ctx_cv >= 0,
                  e.where() << ": expected 0 <= ctx_mean <= ctx_max and ctx_cv >= 0, found ctx_mean " << a.ctx_mean
                            << ", ctx_max " << a.ctx_max << ", ctx_cv " << a.ctx_cv);
  const double per_seq_new = a.tokens / a.num_seqs;
  a.keys_mean = a.ctx_mean + per_seq_new, a.keys_max = std::max(a.ctx_max, a.ctx_mean) + per_seq_new;
  a.rank_qk = e.positive("rank_qk"), a.rank_v = e.positive("rank_v");
  a.rank_qk_lo = e.counter("rank_qk_lo"), a.rank_v_lo = e.counter("rank_v_lo");
  a.lo_fraction = e.counter("lo_fraction");
  FDC_INPUT_CHECK(a.lo_fraction >= 0 && a.lo_fraction <= 1,
                  e.where() << ": counter 'lo_fraction' must be in [0, 1], found " << a.lo_fraction);
  if (e.has("lo_rank_share")) {
    a.lo_rank_share = e.counter("lo_rank_share");
    FDC_INPUT_CHECK(a.lo_rank_share > 0 && a.lo_rank_share <= 1,
                    e.where() << ": counter 'lo_rank_share' must be in (0, 1], found " << a.lo_rank_share);
  }
  if (e.has("slots_hi") || e.has("slots_lo")) {
    // Shared pages: both classes' slots, each at least one (a page of only one class is no shared page).
    a.slots_hi = e.counter("slots_hi"), a.slots_lo = e.counter("slots_lo");
    FDC_INPUT_CHECK(a.slots_hi >= 1 && a.slots_lo >= 1 && a.lo_fraction > 0,
                    e.where() << ": counters 'slots_hi' and 'slots_lo' (shared pages) must both be at least 1, "
                                 "with lo_fraction > 0; found slots_hi "
                              << a.slots_hi << ", slots_lo " << a.slots_lo << ", lo_fraction " << a.lo_fraction);
    // Token classes on shared pages are their own op: the engine's layout, which the simulator
    // prices as one launch over both classes (costmodel/forward_pass.h).
    if (kind == "attn_decode") s.group = "attn_decode/shared_pages";
  }
  a.group = e.positive("group"), a.q_heads = e.positive("q_heads"), a.kv_heads = e.positive("kv_heads");
  a.head_dim = e.positive("head_dim");
  if (e.has(kRankTableCounter.data()) && e.counter(kRankTableCounter.data()) > 0) read_rank_table(e, a);
  if (kind == "attn_decode") {
    a.balanced = e.counter("balanced");
    FDC_INPUT_CHECK(a.balanced == 0 || a.balanced == 1,
                    e.where() << ": counter 'balanced' must be 1 or 0, found " << a.balanced);
    add_decode_stage_bytes(e, a, s.group == "attn_decode/tensor_cores", out.mma_one_width);
    add_decode_units(e, a, out);
  } else {
    add_prefill_tiles(e, a, out);
  }
  s.attn = a;
  out.samples.push_back(std::move(s));
}

// Turns one successful benchmark entry into samples (or peaks).
void add_entry(const Entry& e, const std::string& name, RawProfile& out) {
  const std::vector<std::string> p = split(name, '/');
  const std::string& kind = p[0];
  Sample s;
  s.where = e.where();
  if (kind == "peak") {
    if (p.size() > 1 && p[1] == "gemm_bf16") out.peak_tflops = e.positive("peak_TFLOP/s");
    if (p.size() > 1 && p[1] == "device_copy") out.peak_gbps = e.positive("peak_GB/s");
    return;
  }
  if (kind == "ulysses") return add_ulysses(e, e.where(), out);
  if (kind == "attn_prefill" || kind == "attn_decode") return add_attention(e, kind, out);
  s.time_us = e.time_us();
  if (kind == "gemm") {
    const auto lib = std::find_if(p.begin(), p.end(), [](const std::string& x) { return x.rfind("cublas", 0) == 0; });
    FDC_INPUT_CHECK(p.size() > 2 && lib != p.end(), e.where() << ": a GEMM name needs gemm/<op>/.../{cublaslt,cublas}");
    s.group = "gemm/" + p[1] + "/" + *lib;
    s.m = e.positive("m"), s.n = e.positive("n"), s.k = e.positive("k");
    const costmodel::OpWork w = costmodel::gemm_work(s.m, s.n, s.k, kElemBytes);
    s.flops = w.flops, s.bytes = w.bytes;
  } else if (kind == "rope_rotate") {
    const bool rope_only = std::find(p.begin(), p.end(), "rope_only") != p.end();
    s.group = rope_only ? "rope_rotate/rope_only" : "rope_rotate/rotate";
    const double heads = e.positive("q_heads") + e.positive("kv_heads"), d = e.positive("head_dim"),
                 r = e.positive("rank");
    const costmodel::OpWork w = costmodel::rope_rotate_work(e.positive("tokens"), heads * d, heads * r,
                                                            r < d ? heads * d * r : 0.0, kElemBytes);
    s.flops = w.flops, s.bytes = w.bytes;
  } else if (kind == "norm" || kind == "mlp_act" || kind == "residual") {
    FDC_INPUT_CHECK(kind == "residual" || p.size() > 2, e.where() << ": expected " << kind << "/<variant>/...");
    s.group = kind == "residual" ? kind : kind + "/" + p[1];
    costmodel::OpWork w;
    if (kind == "norm") {
      const double elems = e.positive("rows") * e.positive("dim");
      w = costmodel::elementwise_work(elems, elems, kElemBytes, 4.0);
    } else if (kind == "residual") {
      const double count = e.positive("count");
      w = costmodel::elementwise_work(2 * count, count, kElemBytes);
    } else {
      const double elems = e.positive("rows") * e.positive("ffn");
      w = e.counter("gated") != 0 ? costmodel::elementwise_work(2 * elems, elems, kElemBytes, 4.0)
                                  : costmodel::elementwise_work(elems, elems, kElemBytes);
    }
    s.flops = w.flops, s.bytes = w.bytes;
  } else if (kind == "kv_append") {
    s.group = kind;  // kv_dims: elements per row over the KV heads (sum of r_qk + r_v)
    const costmodel::OpWork w = costmodel::kv_append_work(e.positive("tokens"), e.positive("kv_dims"), kElemBytes);
    s.bytes = w.bytes;
    s.flops = e.positive("tokens") * e.positive("kv_heads");  // its work items: (token, KV head) pairs
  } else if (kind == "kv_classify") {
    s.group = kind;  // tail_dims: the dims a lo row drops, over the KV heads (0 when lo ranks equal hi)
    const double tail = e.counter("tail_dims");
    FDC_INPUT_CHECK(tail >= 0, e.where() << ": counter 'tail_dims' must be >= 0, found " << tail);
    const costmodel::OpWork w = costmodel::kv_classify_work(e.positive("tokens"), tail, kElemBytes);
    s.flops = w.flops, s.bytes = w.bytes;
  } else if (kind == "all_to_all" || kind == "all_reduce" || kind == "all_gather") {
    s.group = kind + "/g" + gpus_suffix(e, "gpus");
    s.bytes = e.positive("bytes");
    FDC_INPUT_CHECK(e.counter("errors") == 0, e.where() << ": the case reported output mismatches (errors counter)");
  } else if (kind == "iteration_overhead") {
    s.group = kind;  // a constant per forward pass: scheduling, sampling, launch gaps
  } else {
    throw InputError(e.where() + ": unknown benchmark kind '" + kind + "'");
  }
  out.samples.push_back(std::move(s));
}

// The case name of a benchmark: its name up to Google Benchmark's run options, which follow the
// run's time budget (the iterations), not the case.
std::string case_name(const std::string& name) {
  size_t end = name.size();
  for (const char* tail : {"/min_time:", "/min_warmup_time:", "/iterations:", "/repeats:", "/threads:", "/manual_time",
                           "/real_time", "/process_time"})
    end = std::min(end, name.find(tail));
  return name.substr(0, end);
}

// What a later folder's case replaces: the case of the same name; for a peak case the peak itself
// (peak/gemm_bf16, peak/device_copy), whatever size it was measured at.
std::string replacement_key(const std::string& name) {
  const std::vector<std::string> p = split(name, '/');
  return p[0] == "peak" && p.size() > 1 ? p[0] + "/" + p[1] : name;
}

// read_raw_benchmark_file, counting the measured cases of the file by replacement key in `measured`
// (when given).
void read_benchmark_file(const std::string& path, RawProfile& out, RawSource& source,
                         std::map<std::string, int>* measured) {
  const Json doc = parse_file(path);
  FDC_INPUT_CHECK(doc.is_object() && doc.contains("benchmarks") && doc["benchmarks"].is_array(),
                  path << ": expected a Google Benchmark JSON object with a 'benchmarks' array");
  // Entries in file order, the repetitions of one case (the same name; Google Benchmark's
  // `repetitions` > 1, or the counter `fdc_repeats` > 1 of the multi-GPU cases, interleaved with
  // other cases) gathered at its first one;
  // the aggregates Google Benchmark adds (mean, median, stddev, cv) are skipped: the median is
  // taken here over the samples each repetition gives.
  std::vector<std::vector<const Json*>> cases;
  std::map<std::string, size_t> repeated;  // name -> index in `cases`
  for (size_t i = 0; i < doc["benchmarks"].size(); ++i) {
    const Json& b = doc["benchmarks"][i];
    FDC_INPUT_CHECK(b.is_object() && b.contains("name") && b["name"].is_string(),
                    path << ": benchmarks[" << i << "] has no 'name'");
    if (b.contains("run_type") && b["run_type"] == "aggregate") continue;
    const std::string name = b["name"].get<std::string>();
    // Google Benchmark's repetitions, or the registrations of a multi-GPU case `fdcsim profile`
    // interleaves itself (counter fdc_repeats).
    auto above_one = [&b](const char* key) {
      return b.contains(key) && b[key].is_number() && b[key].get<double>() > 1;
    };
    const bool repetition = above_one("repetitions") || above_one("fdc_repeats");
    if (repetition) {
      auto [it, fresh] = repeated.emplace(name, cases.size());
      if (!fresh) {
        cases[it->second].push_back(&b);
        continue;
      }
    }
    cases.push_back({&b});
  }
  for (const std::vector<const Json*>& runs : cases) {
    const std::string name = (*runs[0])["name"].get<std::string>();
    const std::string where = path + ": benchmark '" + name + "'";
    std::vector<const Json*> ok;
    for (const Json* b : runs)
      if (!b->value("error_occurred", false)) ok.push_back(b);
    if (ok.empty()) {
      ++source.excluded;
      continue;
    }
    const size_t first = out.samples.size();
    if (ok.size() == 1) {
      add_entry(Entry(*ok[0], where), name, out);
    } else {
      // Every repetition's samples, then per sample the median time; the peaks likewise.
      std::vector<double> tflops, gbps;
      size_t per = 0;
      for (size_t r = 0; r < ok.size(); ++r) {
        const size_t before = out.samples.size();
        add_entry(Entry(*ok[r], where + " (repetition " + std::to_string(r + 1) + ")"), name, out);
        const size_t got = out.samples.size() - before;
        FDC_INPUT_CHECK(r == 0 || got == per, where << ": its repetitions give different samples");
        per = got;
        tflops.push_back(out.peak_tflops), gbps.push_back(out.peak_gbps);
      }
      auto median = [](const std::vector<double>& v) { return percentile(v, 0.5); };
      out.peak_tflops = median(tflops), out.peak_gbps = median(gbps);
      const int reps = static_cast<int>(ok.size());
      for (size_t k = 0; k < per; ++k) {
        std::vector<double> t;
        for (int r = 0; r < reps; ++r) t.push_back(out.samples[first + r * per + k].time_us);
        Sample& s = out.samples[first + k];
        s.time_us = median(t);
        s.repeats = reps;
        s.repeat_spread = (*std::max_element(t.begin(), t.end()) - *std::min_element(t.begin(), t.end())) / s.time_us;
        s.where = where + " (median of " + std::to_string(reps) + " repetitions)";
      }
      out.samples.resize(first + per);
    }
    const std::string cn = case_name(name);
    for (size_t k = first; k < out.samples.size(); ++k) out.samples[k].case_name = cn;
    if (measured) ++(*measured)[replacement_key(cn)];
    ++source.used;
  }
}

}  // namespace

void read_raw_benchmark_file(const std::string& path, RawProfile& out, RawSource& source) {
  read_benchmark_file(path, out, source, nullptr);
}

namespace {

bool is_csv(const std::filesystem::path& p) { return p.extension() == ".csv"; }

void read_vidur_input(const std::string& input, const std::vector<std::string>& files, RawProfile& out) {
  RawSource src;
  src.folder = input;
  src.provenance = {{"format", "Vidur profiling CSV (times in ms, median columns)"}, {"files", files}};
  for (const std::string& f : files) read_vidur_csv(f, out, src);
  out.sources.push_back(std::move(src));
}

// Vidur CSVs carry no peak cases: the GEMM roofline then takes the highest rates the inputs show
// (FLOP/s over the GEMMs; bytes/s over the element-wise ops, else the GEMMs), so efficiencies read
// as a share of the best measured case.
void peaks_from_samples(RawProfile& out) {
  if (out.peak_tflops > 0 && out.peak_gbps > 0) return;
  double flops = 0, gemm_bw = 0, elem_bw = 0;
  for (const Sample& s : out.samples) {
    if (s.m > 0) {
      flops = std::max(flops, s.flops / s.time_us * 1e-6);
      gemm_bw = std::max(gemm_bw, s.bytes / s.time_us * 1e-3);
    } else if (s.flops > 0 && !s.attn) {
      elem_bw = std::max(elem_bw, s.bytes / s.time_us * 1e-3);
    }
  }
  if (flops == 0) return;
  if (out.peak_tflops == 0) out.peak_tflops = flops;
  if (out.peak_gbps == 0) out.peak_gbps = elem_bw > 0 ? elem_bw : gemm_bw;
  out.peaks_source = "the highest rates in the inputs (no peak/gemm_bf16 or peak/device_copy case)";
}

}  // namespace

RawProfile read_raw_profiles(const std::vector<std::string>& inputs, const std::string& gpu_name,
                             const std::vector<std::string>& whole_op_inputs) {
  FDC_INPUT_CHECK(!inputs.empty(), "fit: no raw profile folder or Vidur CSV given");
  namespace fs = std::filesystem;
  const auto same_path = [](const std::string& a, const std::string& b) {
    auto norm = [](const std::string& x) {
      std::string n = fs::path(x).lexically_normal().string();
      while (n.size() > 1 && n.back() == '/') n.pop_back();
      return n;
    };
    return norm(a) == norm(b);
  };
  const auto whole_ops = [&](const std::string& input) {
    return std::any_of(whole_op_inputs.begin(), whole_op_inputs.end(),
                       [&](const std::string& w) { return same_path(w, input); });
  };
  for (const std::string& w : whole_op_inputs)
    FDC_INPUT_CHECK(std::any_of(inputs.begin(), inputs.end(), [&](const std::string& i) { return same_path(w, i); }),
                    "fit --whole-ops-from " << w << ": not one of the raw inputs (give the folder as an input too)");
  RawProfile out;
  // Cases measured in more than one raw folder: the folder given last stands. `holder`: per
  // replacement key, the folder whose cases of it stand (its index in out.sources) and how many;
  // `dropped`: (folder, case name) of the samples replaced; `sample_source`: the folder of each sample.
  std::map<std::string, std::pair<size_t, int>> holder;
  std::set<std::pair<size_t, std::string>> dropped;
  std::vector<size_t> sample_source;
  std::map<std::string, std::string> group_of_case;  // a raw folder's case name -> its op (Sample::group)
  std::string peak_folder[2];  // the folder of peak/gemm_bf16 and of peak/device_copy
  bool peak_replaced = false;
  for (const std::string& input : inputs) {
    if (fs::is_regular_file(input)) {
      FDC_INPUT_CHECK(is_csv(input), input << ": expected a raw profile folder or a Vidur profiling CSV (.csv)");
      FDC_INPUT_CHECK(!whole_ops(input), "fit --whole-ops-from " << input << ": a Vidur CSV, not a raw profile folder");
      read_vidur_input(input, {input}, out);
      sample_source.resize(out.samples.size(), out.sources.size() - 1);
      continue;
    }
    FDC_INPUT_CHECK(fs::is_directory(input),
                    input << ": not a folder or file (expected a raw profile folder or a Vidur profiling CSV)");
    const std::string& folder = input;
    if (!fs::exists(fs::path(folder) / "provenance.json")) {
      FDC_INPUT_CHECK(!whole_ops(folder),
                      "fit --whole-ops-from " << folder << ": no provenance.json (not a raw profile folder)");
      std::vector<std::string> csvs;
      for (const auto& f : fs::directory_iterator(folder))
        if (f.is_regular_file() && is_csv(f.path()) && vidur_csv_kind(f.path().string()) != VidurCsvKind::kNone)
          csvs.push_back(f.path().string());
      std::sort(csvs.begin(), csvs.end());
      FDC_INPUT_CHECK(!csvs.empty(),
                      folder << ": no provenance.json (a raw profile folder) and no Vidur profiling CSV");
      read_vidur_input(folder, csvs, out);
      sample_source.resize(out.samples.size(), out.sources.size() - 1);
      continue;
    }
    RawSource src;
    src.folder = folder;
    src.provenance = parse_file((fs::path(folder) / "provenance.json").string());
    const Json& gpus = src.provenance.value("gpus", Json::array());
    FDC_INPUT_CHECK(gpus.is_array() && !gpus.empty() && gpus[0].contains("name") && gpus[0]["name"].is_string(),
                    folder << "/provenance.json: expected 'gpus' with a 'name'");
    const std::string gpu = gpus[0]["name"].get<std::string>();
    FDC_INPUT_CHECK(out.gpu_name.empty() || out.gpu_name == gpu,
                    folder << ": GPU '" << gpu << "' differs from '" << out.gpu_name << "' of the other folders");
    out.gpu_name = gpu;
    // The SM count sets the decode plan's units: this folder's decode cases need it, other ops do not.
    const std::optional<costmodel::DecodePlanConstants> all_plan = out.decode_plan;
    out.decode_plan.reset();
    if (gpus[0].contains("sms")) {
      const Json& sms = gpus[0]["sms"];
      FDC_INPUT_CHECK(sms.is_number_integer() && sms.get<int>() > 0,
                      folder << "/provenance.json: gpus[0].sms must be a positive integer, found " << sms.dump());
      out.decode_plan = costmodel::cuda_core_decode_plan(sms.get<int>());
      FDC_INPUT_CHECK(!all_plan || *all_plan == *out.decode_plan,
                      folder << "/provenance.json: " << out.decode_plan->num_sms << " SMs, but "
                             << out.decode_plan_source << " says " << all_plan->num_sms);
    }
    // Measured before the tensor-core kernels of one width existed: the general kernel ran.
    const Json& date = src.provenance.value("date_utc", Json());
    out.mma_one_width = !date.is_string() || date.get<std::string>() >= kMmaOneWidthSince;
    std::map<std::string, std::string> by_name;  // "ops.json" -> the file read for it
    for (const auto& f : fs::directory_iterator(folder)) {
      const std::string fn = benchmark_file_name(f.path());
      if (fn.empty()) continue;
      const auto [it, fresh] = by_name.emplace(fn, f.path().string());
      FDC_INPUT_CHECK(fresh, folder << ": both " << it->second << " and " << f.path().string()
                                    << " (one benchmark file stored plain and compressed); keep one");
    }
    std::vector<std::string> files;  // in the order of their names, whether stored plain or not
    for (const auto& [name, path] : by_name) files.push_back(path);
    FDC_INPUT_CHECK(!files.empty(), folder << ": no ops.json, attention.json or comm-<n>gpu.json (plain or .gz)");
    std::map<std::string, int> measured;
    const size_t first_sample = out.samples.size();
    const double peak_tflops = out.peak_tflops, peak_gbps = out.peak_gbps;
    for (const std::string& f : files) read_benchmark_file(f, out, src, &measured);
    const size_t index = out.sources.size();
    if (whole_ops(folder)) {
      src.whole_ops = true;
      // Its peaks are not taken: the earlier ones stand, and its peak cases replace nothing.
      out.peak_tflops = peak_tflops, out.peak_gbps = peak_gbps;
      for (auto it = measured.begin(); it != measured.end();) {
        if (it->first.rfind("peak/", 0) == 0) {
          src.used -= it->second, src.peaks_not_taken += it->second;
          it = measured.erase(it);
        } else {
          ++it;
        }
      }
      // Every earlier case of the ops it measured is dropped; the same cases are replaced below.
      std::set<std::string> ops;
      for (size_t k = first_sample; k < out.samples.size(); ++k) ops.insert(out.samples[k].group);
      for (auto it = holder.begin(); it != holder.end();) {
        const auto op = group_of_case.find(it->first);
        if (!measured.count(it->first) && op != group_of_case.end() && ops.count(op->second)) {
          RawSource& earlier = out.sources[it->second.first];
          earlier.used -= it->second.second, earlier.replaced += it->second.second;
          dropped.emplace(it->second.first, it->first);
          it = holder.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (size_t k = first_sample; k < out.samples.size(); ++k)
      if (!out.samples[k].case_name.empty()) group_of_case.emplace(out.samples[k].case_name, out.samples[k].group);
    for (const auto& [key, cases] : measured) {
      const auto it = holder.find(key);
      if (it != holder.end()) {  // measured again here: the earlier folder's cases of it are replaced
        RawSource& earlier = out.sources[it->second.first];
        earlier.used -= it->second.second, earlier.replaced += it->second.second;
        dropped.emplace(it->second.first, key);
        peak_replaced = peak_replaced || key.rfind("peak/", 0) == 0;
      }
      holder[key] = {index, cases};
    }
    if (measured.count("peak/gemm_bf16")) peak_folder[0] = folder;
    if (measured.count("peak/device_copy")) peak_folder[1] = folder;
    sample_source.resize(out.samples.size(), index);
    if (out.decode_plan) {
      out.decode_plan_source = folder + "/provenance.json";
    } else {
      out.decode_plan = all_plan;
    }
    out.sources.push_back(std::move(src));
  }
  if (!gpu_name.empty()) {
    FDC_INPUT_CHECK(out.gpu_name.empty() || out.gpu_name == gpu_name,
                    "fit: --gpu '" << gpu_name << "' differs from '" << out.gpu_name << "' of the raw folders");
    out.gpu_name = gpu_name;
  }
  if (out.gpu_name.empty()) out.gpu_name = "unknown GPU (Vidur CSVs name none; pass --gpu)";
  if (!dropped.empty()) {
    std::vector<Sample> kept;
    for (size_t k = 0; k < out.samples.size(); ++k)
      if (out.samples[k].case_name.empty() || !dropped.count({sample_source[k], out.samples[k].case_name}))
        kept.push_back(std::move(out.samples[k]));
    out.samples = std::move(kept);
  }
  // The peaks name their folder when more than one folder had them, or each came from another.
  if (peak_replaced || (!peak_folder[0].empty() && !peak_folder[1].empty() && peak_folder[0] != peak_folder[1])) {
    out.peaks_source = peak_folder[0] == peak_folder[1]
                           ? "peak/gemm_bf16 and peak/device_copy of " + peak_folder[0]
                           : "peak/gemm_bf16 of " + (peak_folder[0].empty() ? "no folder" : peak_folder[0]) +
                                 " and peak/device_copy of " + (peak_folder[1].empty() ? "no folder" : peak_folder[1]);
  }
  peaks_from_samples(out);
  return out;
}

}  // namespace fdc::fit
