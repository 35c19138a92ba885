#include "sim/policy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fdc::sim {

namespace {

// Reads a rank given either absolutely (`r_key`) or as a fraction of head_dim (`frac_key`).
void read_rank(const ConfigNode& n, const std::string& r_key, const std::string& frac_key, int& r, double& frac,
               double default_frac) {
  if (n.has(r_key) && n.has(frac_key)) n.fail(frac_key, "either " + r_key + " or " + frac_key + ", not both");
  if (n.has(r_key)) {
    r = n.get<int>(r_key, Bounds::at_least(1));
  } else {
    frac = n.get_or<double>(frac_key, default_frac, {0.0, 1.0, true});
  }
}

std::vector<std::vector<int>> read_table(const ConfigNode& n, const std::string& key) {
  const Json& v = n.raw(key);
  std::vector<std::vector<int>> out;
  if (!v.is_array()) n.fail(key, "an array (one entry per layer) of arrays of ranks (one per KV head)");
  for (size_t l = 0; l < v.size(); ++l) {
    const Json& row = v[l];
    std::vector<int> ranks;
    if (!row.is_array())
      throw InputError(n.where(key) + "/" + std::to_string(l) +
                       ": expected an array of ranks (one per KV head), found " + describe_json(row));
    for (size_t h = 0; h < row.size(); ++h) {
      const Json& x = row[h];
      if (!x.is_number_integer() || x.get<int64_t>() < 1)
        throw InputError(n.where(key) + "/" + std::to_string(l) + "/" + std::to_string(h) +
                         ": expected an integer rank >= 1, found " + describe_json(x));
      ranks.push_back(static_cast<int>(x.get<int64_t>()));
    }
    out.push_back(std::move(ranks));
  }
  return out;
}

// important_fraction: a number, one per layer, or {"shallowest": f0, "deepest": f1}.
void read_important_fraction(const ConfigNode& n, PolicySpec& p) {
  const Json& f = n.raw("important_fraction");
  auto bad = [&] {
    n.fail("important_fraction",
           "a number in [0, 1], an array of them (one per layer), or {\"shallowest\": f0, \"deepest\": f1} "
           "(linear over depth)");
  };
  if (f.is_object()) {
    if (f.size() != 2 || !f.contains("shallowest") || !f.contains("deepest") || !f["shallowest"].is_number() ||
        !f["deepest"].is_number())
      bad();
    p.ramp = true;
    p.important_fraction = {f["shallowest"].get<double>(), f["deepest"].get<double>()};
  } else if (f.is_number()) {
    p.important_fraction.push_back(f.get<double>());
  } else if (f.is_array() && !f.empty()) {
    for (const auto& x : f) {
      if (!x.is_number()) bad();
      p.important_fraction.push_back(x.get<double>());
    }
  } else {
    bad();
  }
  for (double x : p.important_fraction)
    if (!(x >= 0.0 && x <= 1.0)) bad();
}

}  // namespace

PolicySpec parse_policy(const ConfigNode& n) {
  PolicySpec p;
  p.source = n.where();
  p.name = n.get<std::string>("name");
  n.get_or<std::string>("comment", "");
  std::string kind = n.get_enum("kind", {"none", "fdc_uniform", "fdc_table", "fdc_hybrid"});
  if (kind == "none") {
    p.kind = PolicyKind::kNone;
  } else if (kind == "fdc_uniform") {
    p.kind = PolicyKind::kUniform;
    p.rank_multiple = n.get_or<int>("rank_multiple", 8, Bounds::at_least(1));
    read_rank(n, "r_qk", "qk_fraction", p.r_qk, p.qk_fraction, 1.0);
    read_rank(n, "r_v", "v_fraction", p.r_v, p.v_fraction, 1.0);
  } else if (kind == "fdc_hybrid") {
    p.kind = PolicyKind::kHybrid;
    p.rank_multiple = n.get_or<int>("rank_multiple", 8, Bounds::at_least(1));
    read_rank(n, "r_qk", "qk_fraction", p.r_qk, p.qk_fraction, 1.0);
    read_rank(n, "r_v", "v_fraction", p.r_v, p.v_fraction, 1.0);
    read_rank(n, "r_qk_lo", "qk_lo_fraction", p.r_qk_lo, p.qk_lo_fraction, 0.5);
    read_rank(n, "r_v_lo", "v_lo_fraction", p.r_v_lo, p.v_lo_fraction, 0.5);
    read_important_fraction(n, p);
  } else {
    p.kind = PolicyKind::kTable;
    p.table_qk = read_table(n, "r_qk");
    p.table_v = read_table(n, "r_v");
    if (n.has("token_classes")) {
      const ConfigNode tc = n.child("token_classes");
      p.table_classes = true;
      p.rank_multiple = tc.get_or<int>("rank_multiple", 8, Bounds::at_least(1));
      p.qk_lo_share = tc.get<double>("qk_lo_share", {0.0, 1.0, true});
      p.v_lo_share = tc.get<double>("v_lo_share", {0.0, 1.0, true});
      read_important_fraction(tc, p);
      tc.finish();
    }
  }
  n.finish();
  return p;
}

namespace {
int rank_of(int absolute, double fraction, int multiple, int head_dim) {
  if (absolute > 0) return absolute;
  const double raw = fraction * head_dim;
  int r = static_cast<int>(std::ceil(raw / multiple - 1e-9)) * multiple;
  if (r > head_dim) r = head_dim;
  return r < 1 ? 1 : r;
}
}  // namespace

costmodel::ModelDims resolve_policy(const PolicySpec& p, const costmodel::ModelSpec& m, int block_size) {
  using costmodel::KvHeadDims;
  costmodel::ModelDims dims;
  dims.layers.resize(m.num_layers);
  const int d = m.head_dim;
  auto check = [&](int r, const std::string& what) {
    FDC_INPUT_CHECK(r >= 1 && r <= d, p.source << ": " << what << " = " << r << " is outside [1, head_dim = " << d
                                               << "] of model " << m.name);
  };
  // The hybrid fraction of layer l, rounded to whole token slots of a block.
  auto layer_fraction = [&](int l) {
    const auto& f = p.important_fraction;
    FDC_INPUT_CHECK(p.ramp || f.size() == 1 || static_cast<int>(f.size()) == m.num_layers,
                    p.source << ": important_fraction has " << f.size() << " entries; model " << m.name << " has "
                             << m.num_layers << " layers (give one value or one per layer)");
    const double depth = m.num_layers > 1 ? static_cast<double>(l) / (m.num_layers - 1) : 0.0;
    const double frac = p.ramp ? f[0] + (f[1] - f[0]) * depth : (f.size() == 1 ? f[0] : f[static_cast<size_t>(l)]);
    return static_cast<double>(costmodel::important_slots(frac, block_size)) / static_cast<double>(block_size);
  };
  for (int l = 0; l < m.num_layers; ++l) {
    auto& layer = dims.layers[l];
    layer.kv_heads.resize(m.num_kv_heads);
    if (p.kind == PolicyKind::kNone) {
      for (auto& h : layer.kv_heads) h = {d, d, d, d};
    } else if (p.kind == PolicyKind::kUniform || p.kind == PolicyKind::kHybrid) {
      const int qk = rank_of(p.r_qk, p.qk_fraction, p.rank_multiple, d);
      const int v = rank_of(p.r_v, p.v_fraction, p.rank_multiple, d);
      check(qk, "r_qk");
      check(v, "r_v");
      int qk_lo = qk, v_lo = v;
      if (p.kind == PolicyKind::kHybrid) {
        qk_lo = rank_of(p.r_qk_lo, p.qk_lo_fraction, p.rank_multiple, d);
        v_lo = rank_of(p.r_v_lo, p.v_lo_fraction, p.rank_multiple, d);
        FDC_INPUT_CHECK(qk_lo <= qk && v_lo <= v, p.source << ": low-importance ranks (" << qk_lo << ", " << v_lo
                                                           << ") must not exceed the high ones (" << qk << ", " << v
                                                           << ")");
        layer.important_fraction = layer_fraction(l);
      }
      for (auto& h : layer.kv_heads) h = {qk, v, qk_lo, v_lo};
    } else {
      FDC_INPUT_CHECK(
          static_cast<int>(p.table_qk.size()) == m.num_layers && static_cast<int>(p.table_v.size()) == m.num_layers,
          p.source << ": the rank tables have " << p.table_qk.size() << " (r_qk) and " << p.table_v.size()
                   << " (r_v) layers; model " << m.name << " has " << m.num_layers);
      FDC_INPUT_CHECK(static_cast<int>(p.table_qk[l].size()) == m.num_kv_heads &&
                          static_cast<int>(p.table_v[l].size()) == m.num_kv_heads,
                      p.source << ": layer " << l << " of the rank tables has " << p.table_qk[l].size()
                               << " (r_qk) and " << p.table_v[l].size() << " (r_v) entries; model " << m.name << " has "
                               << m.num_kv_heads << " KV heads");
      for (int h = 0; h < m.num_kv_heads; ++h) {
        const int qk = p.table_qk[l][h], v = p.table_v[l][h];
        check(qk, "r_qk[" + std::to_string(l) + "][" + std::to_string(h) + "]");
        check(v, "r_v[" + std::to_string(l) + "][" + std::to_string(h) + "]");
        layer.kv_heads[h] = {qk, v, qk, v};
        if (p.table_classes) {
          // lo = share of the head's hi rank, rounded up to rank_multiple, never above hi.
          auto lo = [&](int hi, double share) {
            const int r = static_cast<int>(std::ceil(share * hi / p.rank_multiple - 1e-9)) * p.rank_multiple;
            return std::clamp(r, std::min(p.rank_multiple, hi), hi);
          };
          layer.kv_heads[h].qk_lo = lo(qk, p.qk_lo_share);
          layer.kv_heads[h].v_lo = lo(v, p.v_lo_share);
        }
      }
      if (p.table_classes) layer.important_fraction = layer_fraction(l);
    }
  }
  return dims;
}

}  // namespace fdc::sim
