#include "apps/fdcsim/fit_command.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "apps/fdcsim/exit_codes.h"
#include "apps/fdcsim/run_guarded.h"
#include "configs/embedded_configs.h"
#include "core/error.h"
#include "costmodel/fit/derive.h"
#include "costmodel/fit/profile_io.h"
#include "sim/experiment.h"
#include "validate/calibrate.h"
#include "validate/calibrate_in_layer.h"

namespace fdc::cli {
namespace {

std::string pct(const std::optional<double>& v) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", *v);
  return buf;
}

std::string range(const fit::Range& r) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g..%.3g", r.min, r.max);
  return buf;
}

// The end of a neighbour form's law line: which law it corrects and with how many measured cases.
void neighbour_suffix(std::ostream& os, const fit::OpFit& f) {
  if (!f.neighbour_space()) return;
  os << ", as " << fit::form_name(f.base_form())
     << (f.base_form() == fit::FitForm::kAttentionLinearEfficiency ? " (over its efficiency curve)" : "")
     << ", x its error at the nearest " << fit::kNeighbours << " of " << f.neighbours.size() << " measured cases";
}

void print_report(std::ostream& os, const fit::FittedProfile& p) {
  os << "profile: " << p.gpu << " (" << p.ops.size() << " ops)"
     << (p.extrapolated ? ", EXTRAPOLATED (derived: no measurement on this GPU)" : "") << "\n";
  char line[320];
  std::snprintf(line, sizeof line, "%-24s %-28s %-46s %6s %-18s %7s %7s\n", "op", "form", "coverage", "points",
                "held-out", "median", "P90");
  os << line;
  for (const auto& [name, f] : p.ops) {
    std::string cov = f.extrapolated ? "not measured (extrapolated)"
                      : f.form == fit::FitForm::kConstant
                          ? (f.prefill_scale != 0 ? "a + b x seqs + c x prefill ops (calibrated)"
                             : f.us_per_seq != 0  ? "a + b x sequences (calibrated)"
                                                  : "constant")
                          : std::string(f.axis_name()) + " " + range(f.axis);
    if (f.m_range && !f.extrapolated) cov += ", m " + range(*f.m_range);
    if (f.seqs_range) cov += ", seqs " + range(*f.seqs_range);
    // Long op names (calibrated overheads) take a line of their own.
    if (name.size() > 24) os << name << "\n";
    std::snprintf(line, sizeof line, "%-24s %-28s %-46s %6d %-18s %7s %7s\n", name.size() > 24 ? "" : name.c_str(),
                  fit::form_name(f.form), cov.c_str(), f.held_out.points, f.held_out.method.c_str(),
                  pct(f.held_out.median_ape_pct).c_str(), pct(f.held_out.p90_ape_pct).c_str());
    os << line;
  }
  for (const auto& [name, f] : p.ops)
    if (f.extrapolated && !p.extrapolated) os << "  extrapolated " << name << ": " << f.note << "\n";
  for (const auto& [name, f] : p.ops)
    if (f.form == fit::FitForm::kGemmRooflineGrid && f.grid.interpolation_first)
      os << "  " << name
         << ": grid read interpolation first (where a query lies beyond the shapes measured at its rows, or beyond "
            "the rows measured at its shape, the reading that interpolates alone)\n";
  for (const auto& [name, f] : p.ops)  // decode fitted on naive cases too: the plan the simulator prices
    if (f.held_out_balanced)
      os << "  " << name << ": held out on its " << f.held_out_balanced->points
         << " balanced-plan cases (the plan the simulator prices; the naive ones inform the straggler term) "
         << pct(f.held_out_balanced->median_ape_pct) << " / " << pct(f.held_out_balanced->p90_ape_pct)
         << " (median / P90)\n";
  for (const auto& [name, f] : p.ops)  // the measurement's own noise, where cases were repeated
    if (f.repeat_spread) {
      std::snprintf(line, sizeof line,
                    "  %s: %d cases measured %d times or more; their repetitions spread %.1f%% / %.1f%% (median / "
                    "P90 of (max - min) / median)\n",
                    name.c_str(), f.repeat_spread->cases, f.repeat_spread->repeats, f.repeat_spread->median_pct,
                    f.repeat_spread->p90_pct);
      os << line;
    }
  for (const auto& [name, f] : p.ops) {  // the attention laws' columns, the plan's units where fitted
    if (f.base_form() != fit::FitForm::kAttentionLinear && f.base_form() != fit::FitForm::kAttentionLinearEfficiency)
      continue;
    std::snprintf(line, sizeof line,
                  "  %s law: %.3g us + %.3g us/byte + %.3g us/flop + %.3g us/seq + %.3g us/straggler %s "
                  "(unbalanced %.3g) + %.3g us/staged byte",
                  name.c_str(), f.alpha_us, f.us_per_byte, f.us_per_flop, f.us_per_seq, f.us_per_straggler,
                  f.straggler_on_flops ? "flop" : "byte", f.us_per_straggler_unbalanced, f.us_per_stage_byte);
    os << line;
    if (f.decode_plan) {
      const costmodel::DecodePlanConstants& c = *f.decode_plan;
      std::snprintf(line, sizeof line,
                    " + %.3g us/unit (units of the balanced plan, estimated for %d SMs x %d blocks x %d waves, "
                    "%d-token tiles, >= %lld bytes)",
                    f.us_per_unit, c.num_sms, c.ctas_per_sm, c.waves, c.tile_tokens,
                    static_cast<long long>(c.min_unit_bytes));
      os << line;
    }
    neighbour_suffix(os, f);
    os << "\n";
  }
  for (const auto& [name, f] : p.ops) {  // the prefill tile laws' columns, the makespan's schedule where fitted
    if (f.base_form() != fit::FitForm::kAttentionTiles && f.base_form() != fit::FitForm::kAttentionMakespan) continue;
    std::snprintf(line, sizeof line,
                  "  %s law: %.3g us + %.3g us/padded flop + %.3g us/flop + %.3g us/block elem + %.3g us/longest-block flop",
                  name.c_str(), f.alpha_us, f.us_per_padded_flop, f.us_per_flop, f.us_per_block_elem,
                  f.us_per_longest_flop);
    os << line;
    if (f.prefill_schedule) {
      const costmodel::PrefillScheduleConstants& c = *f.prefill_schedule;
      std::snprintf(line, sizeof line,
                    " + %.3g / %.3g us/makespan flop at width 64 / 128 (blocks scheduled over %d SMs, a block its "
                    "key tiles + %.3g, two sharing an SM at width 64 each at %.2f speed)",
                    f.us_per_makespan_flop_w64, f.us_per_makespan_flop_w128, c.num_sms, c.block_fixed_tiles,
                    c.shared_speed);
      os << line;
    }
    neighbour_suffix(os, f);
    os << "\n";
  }
  for (const auto& [g, title] :
       {std::pair{&p.gemm_in_layer, "GEMMs in a layer (gemm_in_layer)"},
        std::pair{&p.attn_prefill_in_layer, "prefill attention in a layer (attn_prefill_in_layer)"},
        std::pair{&p.elementwise_in_layer, "element-wise ops in a layer (elementwise_in_layer)"}}) {
    if (!*g) continue;
    os << "  " << title << ": efficiency";
    for (const fit::Knot& k : (*g)->knots) {
      std::snprintf(line, sizeof line, " %.3f at %.0f rows;", k.efficiency, std::exp2(k.log2_axis));
      os << line;
    }
    os << " layer op time error " << pct((*g)->before.median_ape_pct) << " / " << pct((*g)->before.p90_ape_pct)
       << " (median / P90) with the laws alone, held out " << pct((*g)->held_out.median_ape_pct) << " / "
       << pct((*g)->held_out.p90_ape_pct) << "\n    " << (*g)->note << "\n";
  }
  for (const auto& [law, x] : p.attn_decode_in_layer) {
    std::snprintf(line, sizeof line, "  decode attention in a layer (attn_decode_in_layer): %s %+.1f us per call;",
                  law.c_str(), x.extra_us);
    os << line << " layer decode time error " << pct(x.before.median_ape_pct) << " / " << pct(x.before.p90_ape_pct)
       << " (median / P90) with the laws alone, held out " << pct(x.held_out.median_ape_pct) << " / "
       << pct(x.held_out.p90_ape_pct) << "\n    " << x.note << "\n";
  }
  if (p.derived.is_object() && p.derived.contains("method"))
    os << "  derived: " << p.derived["method"].get<std::string>() << "\n";
}

fit::SpecSheet spec_of(const std::string& name_or_path) {
  const costmodel::HardwareSpec h = sim::load_hardware(name_or_path);
  return fit::SpecSheet{name_or_path, h.gpu, h.bf16_dense_tflops, h.hbm_bandwidth_gb_per_s,
                        h.nvlink_bandwidth_gb_per_s};
}

// The embedded hardware config whose `profile` names `profile` (for --derive without --from-hardware).
std::string hardware_naming(const std::string& profile) {
  std::string found;
  for (const auto& c : configs::embedded_configs()) {
    if (c.kind != "hardware") continue;
    if (sim::load_hardware(std::string(c.name)).profile == profile) {
      FDC_INPUT_CHECK(found.empty(), "fit --derive: hardware configs '" << found << "' and '" << c.name
                                                                        << "' both name profile '" << profile
                                                                        << "': pass --from-hardware");
      found = std::string(c.name);
    }
  }
  FDC_INPUT_CHECK(!found.empty(), "fit --derive: no hardware config names profile '"
                                      << profile << "': pass --from-hardware with the measured GPU's spec sheet");
  return found;
}

int run_derive(const FitOptions& o) {
  FDC_INPUT_CHECK(!o.from.empty() && !o.hardware.empty(), "fit --derive needs --from PROFILE and --hardware HW");
  FDC_INPUT_CHECK(o.raw_dirs.empty(), "fit --derive takes no raw inputs (it scales --from)");
  auto [from, ref] = sim::load_profile(o.from, "", "--from");
  const std::string from_hw = o.from_hardware.empty() ? hardware_naming(ref.name) : o.from_hardware;
  std::string command = "fdcsim fit --derive --from " + o.from + " --hardware " + o.hardware;
  if (!o.from_hardware.empty()) command += " --from-hardware " + o.from_hardware;
  command += " --out " + o.out;
  const fit::FittedProfile p =
      fit::derive_profile(from, ref.name + " (" + ref.source + ")", spec_of(from_hw), spec_of(o.hardware));
  fit::write_profile(p, command, o.out);
  print_report(std::cout, p);
  std::cout << "\n  wrote " << o.out << " (extrapolated: derived from " << ref.name << " and the " << from_hw << " / "
            << o.hardware << " spec sheets)\n";
  return kExitOk;
}

std::string held(const fit::HeldOutError& h) {
  return "median " + pct(h.median_ape_pct) + ", P90 " + pct(h.p90_ape_pct);
}

// --in-layer-from, --attn-in-layer-from, --elementwise-in-layer-from and/or --overhead-from:
// calibrations of --from, the ops in a layer first (the overhead is what remains of the engine's
// iterations once the ops are priced as they run in a layer).
int run_calibrate(const FitOptions& o) {
  FDC_INPUT_CHECK(!o.from.empty(),
                  "fit --overhead-from / --in-layer-from / --attn-in-layer-from / --elementwise-in-layer-from / "
                  "--decode-in-layer-from needs --from PROFILE (the profile to calibrate)");
  FDC_INPUT_CHECK(o.raw_dirs.empty() && !o.derive,
                  "fit --overhead-from / --in-layer-from / --attn-in-layer-from / --elementwise-in-layer-from / "
                  "--decode-in-layer-from takes no raw inputs and no --derive");
  auto [prof, ref] = sim::load_profile(o.from, "", "--from");
  // The calibration comes after whatever made the profile: keep both commands.
  std::string command = prof.fitted_by.empty() ? "" : prof.fitted_by + "; then ";
  command += "fdcsim fit --from " + o.from;
  for (const auto& [reports, target, option, name] :
       {std::tuple{&o.in_layer_from, validate::InLayerTarget::kGemms, "--in-layer-from", "gemm_in_layer"},
        std::tuple{&o.attn_in_layer_from, validate::InLayerTarget::kAttnPrefill, "--attn-in-layer-from",
                   "attn_prefill_in_layer"},
        std::tuple{&o.elementwise_in_layer_from, validate::InLayerTarget::kElementwise, "--elementwise-in-layer-from",
                   "elementwise_in_layer"}}) {
    if (reports->empty()) continue;
    std::optional<fit::InLayerCalibration>& slot = validate::in_layer_of(prof, target);
    const bool had = slot.has_value();
    slot = validate::calibrate_in_layer(prof, ref, *reports, target);
    for (const auto& r : *reports) command += std::string(" ") + option + " " + r;
    const fit::InLayerCalibration& g = *slot;
    std::cout << "  " << name << ": " << g.knots.size() << " knots from " << g.points << " measured batches (rows "
              << g.rows.min << ".." << g.rows.max << ")" << (had ? ", replacing the profile's" : "") << "\n";
    for (const fit::Knot& k : g.knots) {
      char line[120];
      std::snprintf(line, sizeof line, "    %7.0f rows: efficiency %.3f (op time x %.3f)\n", std::exp2(k.log2_axis),
                    k.efficiency, 1.0 / k.efficiency);
      std::cout << line;
    }
    std::cout << "    layer op time error: laws alone " << held(g.before) << "; held out (" << g.held_out.method << ") "
              << held(g.held_out) << "\n";
  }
  if (!o.decode_in_layer_from.empty()) {
    const bool had = !prof.attn_decode_in_layer.empty();
    prof.attn_decode_in_layer = validate::calibrate_decode_in_layer(prof, ref, o.decode_in_layer_from);
    for (const auto& r : o.decode_in_layer_from) command += " --decode-in-layer-from " + r;
    std::cout << "  attn_decode_in_layer:" << (had ? " replacing the profile's" : "") << "\n";
    for (const auto& [law, x] : prof.attn_decode_in_layer) {
      char line[200];
      std::snprintf(line, sizeof line, "    %-26s %+.1f us per call, from %d decode batches\n", law.c_str(), x.extra_us,
                    x.points);
      std::cout << line << "      layer decode time error: laws alone " << held(x.before) << "; held out ("
                << x.held_out.method << ") " << held(x.held_out) << "\n";
    }
  }
  std::vector<validate::OverheadCalibration> calibrations;
  if (!o.overhead_from.empty()) {
    calibrations = validate::calibrate_overhead(prof, ref, o.overhead_from, o.overhead_prefill);
    for (const auto& t : o.overhead_from) command += " --overhead-from " + t;
    if (o.overhead_prefill) command += " --overhead-prefill";
  }
  command += " --out " + o.out;
  fit::write_profile(validate::with_overhead(prof, calibrations, o.overhead_from), command, o.out);
  for (const auto& c : calibrations) {
    char line[512];
    std::snprintf(line, sizeof line,
                  "  %s: %.1f us + %.2f us per sequence + %+.4f x the prefill rows' op time, from %d engine "
                  "iterations, %d with prefill (was %.1f us; residual P10/P90 %.1f/%.1f us)\n"
                  "    iteration time error: before median %.2f%%, P90 %.2f%%; held out (2-fold over time) median "
                  "%.2f%%, P90 %.2f%%\n",
                  c.op.c_str(), c.overhead_us, c.per_seq_us, c.prefill_scale, c.iterations, c.prefill_iterations,
                  c.previous_us, c.residual_p10_us, c.residual_p90_us, c.before_median_pct, c.before_p90_pct,
                  c.held_out_median_pct, c.held_out_p90_pct);
    std::cout << line;
  }
  std::vector<std::string> what;
  if (!o.in_layer_from.empty()) what.push_back("GEMMs calibrated in measured layers");
  if (!o.attn_in_layer_from.empty()) what.push_back("prefill attention calibrated in measured layers");
  if (!o.elementwise_in_layer_from.empty()) what.push_back("element-wise ops calibrated in measured layers");
  if (!o.decode_in_layer_from.empty()) what.push_back("decode attention calibrated in measured layers");
  if (!calibrations.empty()) what.push_back("calibrated overheads");
  std::cout << "  wrote " << o.out << " (profile '" << ref.name << "' with ";
  for (size_t i = 0; i < what.size(); ++i) std::cout << (i == 0 ? "" : " and ") << what[i];
  std::cout << ")\n";
  return kExitOk;
}

// The profile's laws (without in-layer calibrations) on raw cases: per op, the error of each case.
void print_against(std::ostream& os, const fit::FittedProfile& p, const fit::RawProfile& raw) {
  std::map<std::string, std::vector<double>> ape;
  std::map<std::string, int> missing;
  for (const fit::Sample& s : raw.samples) {
    const fit::OpFit* law = p.find(s.group);
    if (law == nullptr) {
      ++missing[s.group];
      continue;
    }
    ape[s.group].push_back(100.0 * std::abs(fit::predict_sample_us(*law, s) - s.time_us) / s.time_us);
  }
  os << "\nagainst " << raw.sources.size() << " raw folder(s) of " << raw.gpu_name << " (profile: " << p.gpu
     << "), the laws alone:\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-28s %-27s %6s %7s %7s\n", "op", "form", "cases", "median", "P90");
  os << line;
  for (const auto& [op, v] : ape) {
    std::snprintf(line, sizeof line, "%-28s %-27s %6zu %6.1f%% %6.1f%%\n", op.c_str(), fit::form_name(p.find(op)->form),
                  v.size(), fit::percentile(v, 0.5), fit::percentile(v, 0.9));
    os << line;
  }
  for (const auto& [op, n] : missing) os << "  " << op << ": " << n << " cases, not in the profile\n";
}

// One row per measured case of every op with a held-out error: the op, the case (file and
// benchmark), its measured time and the prediction of the law fitted without it.
void write_residuals(const fit::FittedProfile& p, const std::string& path) {
  std::ofstream f(path);
  FDC_INPUT_CHECK(f, path << ": cannot write the residuals CSV");
  f.exceptions(std::ios::failbit | std::ios::badbit);
  auto quoted = [](const std::string& x) {
    std::string q = "\"";
    for (char c : x) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return std::string(buf);
  };
  f << "op,case,measured_us,held_out_us,error_pct\n";
  for (const auto& [op, law] : p.ops) {
    const std::vector<double>& pred = law.held_out.predicted;
    if (pred.size() != law.held_out_cases.size()) continue;  // too few points to hold one out
    for (size_t i = 0; i < pred.size(); ++i) {
      const auto& [where, measured] = law.held_out_cases[i];
      f << quoted(op) << "," << quoted(where) << "," << num(measured) << "," << num(pred[i]) << ","
        << num(100.0 * (pred[i] - measured) / measured) << "\n";
    }
  }
}

}  // namespace

void add_fit_command(CLI::App& app, FitOptions& o) {
  CLI::App* sub = app.add_subcommand(
      "fit",
      "Fit a profile (configs/profiles/<gpu>.json) from raw `fdcsim profile` folders of one GPU model "
      "(docs/fit.md)");
  sub->add_option("inputs", o.raw_dirs,
                  "Raw profile folders (provenance.json + ops.json / comm-<n>gpu.json / attention.json), Vidur "
                  "profiling CSVs (mlp.csv, all_reduce.csv, send_recv.csv) or folders of them")
      ->check(CLI::ExistingPath);
  sub->add_option("--out,-o", o.out, "Fitted profile JSON to write")->required();
  sub->add_option("--gpu", o.gpu, "GPU name for inputs that name none (Vidur CSVs)");
  sub->add_flag("--derive", o.derive,
                "Derive a profile for unmeasured hardware from --from by spec-sheet ratios (extrapolated)");
  sub->add_option(
      "--from", o.from,
      "--derive: the measured profile; --overhead-from / --in-layer-from: the profile to calibrate (embedded "
      "name or path)");
  sub->add_option("--overhead-from", o.overhead_from,
                  "Calibrate --from's per-iteration overhead from engine timelines (`fdcsim engine` / `validate "
                  "--config` runs on that GPU) and write the profile to --out; repeatable")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  sub->add_flag("--overhead-prefill", o.overhead_prefill,
                "With --overhead-from: also fit a term for the engine's prefill steps, c x the ops' time of the "
                "iteration's prefill rows (off by default: on an H100 the engine's prefill steps ran 5-8% faster "
                "than the profile's ops predict, in bursts and Poisson runs alike; docs/fit.md)");
  sub->add_option("--in-layer-from", o.in_layer_from,
                  "Calibrate --from's GEMMs as they run inside a layer from `fdcsim layer-check --per-op` reports "
                  "measured on that GPU (docs/fit.md) and write the profile to --out; repeatable; with "
                  "--overhead-from, this comes first")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  sub->add_option("--attn-in-layer-from", o.attn_in_layer_from,
                  "Calibrate --from's prefill attention as it runs inside a layer from `fdcsim layer-check --per-op` "
                  "reports measured on that GPU (off by default: docs/fit.md) and write the profile to --out; "
                  "repeatable; with --overhead-from, this comes first")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  sub->add_option("--elementwise-in-layer-from", o.elementwise_in_layer_from,
                  "Calibrate --from's norms, RoPE (+ rotation), KV append, residual adds and activation as they "
                  "run inside a layer from `fdcsim layer-check --per-op` reports measured on that GPU "
                  "(docs/fit.md) and write the profile to --out; repeatable; with --overhead-from, this comes "
                  "first")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  sub->add_option("--decode-in-layer-from", o.decode_in_layer_from,
                  "Calibrate --from's decode attention as it runs inside a layer from `fdcsim layer-check --per-op` "
                  "reports measured on that GPU: per decode kernel, the extra time of one call, from the reports' "
                  "decode-only batches (docs/fit.md) and write the profile to --out; repeatable; with "
                  "--overhead-from, this comes first")
      ->check(CLI::ExistingFile)
      ->allow_extra_args(false);
  sub->add_flag("--decode-units", o.decode_units,
                "Price the balanced decode plan's work units in the decode attention law (an eighth column, "
                "off by default: docs/fit.md, \"Decode attention: the plan's units\")");
  sub->add_flag("--prefill-makespan", o.prefill_makespan,
                "Try a prefill attention law with the makespan of the kernel's blocks over the SMs as a candidate "
                "(attention_makespan, off by default: docs/fit.md, \"Prefill attention: the blocks' makespan\")");
  sub->add_option("--whole-ops-from", o.whole_ops_from,
                  "A raw folder among the inputs whose ops are taken from it alone: every earlier input's case of "
                  "an op it measured is dropped, not only the same cases (a re-measurement on another unit or "
                  "day, whose launch floor differs); its peak cases are not taken (docs/fit.md); repeatable")
      ->allow_extra_args(false);
  sub->add_option("--residuals", o.residuals,
                  "Also write a CSV of every measured case's held-out prediction (op, case, measured_us, "
                  "held_out_us, error_pct): where each op's held-out error comes from");
  sub->add_option("--hardware", o.hardware, "--derive: the target hardware config (embedded name or path)");
  sub->add_option("--from-hardware", o.from_hardware,
                  "--derive: the measured GPU's hardware config (default: the one whose `profile` names --from)");
}

void add_profile_report_command(CLI::App& app, ProfileReportOptions& o) {
  CLI::App* sub = app.add_subcommand("profile-report",
                                     "Print each op of a fitted profile: form, measured coverage, held-out error");
  sub->add_option("profile", o.profile, "Fitted profile JSON (written by `fdcsim fit`)")->required();
  sub->add_option("--against", o.against,
                  "Also score the profile's laws on raw `fdcsim profile` folders it was not fitted to (another "
                  "day, another machine): per op, the cases and the median / P90 error of the laws alone")
      ->check(CLI::ExistingPath);
}

int run_fit(const FitOptions& o) {
  return run_guarded([&]() -> int {
    const bool calibrate = !o.overhead_from.empty() || !o.in_layer_from.empty() || !o.attn_in_layer_from.empty() ||
                           !o.elementwise_in_layer_from.empty() || !o.decode_in_layer_from.empty();
    FDC_INPUT_CHECK(o.residuals.empty() || (!o.derive && !calibrate),
                    "fit: --residuals lists the held-out predictions of a fit from raw folders; it does not apply "
                    "to --derive, --overhead-from, --in-layer-from, --attn-in-layer-from, "
                    "--elementwise-in-layer-from or --decode-in-layer-from");
    FDC_INPUT_CHECK(!o.overhead_prefill || !o.overhead_from.empty(),
                    "fit: --overhead-prefill is a term of the overhead calibration; it needs --overhead-from");
    FDC_INPUT_CHECK(o.whole_ops_from.empty() || (!o.derive && !calibrate),
                    "fit: --whole-ops-from picks among the raw inputs of a fit from raw folders; it does not apply "
                    "to --derive or the calibrations");
    if (o.derive) return run_derive(o);
    if (calibrate) return run_calibrate(o);
    FDC_INPUT_CHECK(!o.raw_dirs.empty(), "fit: no input (raw profile folders or Vidur CSVs; or --derive)");
    std::string command = "fdcsim fit";
    for (const std::string& d : o.raw_dirs) command += " " + d;
    if (!o.gpu.empty()) command += " --gpu '" + o.gpu + "'";
    for (const std::string& d : o.whole_ops_from) command += " --whole-ops-from " + d;
    if (o.decode_units) command += " --decode-units";
    if (o.prefill_makespan) command += " --prefill-makespan";
    command += " --out " + o.out;
    const fit::FittedProfile p =
        fit::fit_profile(fit::read_raw_profiles(o.raw_dirs, o.gpu, o.whole_ops_from),
                         {.decode_units = o.decode_units, .prefill_makespan = o.prefill_makespan});
    fit::write_profile(p, command, o.out);
    print_report(std::cout, p);
    std::cout << "\n  wrote " << o.out << "\n";
    if (!o.residuals.empty()) {
      write_residuals(p, o.residuals);
      std::cout << "  wrote " << o.residuals << " (held-out prediction of every case)\n";
    }
    return kExitOk;
  });
}

int run_profile_report(const ProfileReportOptions& o) {
  return run_guarded([&]() -> int {
    const fit::FittedProfile p = fit::read_profile(o.profile);
    print_report(std::cout, p);
    if (!o.against.empty()) print_against(std::cout, p, fit::read_raw_profiles(o.against));
    return kExitOk;
  });
}

}  // namespace fdc::cli
