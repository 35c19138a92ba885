#include "validate/layer_check.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>

#include "configs/embedded_configs.h"
#include "core/error.h"
#include "costmodel/fit/held_out.h"

namespace fdc::validate {
namespace {

constexpr const char* kPartSyntax = "prefill:BxN, prefill:BxN@C or decode:BxC";

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const auto at = s.find(sep, start);
    out.push_back(trim(s.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// A non-negative decimal integer that fits an int32, or nothing.
bool parse_count(const std::string& s, int32_t& v) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

BatchPart parse_part(const std::string& part, const std::string& item) {
  auto fail = [&](const std::string& what) -> BatchPart {
    throw InputError("--batches: item '" + item + "': " + what);
  };
  const auto colon = part.find(':');
  if (colon == std::string::npos) return fail("part '" + part + "' has no kind; expected " + std::string(kPartSyntax));
  const std::string kind = part.substr(0, colon), shape = part.substr(colon + 1);
  BatchPart p;
  if (kind == "prefill") {
    p.kind = PartKind::kPrefill;
  } else if (kind == "decode") {
    p.kind = PartKind::kDecode;
  } else {
    return fail("unknown kind '" + kind + "' in part '" + part + "'; expected " + std::string(kPartSyntax));
  }
  const std::string form = p.kind == PartKind::kPrefill ? "prefill:BxN[@C]" : "decode:BxC";
  const auto x = shape.find('x');
  if (x == std::string::npos)
    return fail("part '" + part + "': expected " + form + " (B sequences 'x' tokens), found no 'x'");
  const std::string b = shape.substr(0, x);
  std::string n = shape.substr(x + 1), c;
  const bool cached = n.find('@') != std::string::npos;
  if (const auto at = n.find('@'); cached) {
    if (p.kind == PartKind::kDecode)
      return fail("part '" + part +
                  "': '@' (cached tokens of a prefill chunk) is for prefill parts; decode:BxC "
                  "already gives the cached tokens C");
    c = n.substr(at + 1);
    n = n.substr(0, at);
  }
  int32_t seqs = 0, tokens = 0, context = 0;
  if (!parse_count(b, seqs) || seqs < 1)
    return fail("part '" + part + "': expected " + form + " with B a whole number >= 1, found '" + b + "'");
  if (p.kind == PartKind::kPrefill) {
    if (!parse_count(n, tokens) || tokens < 2)
      return fail("part '" + part + "': expected " + form +
                  " with N a whole number >= 2 (tokens per prompt; a "
                  "one-token step is decode:BxC), found '" +
                  n + "'");
    if (cached && !parse_count(c, context))
      return fail("part '" + part + "': expected " + form + " with C a whole number >= 0 (cached tokens), found '" + c +
                  "'");
    p.new_tokens = tokens;
    p.context = context;
  } else {
    if (!parse_count(n, context) || context < 1)
      return fail("part '" + part + "': expected " + form +
                  " with C a whole number >= 1 (cached tokens per "
                  "sequence), found '" +
                  n + "'");
    p.new_tokens = 1;
    p.context = context;
  }
  p.seqs = seqs;
  return p;
}

double median_of(const std::vector<double>& v) { return v.empty() ? 0.0 : fit::percentile(v, 0.5); }

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

// Resolved configs of earlier versions named a profile read from a file by the file's stem, which
// does not load again; their profile_info.source holds the file. Reports that stored such a config
// are read with the file named by its path (resolved configs now name it so themselves).
void make_profile_loadable(Json& config) {
  if (!config.is_object() || !config.contains("costmodel") || !config["costmodel"].is_object()) return;
  Json& cm = config["costmodel"];
  const auto info = cm.find("profile_info");
  if (!cm.contains("profile") || !cm["profile"].is_string() || info == cm.end() || !info->is_object() ||
      !info->contains("source") || !(*info)["source"].is_string())
    return;
  const std::string name = cm["profile"].get<std::string>(), source = (*info)["source"].get<std::string>();
  if (name.find('/') != std::string::npos || ends_with(name, ".json")) return;  // a path already
  const configs::EmbeddedConfig* embedded = configs::find_embedded_config("profiles", name);
  if (embedded && embedded->path == source) return;
  cm["profile"] = source;
}

}  // namespace

// ---- Batches -------------------------------------------------------------------------------------

costmodel::Batch LayerBatch::batch() const {
  costmodel::Batch b;
  for (PartKind k : {PartKind::kDecode, PartKind::kPrefill})
    for (const BatchPart& p : parts)
      if (p.kind == k)
        for (int32_t i = 0; i < p.seqs; ++i) b.add(costmodel::SeqWork{p.new_tokens, p.context, false});
  return b;
}

int64_t LayerBatch::seqs() const {
  int64_t n = 0;
  for (const auto& p : parts) n += p.seqs;
  return n;
}

int64_t LayerBatch::new_tokens() const {
  int64_t n = 0;
  for (const auto& p : parts) n += static_cast<int64_t>(p.seqs) * p.new_tokens;
  return n;
}

int64_t LayerBatch::max_kv_tokens() const {
  int64_t n = 0;
  for (const auto& p : parts) n = std::max<int64_t>(n, int64_t{p.context} + p.new_tokens);
  return n;
}

std::string LayerBatch::kind() const {
  bool prefill = false, decode = false;
  for (const auto& p : parts) (p.kind == PartKind::kPrefill ? prefill : decode) = true;
  return prefill && decode ? "mixed" : (prefill ? "prefill" : "decode");
}

std::vector<LayerBatch> parse_layer_batches(const std::string& list) {
  std::vector<LayerBatch> out;
  const std::vector<std::string> items = split(list, ',');
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string& item = items[i];
    if (item.empty())
      throw InputError("--batches: item " + std::to_string(i + 1) + " of '" + list +
                       "' is empty; expected a comma-separated list of " + kPartSyntax +
                       " (parts of one batch joined by '+')");
    LayerBatch b;
    b.label = item;
    for (const std::string& part : split(item, '+')) {
      if (part.empty())
        throw InputError("--batches: item '" + item + "' has an empty part; expected parts " + kPartSyntax +
                         " joined by '+'");
      b.parts.push_back(parse_part(part, item));
    }
    out.push_back(std::move(b));
  }
  return out;
}

int64_t blocks_needed(const LayerBatch& b, int block_size) {
  FDC_CHECK(block_size > 0, "block size " << block_size);
  int64_t n = 0;
  for (const auto& p : b.parts)
    n += static_cast<int64_t>(p.seqs) * ((int64_t{p.context} + p.new_tokens + block_size - 1) / block_size);
  return n;
}

std::vector<std::vector<int32_t>> make_block_tables(const LayerBatch& b, int block_size, int64_t num_blocks,
                                                    uint64_t seed) {
  const int64_t need = blocks_needed(b, block_size);
  FDC_CHECK(num_blocks >= need,
            "batch '" << b.label << "' needs " << need << " KV blocks, " << num_blocks << " are allocated");
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937_64 gen(seed);
  std::shuffle(ids.begin(), ids.end(), gen);
  std::vector<std::vector<int32_t>> tables;
  size_t next = 0;
  for (const costmodel::SeqWork& s : b.batch().seqs) {
    const auto n = static_cast<size_t>((int64_t{s.context_before} + s.new_tokens + block_size - 1) / block_size);
    tables.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(next),
                        ids.begin() + static_cast<std::ptrdiff_t>(next + n));
    next += n;
  }
  return tables;
}

// ---- Layers --------------------------------------------------------------------------------------

LayerWindow parse_layer_window(const std::string& counts, int first, int num_layers) {
  const std::vector<std::string> v = split(counts, ',');
  int32_t s = 0, l = 0;
  if (v.size() != 2 || !parse_count(v[0], s) || !parse_count(v[1], l))
    throw InputError("--layers '" + counts + "': expected two layer counts 'S,L' (the short and the long model), " +
                     "e.g. 2,6");
  const LayerWindow w{first, s, l};
  check_layer_window(w, num_layers, "--layers '" + counts + "' from --first-layer " + std::to_string(first));
  return w;
}

void check_layer_window(const LayerWindow& w, int num_layers, const std::string& where) {
  FDC_INPUT_CHECK(w.short_layers >= 1 && w.long_layers > w.short_layers,
                  where << ": expected 1 <= S < L, found S=" << w.short_layers << ", L=" << w.long_layers);
  FDC_INPUT_CHECK(w.first >= 0 && w.first + w.long_layers <= num_layers,
                  where << " needs policy layers " << w.first << ".." << w.first + w.long_layers - 1
                        << "; the model has " << num_layers << " layers");
}

LayerSlice slice_layers(const costmodel::ModelSpec& model, const costmodel::ModelDims& dims, int first, int count) {
  FDC_CHECK(first >= 0 && count >= 1 && static_cast<size_t>(first + count) <= dims.layers.size(),
            "layers " << first << ".." << first + count - 1 << " of " << dims.layers.size());
  LayerSlice s{model, {}};
  s.model.num_layers = count;
  s.dims.layers.assign(dims.layers.begin() + first, dims.layers.begin() + first + count);
  return s;
}

bool has_token_classes(const costmodel::ModelDims& dims, int block_size) {
  for (const auto& ld : dims.layers)
    for (const auto& hd : ld.kv_heads)
      if ((hd.qk_lo != hd.qk_hi || hd.v_lo != hd.v_hi) &&
          costmodel::important_slots(ld.important_fraction, block_size) < block_size)
        return true;
  return false;
}

void check_layer_batches(const sim::Experiment& e, const std::vector<LayerBatch>& batches) {
  FDC_INPUT_CHECK(e.parallel.tp == 1 && e.parallel.sp == 1,
                  e.source << ": layer-check times the layer on one GPU (tp = sp = 1); this experiment has tp="
                           << e.parallel.tp << ", sp=" << e.parallel.sp << " (set cluster.sp=1 and cluster.tp=1)");
  FDC_INPUT_CHECK(!batches.empty(), "--batches: no batch to run");
  const bool classes = has_token_classes(e.dims, e.scheduler.block_size);
  for (const LayerBatch& b : batches) {
    for (const BatchPart& p : b.parts) {
      FDC_INPUT_CHECK(int64_t{p.context} + p.new_tokens <= e.model.max_model_len,
                      "--batches: item '" << b.label << "': sequences of " << int64_t{p.context} + p.new_tokens
                                          << " tokens, longer than " << e.model.name << "'s max_model_len "
                                          << e.model.max_model_len);
      FDC_INPUT_CHECK(!(classes && p.kind == PartKind::kPrefill && p.context > 0),
                      "--batches: item '" << b.label << "': policy " << e.policy.name
                                          << " has token classes, which the engine decides once a whole prompt is "
                                             "prefilled; a prefill chunk after cached tokens (@C) cannot run");
    }
  }
}

// ---- Prediction ----------------------------------------------------------------------------------

LayerPrediction predict_layer(const sim::Experiment& e, const LayerWindow& w, const LayerBatch& b) {
  const LayerSlice slice = slice_layers(e.model, e.dims, w.timed_begin(), w.timed());
  const auto cost = sim::make_cost_model(e, slice.model, slice.dims);
  costmodel::OpBreakdown bd;
  cost->iteration_time(b.batch(), bd);
  // No sequence emits a token, so the pass has no final norm or LM head; the per-iteration
  // overhead is not a layer's.
  FDC_CHECK(bd.seconds[static_cast<size_t>(costmodel::OpKind::kLmHead)] == 0, "an LM head in a layer check");
  LayerPrediction p;
  for (int k = 0; k < costmodel::kNumOpKinds; ++k) {
    const auto kind = static_cast<costmodel::OpKind>(k);
    if (kind == costmodel::OpKind::kIterationOverhead) continue;
    const auto i = static_cast<size_t>(k);
    p.op_s[i] = bd.seconds[i] / w.timed();
    p.total_s += p.op_s[i];
  }
  for (size_t k = 0; k < p.decode_calls.size(); ++k) p.decode_calls[k] = bd.decode_calls[k] / w.timed();
  p.outside_measured = cost->outside_measured();
  return p;
}

// ---- Comparison and report -----------------------------------------------------------------------

LayerCheckRow compare_layer(const LayerBatch& b, const LayerWindow& w, const LayerMeasurement& m,
                            const LayerPrediction& p) {
  FDC_CHECK(!m.short_ms.empty() && m.short_ms.size() == m.long_ms.size(),
            "batch '" << b.label << "': " << m.short_ms.size() << " short and " << m.long_ms.size()
                      << " long forwards timed");
  LayerCheckRow r;
  r.label = b.label;
  r.kind = b.kind();
  r.seqs = b.seqs();
  r.new_tokens = b.new_tokens();
  r.max_kv_tokens = b.max_kv_tokens();
  r.repeats = static_cast<int>(m.short_ms.size());
  std::vector<double> per_layer;
  for (size_t i = 0; i < m.short_ms.size(); ++i) per_layer.push_back((m.long_ms[i] - m.short_ms[i]) / w.timed());
  r.measured_ms = fit::percentile(per_layer, 0.5);
  r.measured_p90_ms = fit::percentile(per_layer, 0.9);
  r.measured_min_ms = *std::min_element(per_layer.begin(), per_layer.end());
  r.measured_max_ms = *std::max_element(per_layer.begin(), per_layer.end());
  r.short_ms = median_of(m.short_ms);
  r.long_ms = median_of(m.long_ms);
  r.short_host_ms = median_of(m.short_host_ms);
  r.long_host_ms = median_of(m.long_host_ms);
  if (!m.short_op_ms.empty() || !m.long_op_ms.empty()) {
    FDC_CHECK(m.short_op_ms.size() == m.short_ms.size() && m.long_op_ms.size() == m.long_ms.size() &&
                  m.short_outside_ms.size() == m.short_ms.size() && m.long_outside_ms.size() == m.long_ms.size(),
              "batch '" << b.label << "': " << m.short_op_ms.size() << " short and " << m.long_op_ms.size()
                        << " long per-op forwards of " << m.short_ms.size());
    r.has_measured_ops = true;
    std::vector<double> op(m.short_ms.size());
    for (size_t k = 0; k < r.measured_op_ms.size(); ++k) {
      for (size_t i = 0; i < op.size(); ++i) op[i] = (m.long_op_ms[i][k] - m.short_op_ms[i][k]) / w.timed();
      r.measured_op_ms[k] = median_of(op);
    }
    for (size_t i = 0; i < op.size(); ++i) op[i] = (m.long_outside_ms[i] - m.short_outside_ms[i]) / w.timed();
    r.measured_outside_ms = median_of(op);
    if (!m.short_evented_ms.empty() || !m.long_evented_ms.empty()) {
      FDC_CHECK(m.short_evented_ms.size() == m.short_ms.size() && m.long_evented_ms.size() == m.long_ms.size(),
                "batch '" << b.label << "': " << m.short_evented_ms.size() << " short and " << m.long_evented_ms.size()
                          << " long forwards with per-op events of " << m.short_ms.size());
      for (size_t i = 0; i < op.size(); ++i) op[i] = (m.long_evented_ms[i] - m.short_evented_ms[i]) / w.timed();
      r.measured_evented_ms = median_of(op);
    }
  }
  r.samples = m;
  r.predicted = p;
  return r;
}

std::vector<std::pair<std::string, double>> largest_ops(const LayerPrediction& p, int max_ops, double min_share) {
  std::vector<std::pair<std::string, double>> ops;
  if (!(p.total_s > 0)) return ops;
  for (int k = 0; k < costmodel::kNumOpKinds; ++k) {
    const double share = p.op_s[static_cast<size_t>(k)] / p.total_s;
    if (share >= min_share) ops.emplace_back(std::string(costmodel::op_name(static_cast<costmodel::OpKind>(k))), share);
  }
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (static_cast<int>(ops.size()) > max_ops) ops.resize(static_cast<size_t>(max_ops));
  return ops;
}

void print_layer_table(std::ostream& os, const LayerCheckContext& c, const std::vector<LayerCheckRow>& rows) {
  const LayerWindow& w = c.window;
  os << "fdcsim layer-check: measured on " << (c.device.empty() ? "(unnamed device)" : c.device) << "\n"
     << "  " << c.experiment << "\n"
     << "  model " << c.model << ", policy " << c.policy << "\n"
     << "  cost model: " << c.cost_model << "\n"
     << "  per layer = (t(" << w.long_layers << " layers) - t(" << w.short_layers << " layers)) / " << w.timed()
     << ": policy layers " << w.timed_begin() << ".." << w.timed_end() - 1 << ", " << c.warmup
     << " warm-up forwards per model and batch\n";
  if (!c.timed_from_plans_upload)
    os << "  forwards timed with the host's planning of the layers inside (a report from before the timing started "
          "at the plans' upload)\n";
  if (!c.measured_report.empty()) os << "  measurements read from " << c.measured_report << ", predictions made now\n";
  os << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-30s %5s %7s %8s  %8s %8s %8s %8s  %s\n", "batch", "seqs", "tokens", "repeats",
                "meas ms", "P90 ms", "pred ms", "error", "largest predicted ops");
  os << line;
  int met = 0;
  for (const LayerCheckRow& r : rows) {
    std::string ops;
    for (const auto& [name, share] : largest_ops(r.predicted)) {
      char op[96];
      std::snprintf(op, sizeof op, "%s%s %.0f%%", ops.empty() ? "" : ", ", name.c_str(), share * 100);
      ops += op;
    }
    const bool ok = std::fabs(r.error()) <= kLayerCheckTarget;
    met += ok ? 1 : 0;
    std::snprintf(line, sizeof line, "  %-30s %5lld %7lld %8d  %8.4f %8.4f %8.4f %+7.2f%%%s %s\n", r.label.c_str(),
                  static_cast<long long>(r.seqs), static_cast<long long>(r.new_tokens), r.repeats, r.measured_ms,
                  r.measured_p90_ms, r.predicted_ms(), r.error() * 100, ok ? " " : "*", ops.c_str());
    os << line;
  }
  os << "\n  ms per layer; error = predicted / measured - 1; within " << kLayerCheckTarget * 100 << "%: " << met
     << " of " << rows.size() << " batches (* = outside)\n";
  if (std::any_of(rows.begin(), rows.end(), [](const LayerCheckRow& r) { return r.totals_have_op_events(); }))
    os << "  measured per op before 2026-12-05 (afternoon): the layer times include the per-op events (about a "
          "microsecond each, 10-100 us per layer of Llama-2-13B on an H200), which the prediction does not\n";
  for (const LayerCheckRow& r : rows) {
    if (!r.has_measured_ops) continue;
    // The ops measured or predicted; medians per op, so they need not add up to the row's median.
    os << "\n  " << r.label << ", per op (ms per layer):\n";
    std::snprintf(line, sizeof line, "    %-16s %9s %9s %8s\n", "op", "meas ms", "pred ms", "error");
    os << line;
    for (int k = 0; k < costmodel::kNumOpKinds; ++k) {
      const auto i = static_cast<size_t>(k);
      const double meas = r.measured_op_ms[i], pred = r.predicted.op_s[i] * 1e3;
      if (!(meas > 0) && !(pred > 0)) continue;
      const std::string name(costmodel::op_name(static_cast<costmodel::OpKind>(k)));
      if (meas > 0)
        std::snprintf(line, sizeof line, "    %-16s %9.4f %9.4f %+7.1f%%\n", name.c_str(), meas, pred,
                      (pred / meas - 1.0) * 100);
      else
        std::snprintf(line, sizeof line, "    %-16s %9.4f %9.4f %8s\n", name.c_str(), meas, pred, "-");
      os << line;
    }
    if (r.measured_outside_ms != 0) {
      std::snprintf(line, sizeof line, "    %-16s %9.4f %9s %8s\n", "(outside layers)", r.measured_outside_ms, "-",
                    "-");
      os << line;
    }
    if (r.measured_evented_ms > 0) {
      std::snprintf(line, sizeof line,
                    "    (the ops were timed with an event after each: the layer took %.4f ms with them, %.4f ms "
                    "without)\n",
                    r.measured_evented_ms, r.measured_ms);
      os << line;
    }
  }

  for (const LayerCheckRow& r : rows)
    for (const costmodel::RangeUse& u : r.predicted.outside_measured)
      os << "  " << r.label << ": predicted outside the profile's measured ranges: " << u.example << "\n";
}

Json layer_check_json(const LayerCheckContext& c, const std::vector<LayerCheckRow>& rows, const Json& provenance) {
  const LayerWindow& w = c.window;
  Json j = {{"format", "fdcsim-layer-check"},
            {"version", 1},
            {"device", c.device},
            {"experiment", c.experiment},
            {"model", c.model},
            {"policy", c.policy},
            {"cost_model", c.cost_model},
            {"window",
             {{"first_layer", w.first},
              {"short_layers", w.short_layers},
              {"long_layers", w.long_layers},
              {"timed_layers", {w.timed_begin(), w.timed_end()}}}},
            {"warmup_forwards", c.warmup},
            {"timed_from_plans_upload", c.timed_from_plans_upload},
            {"target_abs_error", kLayerCheckTarget}};
  if (!c.measured_report.empty()) j["measured_report"] = c.measured_report;
  Json batches = Json::array();
  int met = 0;
  for (const LayerCheckRow& r : rows) {
    Json ops = Json::object();
    for (int k = 0; k < costmodel::kNumOpKinds; ++k) {
      const double s = r.predicted.op_s[static_cast<size_t>(k)];
      if (s > 0) ops[std::string(costmodel::op_name(static_cast<costmodel::OpKind>(k)))] = s * 1e3;
    }
    Json outside = Json::array();
    for (const costmodel::RangeUse& u : r.predicted.outside_measured)
      outside.push_back({{"op", u.op}, {"example", u.example}});
    const bool ok = std::fabs(r.error()) <= kLayerCheckTarget;
    met += ok ? 1 : 0;
    Json row = {{"batch", r.label},
                {"kind", r.kind},
                {"seqs", r.seqs},
                {"new_tokens", r.new_tokens},
                {"max_kv_tokens", r.max_kv_tokens},
                {"repeats", r.repeats},
                {"measured_ms_per_layer",
                 {{"median", r.measured_ms},
                  {"p90", r.measured_p90_ms},
                  {"min", r.measured_min_ms},
                  {"max", r.measured_max_ms}}},
                {"forward_ms_median", {{"short", r.short_ms}, {"long", r.long_ms}}},
                {"host_planning_ms_median", {{"short", r.short_host_ms}, {"long", r.long_host_ms}}},
                {"predicted_ms_per_layer", r.predicted_ms()},
                {"predicted_op_ms_per_layer", ops},
                {"error", r.error()},
                {"within_target", ok},
                {"predicted_outside_measured", outside}};
    if (r.has_measured_ops) {
      Json measured_ops = Json::object();
      for (int k = 0; k < costmodel::kNumOpKinds; ++k) {
        const double ms = r.measured_op_ms[static_cast<size_t>(k)];
        if (ms != 0) measured_ops[std::string(costmodel::op_name(static_cast<costmodel::OpKind>(k)))] = ms;
      }
      row["measured_ops_ms"] = measured_ops;
      row["measured_outside_layers_ms"] = r.measured_outside_ms;
      row["totals_include_op_events"] = r.totals_have_op_events();
      if (r.measured_evented_ms > 0) row["measured_evented_ms_per_layer"] = r.measured_evented_ms;
    }
    if (!r.samples.short_ms.empty()) {
      row["forward_ms_per_repeat"] = {{"short", r.samples.short_ms}, {"long", r.samples.long_ms}};
      row["host_planning_ms_per_repeat"] = {{"short", r.samples.short_host_ms}, {"long", r.samples.long_host_ms}};
    }
    if (!r.samples.short_evented_ms.empty())
      row["forward_ms_evented_per_repeat"] = {{"short", r.samples.short_evented_ms},
                                              {"long", r.samples.long_evented_ms}};
    batches.push_back(std::move(row));
  }
  j["batches"] = batches;
  j["within_target"] = met;
  j["provenance"] = provenance;
  return j;
}

// ---- Re-prediction of a saved report (`--measured`) ----------------------------------------------

SavedLayerCheck read_layer_check_report(const std::string& path) {
  const Json doc = load_json_file(path);
  Json seen;  // what ConfigNode records of the values read; not needed here
  const ConfigNode root(doc, path, "", seen);
  if (root.get<std::string>("format") != "fdcsim-layer-check")
    root.fail("format", "\"fdcsim-layer-check\" (a report of fdcsim layer-check --out)");
  if (root.get<int>("version") != 1) root.fail("version", "1");

  SavedLayerCheck s;
  s.path = path;
  const ConfigNode provenance = root.child("provenance");
  provenance.child("config");  // an object, or an error naming /provenance/config
  s.config = provenance.raw("config");
  make_profile_loadable(s.config);
  s.provenance = root.raw("provenance");

  LayerCheckContext& c = s.context;
  c.device = root.get<std::string>("device");
  c.experiment = root.get_or<std::string>("experiment", "");
  c.model = root.get_or<std::string>("model", "");
  c.policy = root.get_or<std::string>("policy", "");
  c.cost_model = root.get_or<std::string>("cost_model", "");
  const ConfigNode w = root.child("window");
  c.window.first = w.get<int>("first_layer", Bounds::non_negative());
  c.window.short_layers = w.get<int>("short_layers", Bounds::at_least(1));
  c.window.long_layers = w.get<int>("long_layers", Bounds::at_least(2));
  c.warmup = root.get<int>("warmup_forwards", Bounds::non_negative());
  c.timed_from_plans_upload = root.get_or<bool>("timed_from_plans_upload", false);
  c.measured_report = path;

  const std::vector<ConfigNode> rows = root.array_of_objects("batches");
  if (rows.empty()) root.fail("batches", "at least one measured batch");
  for (const ConfigNode& r : rows) {
    const std::string label = r.get<std::string>("batch");
    std::vector<LayerBatch> parsed;
    try {
      parsed = parse_layer_batches(label);
    } catch (const InputError& e) {
      throw InputError(r.where("batch") + ": " + e.what());
    }
    if (parsed.size() != 1) r.fail("batch", "one batch (parts joined by '+', no ',')");
    const LayerBatch& b = parsed.front();
    LayerCheckRow row;
    row.label = b.label;
    row.kind = b.kind();
    row.seqs = b.seqs();
    row.new_tokens = b.new_tokens();
    row.max_kv_tokens = b.max_kv_tokens();
    row.repeats = r.get<int>("repeats", Bounds::at_least(1));
    const ConfigNode m = r.child("measured_ms_per_layer");
    row.measured_ms = m.get<double>("median");
    row.measured_p90_ms = m.get<double>("p90");
    row.measured_min_ms = m.get<double>("min");
    row.measured_max_ms = m.get<double>("max");
    const ConfigNode f = r.child("forward_ms_median");
    row.short_ms = f.get<double>("short", Bounds::non_negative());
    row.long_ms = f.get<double>("long", Bounds::non_negative());
    const ConfigNode h = r.child("host_planning_ms_median");
    row.short_host_ms = h.get<double>("short", Bounds::non_negative());
    row.long_host_ms = h.get<double>("long", Bounds::non_negative());
    // A {short, long} pair of per-repeat forward times, one per repeat each.
    auto per_repeat = [&](const char* key, std::vector<double>& short_ms, std::vector<double>& long_ms) {
      const ConfigNode fr = r.child(key);
      short_ms = fr.get<std::vector<double>>("short");
      long_ms = fr.get<std::vector<double>>("long");
      for (const char* k : {"short", "long"})
        if (fr.get<std::vector<double>>(k).size() != static_cast<size_t>(row.repeats))
          fr.fail(k, std::to_string(row.repeats) + " forward times (\"repeats\")");
    };
    if (r.has("forward_ms_per_repeat")) {  // reports written before these were stored lack them
      per_repeat("forward_ms_per_repeat", row.samples.short_ms, row.samples.long_ms);
      const ConfigNode hr = r.child_or_empty("host_planning_ms_per_repeat");
      row.samples.short_host_ms = hr.get_or<std::vector<double>>("short", {});
      row.samples.long_host_ms = hr.get_or<std::vector<double>>("long", {});
    }
    if (r.has("measured_ops_ms")) {  // measured with --per-op
      const ConfigNode ops = r.child("measured_ops_ms");
      row.has_measured_ops = true;
      for (int k = 0; k < costmodel::kNumOpKinds; ++k) {
        const std::string name(costmodel::op_name(static_cast<costmodel::OpKind>(k)));
        row.measured_op_ms[static_cast<size_t>(k)] = ops.get_or<double>(name, 0.0);
      }
      const Json& stored = r.raw("measured_ops_ms");
      for (auto it = stored.begin(); it != stored.end(); ++it) {
        const std::string& name = it.key();
        bool known = false;
        for (int k = 0; k < costmodel::kNumOpKinds; ++k)
          known = known || name == costmodel::op_name(static_cast<costmodel::OpKind>(k));
        if (!known) ops.fail(name, "an op name (costmodel/ops.h)");
      }
      row.measured_outside_ms = r.get_or<double>("measured_outside_layers_ms", 0.0);
      // Since 2026-12-05 (afternoon) the totals come from forwards without the per-op events.
      // ("totals_include_op_events" is derived from it, LayerCheckRow::totals_have_op_events.)
      row.measured_evented_ms = r.get_or<double>("measured_evented_ms_per_layer", 0.0, Bounds::non_negative());
    }
    if (r.has("forward_ms_evented_per_repeat"))  // measured per op since 2026-12-05 (afternoon)
      per_repeat("forward_ms_evented_per_repeat", row.samples.short_evented_ms, row.samples.long_evented_ms);
    s.batches.push_back(b);
    s.rows.push_back(std::move(row));
  }
  return s;
}

std::vector<LayerCheckRow> repredict_layer_check(const sim::Experiment& e, const SavedLayerCheck& s) {
  FDC_CHECK(s.batches.size() == s.rows.size(), s.batches.size() << " batches, " << s.rows.size() << " rows");
  check_layer_window(s.context.window, e.model.num_layers, s.path + ": /window");
  check_layer_batches(e, s.batches);
  std::vector<LayerCheckRow> rows = s.rows;
  for (size_t i = 0; i < rows.size(); ++i) rows[i].predicted = predict_layer(e, s.context.window, s.batches[i]);
  return rows;
}

}  // namespace fdc::validate
