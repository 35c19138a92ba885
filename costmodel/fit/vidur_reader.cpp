#include "costmodel/fit/vidur_reader.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "costmodel/ops.h"
#include "traces/csv_lines.h"

namespace fdc::fit {
namespace {

using traces::detail::LineReader;

constexpr double kElemBytes = 2.0;  // Vidur profiles fp16/bf16

// The header of a CSV: column index by name.
struct Header {
  std::vector<std::string> names;
  std::map<std::string, size_t> index;
  bool has(const std::string& c) const { return index.count(c) > 0; }
};

Header read_header(LineReader& in) {
  std::string line;
  FDC_INPUT_CHECK(in.next(line), in.path() << ": empty file (expected a Vidur profiling CSV header)");
  const auto fields = traces::detail::split_csv(line);
  FDC_INPUT_CHECK(fields, in.here() << "unterminated quote in the header");
  Header h;
  h.names = *fields;
  for (size_t i = 0; i < h.names.size(); ++i) h.index[h.names[i]] = i;
  return h;
}

// One data row with the file, line and column in every error.
class Row {
 public:
  Row(const Header& h, std::vector<std::string> fields, std::string here)
      : h_(h), f_(std::move(fields)), here_(std::move(here)) {}
  const std::string& text(const std::string& col) const {
    const auto it = h_.index.find(col);
    FDC_INPUT_CHECK(it != h_.index.end(), here_ << "missing column '" << col << "' in the header");
    FDC_INPUT_CHECK(it->second < f_.size(), here_ << "column '" << col << "': the row has only " << f_.size()
                                                  << " fields, the header " << h_.names.size());
    return f_[it->second];
  }
  double number(const std::string& col) const {
    const std::string& s = text(col);
    const auto v = traces::detail::parse_number(s);
    FDC_INPUT_CHECK(v, here_ << "column '" << col << "': expected a number, found " << traces::detail::quote_field(s));
    return *v;
  }
  double positive(const std::string& col) const {
    const double v = number(col);
    FDC_INPUT_CHECK(v > 0, here_ << "column '" << col << "': expected a number > 0, found " << v);
    return v;
  }
  int count(const std::string& col) const {
    const double v = positive(col);
    FDC_INPUT_CHECK(v == static_cast<double>(static_cast<int>(v)),
                    here_ << "column '" << col << "': expected an integer >= 1, found " << v);
    return static_cast<int>(v);
  }
  bool boolean(const std::string& col) const {
    const std::string& s = text(col);
    if (s == "True" || s == "true" || s == "1") return true;
    if (s == "False" || s == "false" || s == "0") return false;
    throw InputError(here_ + "column '" + col + "': expected True or False, found " + traces::detail::quote_field(s));
  }
  const std::string& here() const { return here_; }

 private:
  const Header& h_;
  std::vector<std::string> f_;
  std::string here_;
};

std::string median_column(const std::string& op) { return "time_stats." + op + ".median"; }

void add_mlp_row(const Row& r, const Header& h, RawProfile& out, int& added) {
  const double heads = r.count("n_head"), kv_heads = r.count("n_kv_head"), D = r.count("n_embd");
  const double F = r.count("n_expanded_embd"), m = r.count("num_tokens"), t = r.count("num_tensor_parallel_workers");
  const bool gated = r.boolean("use_gated_mlp");
  const double d = D / heads;
  auto add = [&](const std::string& op, const std::string& group, const costmodel::OpWork& w, double gm, double gn,
                 double gk) {
    if (!h.has(median_column(op))) return;
    Sample s;
    s.group = group;
    s.where = r.here() + op;
    s.time_us = r.positive(median_column(op)) * 1e3;  // Vidur writes milliseconds
    s.flops = w.flops, s.bytes = w.bytes, s.m = gm, s.n = gn, s.k = gk;
    out.samples.push_back(std::move(s));
    ++added;
  };
  auto gemm = [&](const std::string& op, const std::string& name, double n, double k) {
    add(op, "gemm/" + name + "/vidur", costmodel::gemm_work(m, n, k, kElemBytes), m, n, k);
  };
  gemm("attn_pre_proj", "qkv_proj", (heads + 2 * kv_heads) * d / t, D);
  gemm("attn_post_proj", "out_proj", D, heads * d / t);
  gemm("mlp_up_proj", "mlp_up", (gated ? 2 : 1) * F / t, D);
  gemm("mlp_down_proj", "mlp_down", D, F / t);
  const double act = m * F / t;
  add("mlp_act", gated ? "mlp_act/swiglu" : "mlp_act/gelu",
      gated ? costmodel::elementwise_work(2 * act, act, kElemBytes, 4.0)
            : costmodel::elementwise_work(act, act, kElemBytes),
      0, 0, 0);
  // Vidur does not say which norm; its gated (Llama-family) models use RMSNorm, the others LayerNorm.
  const std::string norm = gated ? "norm/rmsnorm" : "norm/layernorm";
  for (const char* op : {"input_layernorm", "post_attention_layernorm"})
    add(op, norm, costmodel::elementwise_work(m * D, m * D, kElemBytes, 4.0), 0, 0, 0);
  add("add", "residual", costmodel::elementwise_work(2 * m * D, m * D, kElemBytes), 0, 0, 0);
  const double rope_width = (heads + kv_heads) * d / t;
  add("attn_rope", "rope_rotate/rope_only", costmodel::rope_rotate_work(m, rope_width, rope_width, 0, kElemBytes), 0, 0,
      0);
}

void add_collective_row(const Row& r, const std::string& time_col, RawProfile& out) {
  const std::string& coll = r.text("collective");
  FDC_INPUT_CHECK(coll == "all_reduce" || coll == "all_gather" || coll == "send_recv",
                  r.here() << "column 'collective': expected all_reduce, all_gather or send_recv, found "
                           << traces::detail::quote_field(coll));
  const int g = r.count("num_workers");
  FDC_INPUT_CHECK(g >= 2, r.here() << "column 'num_workers': expected an integer >= 2, found " << g);
  Sample s;
  s.group = coll + "/g" + std::to_string(g) + (r.count("devices_per_node") < g ? "/inter_node" : "");
  s.where = r.here() + coll;
  s.time_us = r.positive(time_col) * 1e3;
  s.bytes = r.positive("size");
  out.samples.push_back(std::move(s));
}

}  // namespace

VidurCsvKind vidur_csv_kind(const std::string& path) {
  LineReader in(path);
  const Header h = read_header(in);
  if (h.has("num_tensor_parallel_workers") && h.has("num_tokens") && h.has("n_embd")) return VidurCsvKind::kMlp;
  if (h.has("collective") && h.has("size") && h.has("num_workers")) return VidurCsvKind::kCollective;
  return VidurCsvKind::kNone;
}

void read_vidur_csv(const std::string& path, RawProfile& out, RawSource& source) {
  LineReader in(path);
  const Header h = read_header(in);
  const VidurCsvKind kind = vidur_csv_kind(path);
  FDC_INPUT_CHECK(
      kind != VidurCsvKind::kNone,
      path << ": not a Vidur profiling CSV (expected the columns of mlp.csv: n_head, n_kv_head, n_embd, "
              "n_expanded_embd, use_gated_mlp, num_tokens, num_tensor_parallel_workers and "
              "time_stats.<op>.median; or of all_reduce.csv / send_recv.csv: time_stats.<collective>.median, "
              "num_workers, size, collective, devices_per_node)");
  std::string time_col;
  if (kind == VidurCsvKind::kCollective) {
    for (const std::string& c : h.names)
      if (c.rfind("time_stats.", 0) == 0 && c.size() > 7 && c.substr(c.size() - 7) == ".median") time_col = c;
    FDC_INPUT_CHECK(!time_col.empty(), path << ": no time_stats.<collective>.median column");
  }
  std::string line;
  int rows = 0;
  while (in.next(line)) {
    if (traces::detail::is_blank(line)) continue;
    auto fields = traces::detail::split_csv(line);
    FDC_INPUT_CHECK(fields, in.here() << "unterminated quote");
    const Row r(h, std::move(*fields), in.here());
    if (kind == VidurCsvKind::kMlp) {
      int added = 0;
      add_mlp_row(r, h, out, added);
      FDC_INPUT_CHECK(added > 0, in.here() << "no time_stats.<op>.median column of a known op (attn_pre_proj, "
                                              "attn_post_proj, mlp_up_proj, mlp_down_proj, mlp_act, ...)");
    } else {
      add_collective_row(r, time_col, out);
    }
    ++rows;
  }
  FDC_INPUT_CHECK(rows > 0, path << ": no data rows");
  source.used += rows;
}

}  // namespace fdc::fit
