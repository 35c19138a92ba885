#include "costmodel/fit/profile_io.h"

#include <cmath>
#include <fstream>
#include <ios>
#include <utility>

#include "core/config.h"
#include "core/error.h"
#include "costmodel/ops.h"

namespace fdc::fit {
namespace {

Json opt_number(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }
Json range_json(const Range& r) { return Json::array({r.min, r.max}); }

Json held_out_json(const HeldOutError& h) {
  return {{"method", h.method},
          {"points", h.points},
          {"median_ape_pct", opt_number(h.median_ape_pct)},
          {"p90_ape_pct", opt_number(h.p90_ape_pct)}};
}

// The balanced decode planner's constants the law's units are estimated with (decode_units.h).
Json decode_plan_json(const costmodel::DecodePlanConstants& c) {
  return {{"num_sms", c.num_sms},
          {"ctas_per_sm", c.ctas_per_sm},
          {"waves", c.waves},
          {"tile_tokens", c.tile_tokens},
          {"min_unit_bytes", c.min_unit_bytes}};
}

// The prefill kernel's schedule the makespan is computed with (prefill_makespan.h).
Json prefill_schedule_json(const costmodel::PrefillScheduleConstants& c) {
  return {{"num_sms", c.num_sms}, {"block_fixed_tiles", c.block_fixed_tiles}, {"shared_speed", c.shared_speed}};
}

// The base laws attention_prefill_neighbours may correct (fit_op tries it over these).
bool prefill_neighbour_base(FitForm f) {
  return f == FitForm::kAttentionLinear || f == FitForm::kAttentionLinearEfficiency || f == FitForm::kAttentionTiles ||
         f == FitForm::kAttentionMakespan;
}

Json op_json(const OpFit& f) {
  Json params = Json::object();
  const FitForm base = f.base_form();  // a neighbour form's parameters are its base law's
  if (base == FitForm::kGemmRooflineEfficiency || base == FitForm::kGemmRooflineGrid) {
    params = {{"peak_TFLOP/s", f.peak_tflops}, {"peak_GB/s", f.peak_gbps}};
  } else if (base == FitForm::kRooflineDerived) {
    params = {{"alpha_us", f.alpha_us}, {"TFLOP/s", f.peak_tflops}, {"GB/s", f.peak_gbps}};
  } else if (base == FitForm::kConstant) {
    params = {{"alpha_us", f.alpha_us}};
    if (f.us_per_seq != 0) params["us_per_seq"] = f.us_per_seq;  // a calibrated iteration overhead
    if (f.prefill_scale != 0) params["prefill_scale"] = f.prefill_scale;
  } else if (base == FitForm::kAttentionLinear || base == FitForm::kAttentionLinearEfficiency) {
    params = {{"alpha_us", f.alpha_us},
              {"us_per_byte", f.us_per_byte},
              {"us_per_flop", f.us_per_flop},
              {"us_per_seq", f.us_per_seq},
              {"us_per_straggler", f.us_per_straggler},
              {"us_per_straggler_unbalanced", f.us_per_straggler_unbalanced},
              {"straggler_axis", f.straggler_on_flops ? "flops" : "bytes"}};
    if (f.us_per_stage_byte != 0) params["us_per_stage_byte"] = f.us_per_stage_byte;
    FDC_CHECK(f.us_per_unit == 0 || f.decode_plan, f.op << ": a per-unit term without the plan constants of its units");
    if (f.decode_plan) params["us_per_unit"] = f.us_per_unit;
  } else if (base == FitForm::kAttentionTiles || base == FitForm::kAttentionMakespan) {
    params = {{"alpha_us", f.alpha_us},
              {"us_per_padded_flop", f.us_per_padded_flop},
              {"us_per_block_elem", f.us_per_block_elem},
              {"us_per_longest_flop", f.us_per_longest_flop}};
    if (f.us_per_flop != 0) params["us_per_flop"] = f.us_per_flop;
    if (base == FitForm::kAttentionMakespan) {
      FDC_CHECK(f.prefill_schedule, f.op << ": an attention_makespan law without the schedule of its makespan");
      params["us_per_makespan_flop_w64"] = f.us_per_makespan_flop_w64;
      params["us_per_makespan_flop_w128"] = f.us_per_makespan_flop_w128;
    }
  } else {
    params = {{"alpha_us", f.alpha_us}, {"us_per_byte", f.us_per_byte}, {"us_per_flop", f.us_per_flop}};
    // Informative only (not read back): the bandwidth the slope stands for.
    params["bandwidth_GB/s"] = f.us_per_byte > 0 ? Json(1e-3 / f.us_per_byte) : Json(nullptr);
  }
  Json knots = Json::array();
  for (const Knot& k : f.knots) knots.push_back(Json::array({k.log2_axis, k.efficiency}));
  Json coverage = Json::object();
  const bool measured = !f.extrapolated && f.form != FitForm::kConstant;
  if (measured) coverage[f.axis_name()] = range_json(f.axis);
  if (f.seqs_range) coverage["sequences"] = range_json(*f.seqs_range);
  if (f.keys_max_range) coverage["keys_max"] = range_json(*f.keys_max_range);
  if (f.m_range)
    coverage["m"] = range_json(*f.m_range), coverage["n"] = range_json(*f.n_range),
    coverage["k"] = range_json(*f.k_range);
  Json candidates = Json::array();
  for (const CandidateError& c : f.candidates) {
    Json h = held_out_json(c.held_out);
    h["form"] = form_name(c.form);
    if (c.curve_on_flops) h["axis"] = "flops";  // an alpha_beta_efficiency curve over the flops slot
    if (c.interpolation_first) h["interpolation_first"] = true;  // a gemm_roofline_grid variant
    candidates.push_back(h);
  }
  Json j = {{"form", form_name(f.form)}, {"axis", f.axis_name()}, {"params", params},
            {"efficiency_knots", knots}, {"coverage", coverage},  {"held_out", held_out_json(f.held_out)},
            {"candidates", candidates}};
  if (f.held_out_balanced) j["held_out_balanced"] = held_out_json(*f.held_out_balanced);
  if (f.repeat_spread)
    j["repeat_spread"] = {{"cases", f.repeat_spread->cases},
                          {"repeats", f.repeat_spread->repeats},
                          {"median_pct", f.repeat_spread->median_pct},
                          {"p90_pct", f.repeat_spread->p90_pct}};
  if (f.form == FitForm::kGemmRooflineGrid) {
    Json grid = Json::array();
    for (const GridPoint& p : f.grid.points) grid.push_back(Json::array({p.m, p.n, p.k, p.efficiency}));
    j["efficiency_grid"] = grid;  // [m, n, k, efficiency] per measured shape
    if (f.grid.interpolation_first) j["interpolation_first"] = true;
  }
  if (f.form == FitForm::kAttentionPrefillNeighbours) {
    FDC_CHECK(prefill_neighbour_base(f.neighbour_base),
              f.op << ": attention_prefill_neighbours over " << form_name(f.neighbour_base));
    j["neighbour_base"] = form_name(f.neighbour_base);
  }
  if (f.neighbour_space()) {
    Json points = Json::array();  // [6 coordinates (neighbour_features), log(measured / base law)] per case
    for (const NeighbourPoint& p : f.neighbours) {
      Json row(p.x);
      row.push_back(p.log_ratio);
      points.push_back(row);
    }
    j["neighbours"] = points;
  }
  if (f.decode_plan) j["decode_plan"] = decode_plan_json(*f.decode_plan);
  if (base == FitForm::kAttentionMakespan) j["prefill_schedule"] = prefill_schedule_json(*f.prefill_schedule);
  if (f.extrapolated) j["extrapolated"] = true, j["note"] = f.note;
  return j;
}

class Reader {
 public:
  explicit Reader(std::string where) : where_(std::move(where)) {}
  const Json& at(const Json& j, const std::string& key) const {
    FDC_INPUT_CHECK(j.is_object() && j.contains(key), where_ << ": missing '" << key << "'");
    return j[key];
  }
  double number(const Json& j, const std::string& key) const {
    const Json& v = at(j, key);
    FDC_INPUT_CHECK(v.is_number(), where_ << ": '" << key << "' must be a number, found " << v.dump());
    return v.get<double>();
  }
  std::optional<double> opt_number(const Json& j, const std::string& key) const {
    return at(j, key).is_null() ? std::nullopt : std::optional<double>(number(j, key));
  }
  Range range(const Json& j, const std::string& key) const {
    const Json& v = at(j, key);
    FDC_INPUT_CHECK(v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number(),
                    where_ << ": '" << key << "' must be [min, max]");
    return {v[0].get<double>(), v[1].get<double>()};
  }
  HeldOutError held_out(const Json& j) const {
    const Json& s = at(j, "method");
    FDC_INPUT_CHECK(s.is_string(), where_ << ": 'method' must be a string");
    return {s.get<std::string>(),
            static_cast<int>(number(j, "points")),
            opt_number(j, "median_ape_pct"),
            opt_number(j, "p90_ape_pct"),
            {}};
  }
  const std::string& where() const { return where_; }
  FitForm form(const Json& j) const {
    const Json& v = at(j, "form");
    const auto f = v.is_string() ? form_from_name(v.get<std::string>()) : std::nullopt;
    FDC_INPUT_CHECK(f, where_ << ": unknown form " << v.dump());
    return *f;
  }

 private:
  std::string where_;
};

costmodel::DecodePlanConstants decode_plan_from_json(const Reader& r, const Json& j) {
  auto whole = [&](const char* key, double min) {
    const double v = r.number(j, key);
    FDC_INPUT_CHECK(v >= min && v == std::floor(v) && v < 1e12,
                    r.where() << ": decode_plan." << key << " must be an integer >= " << min << ", found " << v);
    return v;
  };
  costmodel::DecodePlanConstants c;
  c.num_sms = static_cast<int>(whole("num_sms", 1));
  c.ctas_per_sm = static_cast<int>(whole("ctas_per_sm", 1));
  c.waves = static_cast<int>(whole("waves", 1));
  c.tile_tokens = static_cast<int>(whole("tile_tokens", 1));
  c.min_unit_bytes = static_cast<int64_t>(whole("min_unit_bytes", 0));
  return c;
}

costmodel::PrefillScheduleConstants prefill_schedule_from_json(const Reader& r, const Json& j) {
  costmodel::PrefillScheduleConstants c;
  const double sms = r.number(j, "num_sms");
  FDC_INPUT_CHECK(sms >= 1 && sms == std::floor(sms) && sms < 1e6,
                  r.where() << ": prefill_schedule.num_sms must be an integer >= 1, found " << sms);
  c.num_sms = static_cast<int>(sms);
  c.block_fixed_tiles = r.number(j, "block_fixed_tiles");
  FDC_INPUT_CHECK(c.block_fixed_tiles >= 0,
                  r.where() << ": prefill_schedule.block_fixed_tiles must be >= 0, found " << c.block_fixed_tiles);
  c.shared_speed = r.number(j, "shared_speed");
  FDC_INPUT_CHECK(c.shared_speed > 0 && c.shared_speed <= 1,
                  r.where() << ": prefill_schedule.shared_speed must be in (0, 1], found " << c.shared_speed);
  return c;
}

OpFit op_from_json(const std::string& op, const Json& j, const std::string& source) {
  const Reader r(source + ": ops." + op);
  OpFit f;
  f.op = op;
  f.form = r.form(j);
  if (f.form == FitForm::kAttentionPrefillNeighbours) {
    const Json& b = r.at(j, "neighbour_base");
    const auto base = b.is_string() ? form_from_name(b.get<std::string>()) : std::nullopt;
    FDC_INPUT_CHECK(base && prefill_neighbour_base(*base),
                    source << ": ops." << op << ": 'neighbour_base' must be one of \"attention_linear\", "
                           << "\"attention_linear_efficiency\", \"attention_tiles\", \"attention_makespan\", found "
                           << b.dump());
    f.neighbour_base = *base;
  }
  const FitForm base = f.base_form();  // a neighbour form's parameters are its base law's
  const Json& params = r.at(j, "params");
  if (j.contains("extrapolated")) {
    FDC_INPUT_CHECK(j["extrapolated"].is_boolean(), source << ": ops." << op << ": 'extrapolated' must be a boolean");
    f.extrapolated = j["extrapolated"].get<bool>();
    if (j.contains("note") && j["note"].is_string()) f.note = j["note"].get<std::string>();
  }
  if (base == FitForm::kGemmRooflineEfficiency || base == FitForm::kGemmRooflineGrid) {
    f.peak_tflops = r.number(params, "peak_TFLOP/s"), f.peak_gbps = r.number(params, "peak_GB/s");
  } else if (base == FitForm::kRooflineDerived) {
    f.alpha_us = r.number(params, "alpha_us");
    f.peak_tflops = r.number(params, "TFLOP/s"), f.peak_gbps = r.number(params, "GB/s");
    FDC_INPUT_CHECK(f.peak_tflops > 0 && f.peak_gbps > 0, source << ": ops." << op << ": rates must be > 0");
  } else if (base == FitForm::kConstant) {
    f.alpha_us = r.number(params, "alpha_us");
    if (params.contains("us_per_seq")) f.us_per_seq = r.number(params, "us_per_seq");
    if (params.contains("prefill_scale")) {
      f.prefill_scale = r.number(params, "prefill_scale");
      FDC_INPUT_CHECK(f.prefill_scale > -1,
                      source << ": ops." << op << ".params.prefill_scale must be > -1, found " << f.prefill_scale);
    }
  } else if (base == FitForm::kAttentionLinear || base == FitForm::kAttentionLinearEfficiency) {
    f.alpha_us = r.number(params, "alpha_us"), f.us_per_byte = r.number(params, "us_per_byte");
    f.us_per_flop = r.number(params, "us_per_flop"), f.us_per_seq = r.number(params, "us_per_seq");
    f.us_per_straggler = r.number(params, "us_per_straggler");
    f.us_per_straggler_unbalanced = r.number(params, "us_per_straggler_unbalanced");
    // Profiles fitted before decode stage bytes were a feature have no such term.
    if (params.contains("us_per_stage_byte")) f.us_per_stage_byte = r.number(params, "us_per_stage_byte");
    // Profiles fitted before the plan's units were a feature have neither: the term is off.
    if (params.contains("us_per_unit")) f.us_per_unit = r.number(params, "us_per_unit");
    if (j.contains("decode_plan")) f.decode_plan = decode_plan_from_json(r, r.at(j, "decode_plan"));
    FDC_INPUT_CHECK(f.us_per_unit >= 0 && (f.us_per_unit == 0 || f.decode_plan),
                    source << ": ops." << op << ": 'us_per_unit' " << f.us_per_unit
                           << " needs a non-negative value and the 'decode_plan' its units are estimated with");
    const Json& ax = r.at(params, "straggler_axis");
    FDC_INPUT_CHECK(ax == "flops" || ax == "bytes",
                    source << ": ops." << op << ": 'straggler_axis' must be \"flops\" or \"bytes\"");
    f.straggler_on_flops = ax == "flops";
  } else if (base == FitForm::kAttentionTiles || base == FitForm::kAttentionMakespan) {
    f.alpha_us = r.number(params, "alpha_us"), f.us_per_padded_flop = r.number(params, "us_per_padded_flop");
    f.us_per_block_elem = r.number(params, "us_per_block_elem");
    f.us_per_longest_flop = r.number(params, "us_per_longest_flop");
    // The term on the heads' own ranks (2026-12-04); a law fitted before it has none.
    if (params.contains("us_per_flop")) {
      f.us_per_flop = r.number(params, "us_per_flop");
      FDC_INPUT_CHECK(f.us_per_flop >= 0,
                      source << ": ops." << op << ": 'us_per_flop' " << f.us_per_flop << " must not be negative");
    }
    if (base == FitForm::kAttentionMakespan) {
      f.us_per_makespan_flop_w64 = r.number(params, "us_per_makespan_flop_w64");
      f.us_per_makespan_flop_w128 = r.number(params, "us_per_makespan_flop_w128");
      f.prefill_schedule = prefill_schedule_from_json(r, r.at(j, "prefill_schedule"));
    }
  } else {
    f.alpha_us = r.number(params, "alpha_us"), f.us_per_byte = r.number(params, "us_per_byte");
    f.us_per_flop = r.number(params, "us_per_flop");
    if (base == FitForm::kAlphaBetaEfficiency) {  // its curve's axis; profiles before 2026-12-05: bytes
      const Json ax = j.contains("axis") ? j["axis"] : Json("bytes");
      FDC_INPUT_CHECK(ax == "flops" || ax == "bytes",
                      source << ": ops." << op << ": 'axis' must be \"flops\" or \"bytes\", found " << ax.dump());
      f.curve_on_flops = ax == "flops";
    }
  }
  for (const Json& k : r.at(j, "efficiency_knots")) {
    FDC_INPUT_CHECK(k.is_array() && k.size() == 2 && k[0].is_number() && k[1].is_number() && k[1].get<double>() > 0,
                    source << ": ops." << op << ": each efficiency knot must be [log2_axis, efficiency > 0]");
    f.knots.push_back({k[0].get<double>(), k[1].get<double>()});
  }
  if (f.neighbour_space()) {
    const Json& points = r.at(j, "neighbours");
    FDC_INPUT_CHECK(points.is_array(), source << ": ops." << op << ": 'neighbours' must be an array");
    for (const Json& p : points) {
      bool ok = p.is_array() && p.size() == 7;
      for (size_t i = 0; ok && i < 7; ++i) ok = p[i].is_number() && std::isfinite(p[i].get<double>());
      FDC_INPUT_CHECK(ok, source << ": ops." << op
                                 << ": each neighbours point must be 7 finite numbers (6 coordinates, "
                                 << "log ratio), found " << p.dump());
      NeighbourPoint n;
      for (size_t i = 0; i < 6; ++i) n.x[i] = p[i].get<double>();
      n.log_ratio = p[6].get<double>();
      f.neighbours.push_back(n);
    }
    FDC_INPUT_CHECK(!f.neighbours.empty(), source << ": ops." << op << ": 'neighbours' is empty");
    sort_neighbours(f.neighbours);
  }
  if (f.form == FitForm::kGemmRooflineGrid) {
    std::vector<GridPoint> points;
    for (const Json& p : r.at(j, "efficiency_grid")) {
      FDC_INPUT_CHECK(
          p.is_array() && p.size() == 4 && p[0].is_number() && p[1].is_number() && p[2].is_number() &&
              p[3].is_number() && p[0].get<double>() > 0 && p[1].get<double>() > 0 && p[2].get<double>() > 0 &&
              p[3].get<double>() > 0,
          source << ": ops." << op << ": each efficiency_grid point must be [m, n, k, efficiency], all > 0");
      points.push_back({p[0].get<double>(), p[1].get<double>(), p[2].get<double>(), p[3].get<double>()});
    }
    FDC_INPUT_CHECK(!points.empty(), source << ": ops." << op << ": 'efficiency_grid' is empty");
    f.grid = GemmGrid::of(std::move(points));
    if (j.contains("interpolation_first")) {
      FDC_INPUT_CHECK(j.at("interpolation_first").is_boolean(),
                      source << ": ops." << op << ": 'interpolation_first' must be true or false, found "
                             << j.at("interpolation_first").dump());
      f.grid.interpolation_first = j.at("interpolation_first").get<bool>();
    }
  }
  const Json& cov = r.at(j, "coverage");
  if (!f.extrapolated && f.form != FitForm::kConstant) f.axis = r.range(cov, f.axis_name());
  if (cov.contains("sequences")) f.seqs_range = r.range(cov, "sequences");
  if (cov.contains("keys_max")) f.keys_max_range = r.range(cov, "keys_max");
  if (base == FitForm::kGemmRooflineEfficiency || base == FitForm::kGemmRooflineGrid)
    f.m_range = r.range(cov, "m"), f.n_range = r.range(cov, "n"), f.k_range = r.range(cov, "k");
  f.held_out = r.held_out(r.at(j, "held_out"));
  if (j.contains("held_out_balanced")) f.held_out_balanced = r.held_out(j["held_out_balanced"]);
  if (j.contains("repeat_spread")) {
    const Json& rs = j["repeat_spread"];
    RepeatSpread spread;
    spread.cases = static_cast<int>(r.number(rs, "cases"));
    spread.repeats = static_cast<int>(r.number(rs, "repeats"));
    spread.median_pct = r.number(rs, "median_pct");
    spread.p90_pct = r.number(rs, "p90_pct");
    FDC_INPUT_CHECK(
        spread.cases >= 1 && spread.repeats >= 2 && spread.median_pct >= 0 && spread.p90_pct >= spread.median_pct,
        source << ": ops." << op << ".repeat_spread: expected cases >= 1, repeats >= 2 and 0 <= median_pct <= p90_pct");
    f.repeat_spread = spread;
  }
  if (j.contains("candidates"))
    for (const Json& c : j["candidates"])
      f.candidates.push_back({r.form(c), r.held_out(c), c.contains("axis") && c["axis"] == "flops",
                              c.contains("interpolation_first") && c["interpolation_first"] == true});
  return f;
}

Json in_layer_json(const InLayerCalibration& g) {
  Json knots = Json::array();
  for (const Knot& k : g.knots) knots.push_back(Json::array({k.log2_axis, k.efficiency}));
  return {{"form", "in_layer_efficiency"},     {"axis", "log2 rows"}, {"efficiency_knots", knots},
          {"rows", range_json(g.rows)},        {"points", g.points},  {"held_out", held_out_json(g.held_out)},
          {"before", held_out_json(g.before)}, {"note", g.note}};
}

// `key`: the profile's key it was read from (gemm_in_layer, attn_prefill_in_layer,
// elementwise_in_layer), for the messages.
InLayerCalibration in_layer_from_json(const Json& j, const std::string& source, const std::string& key) {
  const Reader r(source + ": " + key);
  FDC_INPUT_CHECK(j.is_object(), source << ": '" << key << "' must be an object");
  InLayerCalibration g;
  const Json& knots = r.at(j, "efficiency_knots");
  FDC_INPUT_CHECK(knots.is_array() && !knots.empty(), source << ": " << key
                                                             << ": 'efficiency_knots' must be a non-empty array of "
                                                                "[log2 rows, efficiency]");
  for (const Json& k : knots) {
    FDC_INPUT_CHECK(k.is_array() && k.size() == 2 && k[0].is_number() && k[1].is_number() && k[1].get<double>() > 0,
                    source << ": " << key << ": knot " << k.dump() << " is not [log2 rows, efficiency > 0]");
    FDC_INPUT_CHECK(g.knots.empty() || k[0].get<double>() > g.knots.back().log2_axis,
                    source << ": " << key << ": knots must be in ascending rows");
    g.knots.push_back({k[0].get<double>(), k[1].get<double>()});
  }
  g.rows = r.range(j, "rows");
  g.points = static_cast<int>(r.number(j, "points"));
  g.held_out = r.held_out(r.at(j, "held_out"));
  g.before = r.held_out(r.at(j, "before"));
  if (j.contains("note") && j["note"].is_string()) g.note = j["note"].get<std::string>();
  return g;
}

Json offsets_json(const std::map<std::string, InLayerOffset>& m) {
  Json j = Json::object();
  for (const auto& [law, o] : m)
    j[law] = {{"form", "in_layer_offset"},
              {"extra_us_per_call", o.extra_us},
              {"points", o.points},
              {"held_out", held_out_json(o.held_out)},
              {"before", held_out_json(o.before)},
              {"note", o.note}};
  return j;
}

std::map<std::string, InLayerOffset> offsets_from_json(const Json& j, const std::string& source) {
  const std::string key = "attn_decode_in_layer";
  FDC_INPUT_CHECK(j.is_object(), source << ": '" << key << "' must be an object of decode laws");
  std::map<std::string, InLayerOffset> m;
  for (const auto& [law, o] : j.items()) {
    bool known = false;
    for (int k = 0; k < costmodel::kNumDecodeKernels; ++k)
      known = known || law == costmodel::decode_kernel_law(static_cast<costmodel::DecodeKernel>(k));
    FDC_INPUT_CHECK(known, source << ": " << key << ": '" << law
                                  << "' is not a decode law (attn_decode, attn_decode/tensor_cores, "
                                     "attn_decode/shared_pages)");
    const Reader r(source + ": " + key + "/" + law);
    FDC_INPUT_CHECK(o.is_object(), source << ": " << key << "/" << law << " must be an object");
    InLayerOffset x;
    x.extra_us = r.number(o, "extra_us_per_call");
    FDC_INPUT_CHECK(std::isfinite(x.extra_us),
                    source << ": " << key << "/" << law << ": extra_us_per_call must be finite");
    x.points = static_cast<int>(r.number(o, "points"));
    x.held_out = r.held_out(r.at(o, "held_out"));
    x.before = r.held_out(r.at(o, "before"));
    if (o.contains("note") && o["note"].is_string()) x.note = o["note"].get<std::string>();
    m[law] = x;
  }
  return m;
}

}  // namespace

Json profile_to_json(const FittedProfile& p, const std::string& command) {
  Json ops = Json::object();
  for (const auto& [name, f] : p.ops) ops[name] = op_json(f);
  Json j = {{"format", kProfileFormat},
            {"gpu", p.gpu},
            {"fitted_by", command},
            {"held_out_error",
             "absolute % error of each point predicted by a fit without it (leave-one-out up to "
             "20 points, else 5-fold); median and P90 over the points"},
            {"peaks", {{"TFLOP/s", p.peaks.tflops}, {"GB/s", p.peaks.gbps}, {"source", p.peaks_source}}},
            {"extrapolated", p.extrapolated},
            {"derived", p.derived},
            {"sources", p.sources},
            {"ops", ops},
            {"gemm_in_layer", p.gemm_in_layer ? in_layer_json(*p.gemm_in_layer) : Json(nullptr)}};
  // Written only when calibrated, so that profiles without it keep their bytes.
  if (p.attn_prefill_in_layer) j["attn_prefill_in_layer"] = in_layer_json(*p.attn_prefill_in_layer);
  if (p.elementwise_in_layer) j["elementwise_in_layer"] = in_layer_json(*p.elementwise_in_layer);
  if (!p.attn_decode_in_layer.empty()) j["attn_decode_in_layer"] = offsets_json(p.attn_decode_in_layer);
  return j;
}

FittedProfile profile_from_json(const Json& j, const std::string& source) {
  const Reader r(source);
  const Json& fmt = r.at(j, "format");
  FDC_INPUT_CHECK(fmt == kProfileFormat,
                  source << ": format " << fmt.dump() << ", expected \"" << kProfileFormat << "\"");
  FittedProfile p;
  const Json& gpu = r.at(j, "gpu");
  FDC_INPUT_CHECK(gpu.is_string(), source << ": 'gpu' must be a string");
  p.gpu = gpu.get<std::string>();
  if (j.contains("fitted_by") && j["fitted_by"].is_string()) p.fitted_by = j["fitted_by"].get<std::string>();
  p.sources = r.at(j, "sources");
  const Json& peaks = r.at(j, "peaks");
  p.peaks = Peaks{r.number(peaks, "TFLOP/s"), r.number(peaks, "GB/s")};
  if (peaks.contains("source") && peaks["source"].is_string()) p.peaks_source = peaks["source"].get<std::string>();
  if (j.contains("extrapolated")) {
    FDC_INPUT_CHECK(j["extrapolated"].is_boolean(), source << ": 'extrapolated' must be a boolean");
    p.extrapolated = j["extrapolated"].get<bool>();
  }
  if (j.contains("derived")) p.derived = j["derived"];
  const Json& ops = r.at(j, "ops");
  FDC_INPUT_CHECK(ops.is_object(), source << ": 'ops' must be an object");
  for (const auto& [name, op] : ops.items()) p.ops[name] = op_from_json(name, op, source);
  for (auto [key, field] :
       {std::pair{"gemm_in_layer", &p.gemm_in_layer}, std::pair{"attn_prefill_in_layer", &p.attn_prefill_in_layer},
        std::pair{"elementwise_in_layer", &p.elementwise_in_layer}})
    if (j.contains(key) && !j[key].is_null()) *field = in_layer_from_json(j[key], source, key);
  if (j.contains("attn_decode_in_layer") && !j["attn_decode_in_layer"].is_null())
    p.attn_decode_in_layer = offsets_from_json(j["attn_decode_in_layer"], source);
  return p;
}

void write_profile(const FittedProfile& p, const std::string& command, const std::string& path) {
  std::ofstream f(path);
  if (!f) throw std::ios_base::failure(path + ": cannot open for writing");
  f << profile_to_json(p, command).dump(2) << "\n";
  if (!f.flush()) throw std::ios_base::failure(path + ": write failed");
}

FittedProfile read_profile(const std::string& path) {
  return profile_from_json(load_json_file(path), path);  // plain or gzip; errors name the line
}

}  // namespace fdc::fit
